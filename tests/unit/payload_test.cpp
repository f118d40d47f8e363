#include "audit/payload.h"

#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "util/url.h"

namespace mat::audit {
namespace {

using Kind = RequestObject::Kind;

// Obviously fake secret values; none may ever appear in an output.
constexpr std::string_view kSecret1 = "s3cr3t-VALUE-1";
constexpr std::string_view kSecret1Base64 = "czNjcjN0LVZBTFVFLTE=";  // base64("s3cr3t-VALUE-1")
constexpr std::string_view kSecret2 = "s3cr3t-VALUE-2";
constexpr std::string_view kSecret3 = "s3cr3t-VALUE-3";

constexpr std::string_view kHex64 =
    "4fa6e0f0c6786287e131c3852c58a2e01cc697a68231826813597e4994f1d6e2";
constexpr std::string_view kSwarmId = "x7k2m9q4w1e8r5t3y6u0i2o4p";  // 25 lower-case alphanumerics

void ExpectNoSecret(std::string_view text, std::string_view context) {
  for (std::string_view secret : {kSecret1, kSecret1Base64, kSecret2, kSecret3}) {
    EXPECT_EQ(text.find(secret), std::string_view::npos)
        << context << ": secret " << secret << " leaked in: " << text;
  }
}

std::string PathOf(std::string_view target) {
  return std::string(target.substr(0, target.find('?')));
}

http::HttpRequest Request(std::string_view method, std::string_view target, std::string_view body,
                          std::string_view content_type = "application/json") {
  http::HttpRequest request;
  request.method = std::string(method);
  request.target = std::string(target);
  if (!content_type.empty()) {
    request.headers.emplace_back("Content-Type", std::string(content_type));
  }
  request.headers.emplace_back("Authorization", "Bearer s3cr3t-VALUE-3");
  request.body = std::string(body);
  request.body_size = body.size();
  return request;
}

// A Kubernetes resource request, built by hand (independent of ParseK8sRequestInfo).
K8sRequestInfo K8s(std::string_view verb, std::string_view resource, std::string_view group = "",
                   std::string_view subresource = "") {
  K8sRequestInfo info;
  info.is_resource_request = true;
  info.verb = std::string(verb);
  info.api_prefix = group.empty() ? "api" : "apis";
  info.api_group = std::string(group);
  info.api_version = "v1";
  info.namespace_ = "default";
  info.resource = std::string(resource);
  info.subresource = std::string(subresource);
  info.path = "/" + info.api_prefix + "/" + (group.empty() ? "" : info.api_group + "/") +
              "v1/namespaces/default/" + info.resource;
  return info;
}

const Redactor& DefaultRedactor() {
  static const Redactor redactor{RedactionConfig{}};
  return redactor;
}

Redactor NoK8sSecretRedaction() {
  RedactionConfig config;
  config.redact_k8s_secrets = false;
  return Redactor(config);
}

// ---------------------------------------------------------------------------------------------
// MatchesCall

struct MatchCase {
  const char* pattern_method;
  const char* pattern_path;
  const char* method;
  const char* path;
  bool matches;
};

TEST(MatchesCallTest, Table) {
  const std::vector<MatchCase> cases = {
      {"POST", "/secrets/create", "POST", "/secrets/create", true},
      {"POST", "/secrets/create", "POST", "/v1.41/secrets/create", true},
      {"POST", "/secrets/create", "POST", "/v1.24/secrets/create", true},
      {"POST", "/secrets/create", "POST", "/v1/secrets/create", true},  // Docker routes /v1 too
      {"POST", "/secrets/create", "POST", "/secrets/create?name=x", true},
      {"POST", "/secrets/create", "POST", "/secrets/create/", true},  // trailing slash ignored
      {"POST", "/secrets/create", "POST", "//secrets//create", true},
      {"POST", "/secrets/create", "POST", "/v1.41/./secrets/x/../create", true},
      {"POST", "/secrets/create", "POST", "/secrets/%63reate", true},
      {"POST", "/secrets/create", "POST", "/Secrets/CREATE", true},
      {"POST", "/secrets/create", "post", "/secrets/create", true},
      {"POST", "/secrets/create", "POST", "https://mke.example:443/v1.41/secrets/create", true},
      {"POST", "/secrets/create", "GET", "/secrets/create", false},
      {"POST", "/secrets/create", "POST", "/secrets", false},
      {"POST", "/secrets/create", "POST", "/secretsx/create", false},
      {"POST", "/secrets/create", "POST", "/secrets/createx", false},
      {"POST", "/secrets/create", "POST", "/v1.41x/secrets/create", false},
      {"POST", "/secrets/create", "POST", "/x/secrets/create", false},
      {"POST", "/secrets/create", "POST", "/secrets/create/x", false},
      {"POST", "/secrets/{id}/update", "POST", "/secrets/abc123/update", true},
      {"POST", "/secrets/{id}/update", "POST", "/v1.41/secrets/abc123/update?version=3", true},
      {"POST", "/secrets/{id}/update", "POST", "/secrets/a%2Fb/update", true},  // as sent
      {"POST", "/secrets/{id}/update", "POST", "/secrets//update", false},      // no id
      {"POST", "/secrets/{id}/update", "POST", "/secrets/update", false},
      {"POST", "/secrets/{id}/update", "POST", "/secrets/a/b/update", false},
      {"POST", "/secrets/{id}/update", "POST", "/v1.41/secrets/abc/update/extra", false},
      {"*", "/swarm/join", "DELETE", "/swarm/join", true},
      {"*", "/swarm/join", "GET", "/v1.41/swarm/joinx", false},
  };
  for (const MatchCase& c : cases) {
    EXPECT_EQ(MatchesCall({c.pattern_method, c.pattern_path}, c.method, c.path), c.matches)
        << c.pattern_method << " " << c.pattern_path << " vs " << c.method << " " << c.path;
  }
}

// IsRedacted reads each request's path once for all patterns: it must say what matching the
// path and the target (when they differ) against every pattern with MatchesCall says, for any
// spelling (versions, dot segments, escapes, absolute form, long paths, odd methods).
TEST(MatchesCallTest, IsRedactedSaysWhatMatchesCallSays) {
  RedactionConfig config;
  config.redact_k8s_secrets = false;
  config.redacted_calls = {{"POST", "/secrets/create"},
                           {"POST", "/secrets/{id}/update"},
                           {"*", "/swarm/join"},
                           {"delete", "/v1.41/a/{id}/{id}/b/c/d/e/f/g/h"},
                           {"PUT", "/x%2Fy/{id}"}};
  const Redactor redactor(config);
  const std::vector<std::string> segments = {
      "",      ".",     "..",  "secrets", "SECRETS", "create", "%63reate",  "v1.41",
      "V1.41", "v1",    "abc", "a%2Fb",   "update",  "swarm",  "join",      "%2e%2e",
      "%2F",   "x%2Fy", "x",   "a",       "b",       "c",      "d",         "e",
      "f",     "g",     "h",   "%",       "%6",      "%zz",    "%2fsecrets"};
  const std::vector<std::string> prefixes = {"", "https://h", "HTTP://h:80", "http://h"};
  const std::vector<std::string> suffixes = {"", "?a=1", "#f", "?/swarm/join", "/"};
  const std::vector<std::string> methods = {"POST", "post", "GET", "DELETE", "PUT", "Put"};
  std::mt19937 random(11);
  auto pick = [&](size_t n) { return static_cast<size_t>(random() % n); };
  int redacted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string target = prefixes[pick(prefixes.size())];
    const size_t n = pick(12);
    for (size_t k = 0; k < n; ++k)
      target += (pick(6) == 0 ? "//" : "/") + segments[pick(segments.size())];
    target += suffixes[pick(suffixes.size())];
    // The caller's path: the target cut at '?', or a spelling of its own.
    const std::string path =
        pick(4) == 0 ? std::string("/secrets/create") : target.substr(0, target.find('?'));
    http::HttpRequest request;
    request.method = methods[pick(methods.size())];
    request.target = target;
    bool expected = false;
    for (const CallPattern& call : config.redacted_calls) {
      expected = expected || MatchesCall(call, request.method, path) ||
                 (target != path && MatchesCall(call, request.method, target));
    }
    ASSERT_EQ(redactor.IsRedacted(request, path, nullptr), expected)
        << request.method << " " << target << " (path " << path << ")";
    redacted += expected;
  }
  EXPECT_GT(redacted, 1000);
}

// ---------------------------------------------------------------------------------------------
// Whole-payload redaction

struct RedactCase {
  const char* method;
  const char* target;
  std::optional<K8sRequestInfo> k8s;
  std::string body;
};

TEST(RedactorTest, EveryDefaultRedactionIsRedactedAtRequestLevel) {
  const std::string secret_body = R"({"Name":"db-password","Data":"czNjcjN0LVZBTFVFLTE=",)"
                                  R"("JoinToken":"s3cr3t-VALUE-1","password":"s3cr3t-VALUE-2"})";
  const std::string k8s_secret =
      R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},)"
      R"("data":{"password":"czNjcjN0LVZBTFVFLTE="},"stringData":{"token":"s3cr3t-VALUE-2"}})";
  const std::vector<RedactCase> cases = {
      {"POST", "/secrets/create", std::nullopt, secret_body},
      {"POST", "/v1.41/secrets/create", std::nullopt, secret_body},
      {"POST", "/secrets/abc123/update", std::nullopt, secret_body},
      {"POST", "/v1.41/secrets/abc123/update?version=12", std::nullopt, secret_body},
      {"POST", "/swarm/join", std::nullopt, secret_body},
      {"POST", "/v1.41/swarm/join", std::nullopt, secret_body},
      {"POST", "/swarm/update", std::nullopt, secret_body},
      {"POST", "/v1.41/swarm/update?version=5&rotateWorkerToken=true", std::nullopt, secret_body},
      {"POST", "/auth/login", std::nullopt, secret_body},
      {"POST", "/v1.41/auth/login", std::nullopt, secret_body},
      // Spellings a router may still accept (or that carried the secret anyway).
      {"POST", "/secrets/create/", std::nullopt, secret_body},
      {"POST", "/v1.41//secrets/create", std::nullopt, secret_body},
      {"POST", "/secrets/%63reate", std::nullopt, secret_body},
      {"post", "/Secrets/Create", std::nullopt, secret_body},
      {"POST", "https://mke.example/v1.41/swarm/join", std::nullopt, secret_body},
      // Not JSON at all: still redacted.
      {"POST", "/auth/login", std::nullopt, "username=admin&password=s3cr3t-VALUE-1"},
      // Kubernetes secrets create/update/patch.
      {"POST", "/api/v1/namespaces/default/secrets", K8s("create", "secrets"), k8s_secret},
      {"PUT", "/api/v1/namespaces/default/secrets/db", K8s("update", "secrets"), k8s_secret},
      {"PATCH", "/api/v1/namespaces/default/secrets/db", K8s("patch", "secrets"),
       R"({"data":{"password":"czNjcjN0LVZBTFVFLTE="}})"},
      {"PATCH", "/api/v1/namespaces/default/secrets/db", K8s("patch", "secrets"),
       R"([{"op":"replace","path":"/data/password","value":"czNjcjN0LVZBTFVFLTE="}])"},
      {"POST", "/api/v1/namespaces/default/secrets", K8s("create", "secrets"),
       "apiVersion: v1\nkind: Secret\nstringData:\n  token: s3cr3t-VALUE-1\n"},
  };
  for (const RedactCase& c : cases) {
    const http::HttpRequest request = Request(c.method, c.target, c.body);
    const K8sRequestInfo* k8s = c.k8s ? &*c.k8s : nullptr;
    const std::string context = std::string(c.method) + " " + c.target;
    EXPECT_TRUE(DefaultRedactor().IsRedacted(request, PathOf(c.target), k8s)) << context;
    const RequestObject object =
        DefaultRedactor().BuildRequestObject(request, PathOf(c.target), k8s);
    EXPECT_EQ(object.kind, Kind::kRedacted) << context;
    EXPECT_TRUE(object.text.empty()) << context;
    ExpectNoSecret(object.text, context);
  }
}

TEST(RedactorTest, NearMissesAreNotRedacted) {
  const std::string body = R"({"Name":"visible-payload"})";
  const std::vector<RedactCase> cases = {
      {"GET", "/secrets", std::nullopt, body},
      {"GET", "/v1.41/secrets/abc123", std::nullopt, body},
      {"POST", "/secretsx/create", std::nullopt, body},
      {"POST", "/v1.41/secrets/abc/update/extra", std::nullopt, body},
      {"POST", "/v1.41x/secrets/create", std::nullopt, body},
      {"POST", "/secrets/update", std::nullopt, body},
      {"POST", "/swarm/joinx", std::nullopt, body},
      {"POST", "/swarm/leave", std::nullopt, body},
      {"GET", "/swarm/update", std::nullopt, body},
      {"POST", "/auth", std::nullopt, body},  // sensitive fields only, see below
      {"POST", "/auth/logout", std::nullopt, body},
      {"POST", "/api/v1/namespaces/default/configmaps", K8s("create", "configmaps"), body},
      {"DELETE", "/api/v1/namespaces/default/secrets/db", K8s("delete", "secrets"), body},
      {"POST", "/apis/example.com/v1/namespaces/default/secrets",
       K8s("create", "secrets", "example.com"), body},
      {"PUT", "/api/v1/namespaces/default/secrets/db/status",
       K8s("update", "secrets", "", "status"), body},
  };
  for (const RedactCase& c : cases) {
    const http::HttpRequest request = Request(c.method, c.target, c.body);
    const K8sRequestInfo* k8s = c.k8s ? &*c.k8s : nullptr;
    const std::string context = std::string(c.method) + " " + c.target;
    EXPECT_FALSE(DefaultRedactor().IsRedacted(request, PathOf(c.target), k8s)) << context;
    const RequestObject object =
        DefaultRedactor().BuildRequestObject(request, PathOf(c.target), k8s);
    EXPECT_EQ(object.kind, Kind::kJson) << context;
    EXPECT_EQ(object.text, body) << context;
  }
}

TEST(RedactorTest, KubernetesSecretRedactionCanBeDisabledButNotTheDockerList) {
  const Redactor redactor = NoK8sSecretRedaction();
  const K8sRequestInfo k8s = K8s("create", "secrets");
  const http::HttpRequest request =
      Request("POST", "/api/v1/namespaces/default/secrets", R"({"kind":"Secret"})");
  EXPECT_FALSE(redactor.IsRedacted(request, "/api/v1/namespaces/default/secrets", &k8s));
  const http::HttpRequest docker = Request("POST", "/secrets/create", "{}");
  EXPECT_TRUE(redactor.IsRedacted(docker, "/secrets/create", nullptr));
}

TEST(RedactorTest, EmptyRedactedListRedactsNothing) {
  RedactionConfig config;
  config.redacted_calls.clear();
  config.redact_k8s_secrets = false;
  const Redactor redactor(config);
  const http::HttpRequest request = Request("POST", "/secrets/create", R"({"Name":"x"})");
  EXPECT_FALSE(redactor.IsRedacted(request, "/secrets/create", nullptr));
}

TEST(RedactorTest, PathArgumentAndTargetAreBothChecked) {
  // A caller that hands over an unexpected path must not make a redacted call slip through.
  const http::HttpRequest request = Request("POST", "/v1.41/secrets/create", R"({"Data":"x"})");
  EXPECT_TRUE(DefaultRedactor().IsRedacted(request, "", nullptr));
  EXPECT_EQ(DefaultRedactor().BuildRequestObject(request, "/elsewhere", nullptr).kind,
            Kind::kRedacted);
}

// ---------------------------------------------------------------------------------------------
// Sensitive fields

struct FieldCase {
  const char* name;
  const char* method;
  const char* target;
  std::optional<K8sRequestInfo> k8s;
  bool k8s_redaction;
  std::string body;
  Kind kind;
  std::string expected;  // exact text for kJson
};

constexpr std::string_view kMarker = kRedactedMarker;

std::string M() { return "\"" + std::string(kMarker) + "\""; }

TEST(RedactorTest, SensitiveFields) {
  const std::vector<FieldCase> cases = {
      {"swarm init Spec.CAConfig.SigningCAKey", "POST", "/v1.41/swarm/init", std::nullopt, true,
       R"({"ListenAddr":"0.0.0.0:2377","Spec":{"CAConfig":{"SigningCACert":"PUBLIC-CERT",)"
       R"("SigningCAKey":"s3cr3t-VALUE-1"}}})",
       Kind::kJson,
       R"({"ListenAddr":"0.0.0.0:2377","Spec":{"CAConfig":{"SigningCACert":"PUBLIC-CERT",)"
       R"("SigningCAKey":)" +
           M() + "}}}"},
      {"swarm init CAConfig.SigningCAKey", "POST", "/swarm/init", std::nullopt, true,
       R"({"CAConfig":{"SigningCAKey":"s3cr3t-VALUE-1"}})", Kind::kJson,
       R"({"CAConfig":{"SigningCAKey":)" + M() + "}}"},
      {"swarm init top-level SigningCAKey", "POST", "/swarm/init", std::nullopt, true,
       R"({"SigningCAKey":"s3cr3t-VALUE-1","ListenAddr":"x"})", Kind::kJson,
       R"({"ListenAddr":"x","SigningCAKey":)" + M() + "}"},
      {"swarm init key in another case (Go matches it)", "POST", "/swarm/init", std::nullopt, true,
       R"({"spec":{"caconfig":{"signingcakey":"s3cr3t-VALUE-1"}}})", Kind::kJson,
       R"({"spec":{"caconfig":{"signingcakey":)" + M() + "}}}"},
      {"swarm init key with KELVIN SIGN (Go folds it to k)", "POST", "/swarm/init", std::nullopt,
       true, R"({"SigningCA\u212aey":"s3cr3t-VALUE-1"})", Kind::kJson,
       "{\"SigningCA\xE2\x84\xAA"
       "ey\":" +
           M() + "}"},
      {"swarm init with text/plain content type is still parsed", "POST", "/swarm/init",
       std::nullopt, true, R"({"SigningCAKey":"s3cr3t-VALUE-1"})", Kind::kJson,
       R"({"SigningCAKey":)" + M() + "}"},
      {"swarm unlock UnlockKey", "POST", "/v1.41/swarm/unlock", std::nullopt, true,
       R"({"UnlockKey":"SWMKEY-1-s3cr3t-VALUE-1"})", Kind::kJson, R"({"UnlockKey":)" + M() + "}"},
      {"configs create Data", "POST", "/v1.41/configs/create", std::nullopt, true,
       R"({"Name":"app.conf","Data":"czNjcjN0LVZBTFVFLTE=","Labels":{"a":"b"}})", Kind::kJson,
       R"({"Data":)" + M() + R"(,"Labels":{"a":"b"},"Name":"app.conf"})"},
      {"configs create without Data stays as is", "POST", "/configs/create", std::nullopt, true,
       R"({"Name":"app.conf"})", Kind::kJson, R"({"Name":"app.conf"})"},
      {"docker registry login", "POST", "/v1.41/auth", std::nullopt, true,
       R"({"username":"bob","password":"s3cr3t-VALUE-1","serveraddress":"reg"})", Kind::kJson,
       R"({"password":)" + M() + R"(,"serveraddress":"reg","username":"bob"})"},
      {"k8s ConfigMap-like body with stringData", "POST", "/api/v1/namespaces/default/configmaps",
       K8s("create", "configmaps"), true,
       R"({"kind":"ConfigMap","data":{"visible":"config"},"stringData":{"t":"s3cr3t-VALUE-1"}})",
       Kind::kJson, R"({"data":{"visible":"config"},"kind":"ConfigMap","stringData":)" + M() + "}"},
      {"k8s nested stringData in a custom resource", "POST",
       "/apis/example.com/v1/namespaces/default/templates",
       K8s("create", "templates", "example.com"), true,
       R"({"spec":{"template":{"stringData":{"t":"s3cr3t-VALUE-1"}}}})", Kind::kJson,
       R"({"spec":{"template":{"stringData":)" + M() + "}}}"},
      {"k8s Secret with k8s redaction disabled", "POST", "/api/v1/namespaces/default/secrets",
       K8s("create", "secrets"), false,
       R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},)"
       R"("data":{"password":"czNjcjN0LVZBTFVFLTE="},"stringData":{"token":"s3cr3t-VALUE-2"}})",
       Kind::kJson,
       R"({"apiVersion":"v1","data":)" + M() + R"(,"kind":"Secret","metadata":{"name":"db"},)" +
           R"("stringData":)" + M() + "}"},
      {"k8s Secret merge patch, redaction disabled", "PATCH",
       "/api/v1/namespaces/default/secrets/db", K8s("patch", "secrets"), false,
       R"({"data":{"password":"czNjcjN0LVZBTFVFLTE="},"metadata":{"labels":{"a":"b"}}})",
       Kind::kJson, R"({"data":)" + M() + R"(,"metadata":{"labels":{"a":"b"}}})"},
      {"k8s Secret json patch, redaction disabled", "PATCH",
       "/api/v1/namespaces/default/secrets/db", K8s("patch", "secrets"), false,
       R"([{"op":"add","path":"/data/password","value":"czNjcjN0LVZBTFVFLTE="},)"
       R"({"op":"remove","path":"/data/old"}])",
       Kind::kJson,
       R"([{"op":"add","path":"/data/password","value":)" + M() +
           R"(},{"op":"remove","path":"/data/old"}])"},
      {"k8s json patch of stringData elsewhere", "PATCH",
       "/apis/example.com/v1/namespaces/default/templates/t",
       K8s("patch", "templates", "example.com"), true,
       R"([{"op":"add","path":"/spec/stringData/t","value":"s3cr3t-VALUE-1"},)"
       R"({"op":"add","path":"/spec/replicas","value":3}])",
       Kind::kJson,
       R"([{"op":"add","path":"/spec/stringData/t","value":)" + M() +
           R"(},{"op":"add","path":"/spec/replicas","value":3}])"},
      {"Secret object sent to another resource", "POST",
       "/apis/example.com/v1/namespaces/default/wrappers", K8s("create", "wrappers", "example.com"),
       true, R"({"items":[{"kind":"Secret","data":{"k":"czNjcjN0LVZBTFVFLTE="}}]})", Kind::kJson,
       R"({"items":[{"data":)" + M() + R"(,"kind":"Secret"}]})"},
  };
  for (const FieldCase& c : cases) {
    RedactionConfig config;
    config.redact_k8s_secrets = c.k8s_redaction;
    const Redactor redactor(config);
    const std::string_view content_type =
        std::string_view(c.name).find("text/plain") != std::string_view::npos ? "text/plain"
                                                                              : "application/json";
    const http::HttpRequest request = Request(c.method, c.target, c.body, content_type);
    const K8sRequestInfo* k8s = c.k8s ? &*c.k8s : nullptr;
    EXPECT_FALSE(redactor.IsRedacted(request, PathOf(c.target), k8s)) << c.name;
    const RequestObject object = redactor.BuildRequestObject(request, PathOf(c.target), k8s);
    EXPECT_EQ(object.kind, c.kind) << c.name;
    EXPECT_EQ(object.text, c.expected) << c.name;
    EXPECT_FALSE(object.truncated) << c.name;
    ExpectNoSecret(object.text, c.name);
  }
}

TEST(RedactorTest, CustomSensitiveFieldWithEmptyPointerReplacesTheWholeBody) {
  RedactionConfig config;
  config.sensitive_fields.push_back({{"*", "/api/ucp/keys"}, {}});
  const Redactor redactor(config);
  const http::HttpRequest request = Request("PUT", "/api/ucp/keys", R"({"k":"s3cr3t-VALUE-1"})");
  const RequestObject object = redactor.BuildRequestObject(request, "/api/ucp/keys", nullptr);
  EXPECT_EQ(object.kind, Kind::kJson);
  EXPECT_EQ(object.text, M());
}

// ---------------------------------------------------------------------------------------------
// Body kinds

struct BodyCase {
  const char* name;
  const char* method;
  const char* target;
  std::string content_type;
  std::string body;
  Kind kind;
  std::string expected;
};

TEST(RedactorTest, JsonStringAndInvalidBodies) {
  const std::vector<BodyCase> cases = {
      {"empty body", "POST", "/containers/create", "application/json", "", Kind::kNone, ""},
      {"json object, compacted", "POST", "/containers/create", "application/json",
       "{ \"Image\" : \"alpine\",\n \"Cmd\": [\"sh\"] }", Kind::kJson,
       R"({"Cmd":["sh"],"Image":"alpine"})"},
      {"json with charset parameter", "POST", "/containers/create",
       "Application/JSON; charset=utf-8", R"({"a":1})", Kind::kJson, R"({"a":1})"},
      {"json sniffed without content type", "POST", "/containers/create", "", "  \n[1,2,3]",
       Kind::kJson, "[1,2,3]"},
      {"json sniffed despite text/plain", "POST", "/containers/create", "text/plain",
       R"({"a":true})", Kind::kJson, R"({"a":true})"},
      {"vendor +json type", "POST", "/plugins/x/set", "application/vnd.docker.plugins.v1.2+json",
       R"(["DEBUG=1"])", Kind::kJson, R"(["DEBUG=1"])"},
      {"scalar json", "POST", "/x", "application/json", "\"just a string\"", Kind::kJson,
       "\"just a string\""},
      {"integers keep their value", "POST", "/x", "application/json",
       R"({"big":12345678901234567,"neg":-42,"f":1.5})", Kind::kJson,
       R"({"big":12345678901234567,"f":1.5,"neg":-42})"},
      {"plain text", "POST", "/build", "text/plain", "hello world", Kind::kString, "hello world"},
      {"no content type, not json", "POST", "/x", "", "a=b&c=d", Kind::kString, "a=b&c=d"},
      {"invalid json with json content type", "POST", "/x", "application/json",
       "{\"a\":", Kind::kString, "{\"a\":"},
      {"json with trailing data", "POST", "/x", "application/json", "{} {}", Kind::kString,
       "{} {}"},
      {"invalid utf-8 in json string", "POST", "/x", "application/json", "{\"a\":\"\xff\"}",
       Kind::kString, "{\"a\":\"\xff\"}"},
      {"k8s style json patch on docker side", "PATCH", "/x", "application/json-patch+json",
       R"([{"op":"replace","path":"/a","value":1}])", Kind::kJson,
       R"([{"op":"replace","path":"/a","value":1}])"},
  };
  for (const BodyCase& c : cases) {
    const http::HttpRequest request = Request(c.method, c.target, c.body, c.content_type);
    const RequestObject object =
        DefaultRedactor().BuildRequestObject(request, PathOf(c.target), nullptr);
    EXPECT_EQ(object.kind, c.kind) << c.name;
    EXPECT_EQ(object.text, c.expected) << c.name;
    EXPECT_FALSE(object.truncated) << c.name;
  }
}

TEST(RedactorTest, KubernetesPatchBodies) {
  struct PatchCase {
    const char* content_type;
    std::string body;
    std::string expected;
  };
  const std::vector<PatchCase> cases = {
      {"application/json-patch+json", R"([{"op":"replace","path":"/spec/replicas","value":3}])",
       R"([{"op":"replace","path":"/spec/replicas","value":3}])"},
      {"application/merge-patch+json", R"({"spec":{"replicas":3}})", R"({"spec":{"replicas":3}})"},
      {"application/strategic-merge-patch+json",
       R"({"spec":{"template":{"spec":{"containers":[{"name":"a","image":"b"}]}}}})",
       R"({"spec":{"template":{"spec":{"containers":[{"image":"b","name":"a"}]}}}})"},
      {"application/apply-patch+yaml", R"({"kind":"Deployment"})", R"({"kind":"Deployment"})"},
  };
  const K8sRequestInfo k8s = K8s("patch", "deployments", "apps");
  const std::string target = "/apis/apps/v1/namespaces/default/deployments/web";
  for (const PatchCase& c : cases) {
    const http::HttpRequest request = Request("PATCH", target, c.body, c.content_type);
    const RequestObject object = DefaultRedactor().BuildRequestObject(request, target, &k8s);
    EXPECT_EQ(object.kind, Kind::kJson) << c.content_type;
    EXPECT_EQ(object.text, c.expected) << c.content_type;
  }
}

TEST(RedactorTest, NonJsonKubernetesBodiesFailClosed) {
  // YAML or protobuf may carry stringData that cannot be removed from them.
  const K8sRequestInfo k8s = K8s("create", "configmaps");
  const std::string target = "/api/v1/namespaces/default/configmaps";
  for (const std::string& body :
       {std::string("kind: ConfigMap\nstringData:\n  t: s3cr3t-VALUE-1\n"),
        std::string("k8s\0\n\x02v1\x12\x06Secret s3cr3t-VALUE-1", 31),
        std::string(R"({"stringData":{"t":"s3cr3t-VALUE-1"}} trailing)")}) {
    const http::HttpRequest request = Request("POST", target, body, "application/yaml");
    const RequestObject object = DefaultRedactor().BuildRequestObject(request, target, &k8s);
    EXPECT_EQ(object.kind, Kind::kRedacted) << body;
    ExpectNoSecret(object.text, body);
  }
}

TEST(RedactorTest, InvalidJsonOfSensitiveCallsFailsClosed) {
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"/swarm/init", "{\"SigningCAKey\":\"s3cr3t-VALUE-1\""},                // cut
      {"/swarm/init", "{\"SigningCAKey\":\"s3cr3t-VALUE-1\"} garbage"},       // Go's decoder stops
      {"/swarm/unlock", "UnlockKey=s3cr3t-VALUE-1"},                          // not JSON
      {"/v1.41/configs/create", "{\"Data\":\"s3cr3t-VALUE-1\",\"x\":\xff}"},  // invalid
      {"/auth", "{\"password\":\"s3cr3t-VALUE-1\"}}"},
  };
  for (const auto& [target, body] : cases) {
    const http::HttpRequest request = Request("POST", target, body);
    const RequestObject object = DefaultRedactor().BuildRequestObject(request, target, nullptr);
    EXPECT_EQ(object.kind, Kind::kRedacted) << target << " " << body;
    ExpectNoSecret(object.text, target);
  }
}

// ---------------------------------------------------------------------------------------------
// Truncated bodies

struct TruncatedCase {
  const char* name;
  const char* method;
  const char* target;
  std::optional<K8sRequestInfo> k8s;
  Kind kind;
};

TEST(RedactorTest, TruncatedBodies) {
  const std::string full =
      R"({"Name":"n","SigningCAKey":"s3cr3t-VALUE-1","Data":"s3cr3t-VALUE-2"})";
  const std::vector<TruncatedCase> cases = {
      {"ordinary call: kept as a cut string", "POST", "/containers/create", std::nullopt,
       Kind::kString},
      {"sensitive-field call fails closed", "POST", "/swarm/init", std::nullopt, Kind::kRedacted},
      {"configs create fails closed", "POST", "/configs/create", std::nullopt, Kind::kRedacted},
      {"redacted call", "POST", "/secrets/create", std::nullopt, Kind::kRedacted},
      {"kubernetes body fails closed", "POST", "/api/v1/namespaces/default/configmaps",
       K8s("create", "configmaps"), Kind::kRedacted},
  };
  for (const TruncatedCase& c : cases) {
    http::HttpRequest request = Request(c.method, c.target, full);
    request.body = full.substr(0, 40);  // cut inside the first secret
    request.body_truncated = true;
    const K8sRequestInfo* k8s = c.k8s ? &*c.k8s : nullptr;
    const RequestObject object =
        DefaultRedactor().BuildRequestObject(request, PathOf(c.target), k8s);
    EXPECT_EQ(object.kind, c.kind) << c.name;
    EXPECT_TRUE(object.truncated) << c.name;
    if (c.kind == Kind::kString) {
      EXPECT_EQ(object.text, full.substr(0, 40)) << c.name;
    } else {
      EXPECT_TRUE(object.text.empty()) << c.name;
      ExpectNoSecret(object.text, c.name);
      EXPECT_EQ(object.text.find("s3cr3t"), std::string::npos) << c.name;
    }
  }
}

TEST(RedactorTest, BodyShorterThanBodySizeCountsAsTruncated) {
  http::HttpRequest request = Request("POST", "/swarm/unlock", R"({"UnlockKey":"s3cr3t-VA)");
  request.body_size = 100;  // body_truncated not set, but bytes are missing
  const RequestObject object =
      DefaultRedactor().BuildRequestObject(request, "/swarm/unlock", nullptr);
  EXPECT_EQ(object.kind, Kind::kRedacted);
  EXPECT_TRUE(object.truncated);

  http::HttpRequest uncaptured = Request("POST", "/containers/create", "");
  uncaptured.body_size = 10;
  uncaptured.body_truncated = true;
  const RequestObject cut =
      DefaultRedactor().BuildRequestObject(uncaptured, "/containers/create", nullptr);
  EXPECT_EQ(cut.kind, Kind::kString);
  EXPECT_TRUE(cut.truncated);
}

// ---------------------------------------------------------------------------------------------
// Hostile nesting

TEST(RedactorTest, HostileDepthIsNeverParsed) {
  struct DepthCase {
    std::string body;
    const char* target;
    Kind kind;
  };
  const std::string deep_array = std::string(200000, '[') + std::string(200000, ']');
  std::string deep_object;
  for (int i = 0; i < 100000; ++i) deep_object += "{\"a\":";
  deep_object += "1";
  for (int i = 0; i < 100000; ++i) deep_object += "}";
  const std::string depth64 = std::string(64, '[') + std::string(64, ']');
  const std::string depth65 = std::string(65, '[') + std::string(65, ']');
  // Brackets inside strings (escaped quotes included) do not count.
  const std::string brackets_in_string = "[\"\\\"" + std::string(1000, '[') + "\"]";
  const std::vector<DepthCase> cases = {
      {deep_array, "/containers/create", Kind::kString},
      {deep_object, "/containers/create", Kind::kString},
      {deep_array, "/swarm/init", Kind::kRedacted},
      {deep_object, "/swarm/unlock", Kind::kRedacted},
      {depth64, "/containers/create", Kind::kJson},
      {depth65, "/containers/create", Kind::kString},
      {brackets_in_string, "/containers/create", Kind::kJson},
  };
  for (const DepthCase& c : cases) {
    const http::HttpRequest request = Request("POST", c.target, c.body);
    const RequestObject object = DefaultRedactor().BuildRequestObject(request, c.target, nullptr);
    EXPECT_EQ(object.kind, c.kind) << c.target << " size " << c.body.size();
    if (c.kind != Kind::kRedacted) {
      EXPECT_EQ(object.text, c.body) << c.target;
    }
  }
  const K8sRequestInfo k8s = K8s("create", "configmaps");
  const http::HttpRequest request = Request("POST", "/api/v1/x", deep_object);
  EXPECT_EQ(DefaultRedactor().BuildRequestObject(request, "/api/v1/x", &k8s).kind, Kind::kRedacted);
}

// ---------------------------------------------------------------------------------------------
// Headers

TEST(RedactorTest, SensitiveHeaders) {
  const std::vector<std::pair<const char*, bool>> cases = {
      {"Authorization", true},
      {"authorization", true},
      {"AUTHORIZATION", true},
      {"Cookie", true},
      {"cookie", true},
      {"X-Registry-Auth", true},
      {"x-registry-auth", true},
      {"X-Registry-Config", true},
      {"Proxy-Authorization", true},
      {"Set-Cookie", true},
      {"Content-Type", false},
      {"User-Agent", false},
      {"X-Registry-Auth2", false},
      {"Authorizatio", false},
      {"", false},
  };
  for (const auto& [name, sensitive] : cases) {
    EXPECT_EQ(DefaultRedactor().IsSensitiveHeader(name), sensitive) << name;
  }
}

// ---------------------------------------------------------------------------------------------
// ObjectIdOf

struct IdCase {
  const char* name;
  const char* kind;
  const char* verb;
  std::string path;
  int status;
  std::string response;  // "<none>": no response at all
  bool truncated;
  std::optional<std::string> id;
};

TEST(ObjectIdOfTest, Table) {
  const std::string hex(kHex64);
  const std::string swarm(kSwarmId);
  const char* d = "docker-swarm";
  const char* k = "kubernetes";
  const std::vector<IdCase> cases = {
      {"containers/create Id", d, "POST", "/v1.41/containers/create?name=web", 201,
       R"({"Id":")" + hex + R"(","Warnings":[]})", false, hex},
      {"services/create ID", d, "POST", "/v1.41/services/create", 201,
       R"({"ID":")" + swarm + R"(","Warning":""})", false, swarm},
      {"secrets/create ID", d, "POST", "/secrets/create", 201, R"({"ID":")" + swarm + R"("})",
       false, swarm},
      {"configs/create ID", d, "POST", "/v1.41/configs/create", 201, R"({"ID":")" + swarm + R"("})",
       false, swarm},
      {"networks/create Id", d, "POST", "/v1.41/networks/create", 201,
       R"({"Id":")" + hex + R"(","Warning":""})", false, hex},
      {"MKE style lower-case id", d, "POST", "/api/ucp/things/create", 200,
       R"({"id":"6c1f3b2a-0000-4000-8000-000000000001"})", false,
       "6c1f3b2a-0000-4000-8000-000000000001"},
      {"volumes/create has only a name", d, "POST", "/v1.41/volumes/create", 201,
       R"({"Name":"myvolume","Driver":"local"})", false, std::nullopt},
      {"images/create progress id is not an object id", d, "POST", "/images/create", 200,
       R"({"status":"Pulling from library/alpine","id":"latest"})", false, std::nullopt},
      {"swarm/init bare string", d, "POST", "/v1.41/swarm/init", 200, "\"" + swarm + "\"\n", false,
       swarm},
      {"services update, empty response: id from the path", d, "POST",
       "/v1.41/services/" + swarm + "/update?version=10", 200, "", false, swarm},
      {"services update with warnings: id from the path", d, "POST",
       "/services/" + swarm + "/update", 200, R"({"Warnings":null})", false, swarm},
      {"services update by name: no id", d, "POST", "/v1.41/services/web-frontend/update", 200,
       R"({"Warnings":[]})", false, std::nullopt},
      {"containers update by name: no id", d, "POST", "/v1.41/containers/NAME/update", 200,
       R"({"Warnings":[]})", false, std::nullopt},
      {"containers update by id", d, "POST", "/v1.41/containers/" + hex + "/update", 200,
       R"({"Warnings":[]})", false, hex},
      {"containers update by short id", d, "POST", "/containers/" + hex.substr(0, 12) + "/update",
       200, R"({"Warnings":[]})", false, hex.substr(0, 12)},
      {"nodes update, truncated response: id from the path", d, "POST",
       "/nodes/" + swarm + "/update", 200, R"({"Warn)", true, swarm},
      {"swarm/update has no id", d, "POST", "/v1.41/swarm/update", 200, "", false, std::nullopt},
      {"4xx", d, "POST", "/v1.41/containers/create", 409,
       R"({"message":"Conflict","Id":")" + hex + R"("})", false, std::nullopt},
      {"5xx update by id", d, "POST", "/services/" + swarm + "/update", 500, "", false,
       std::nullopt},
      {"non-JSON response", d, "POST", "/v1.41/containers/create", 201, "created " + hex, false,
       std::nullopt},
      // nlohmann skips a UTF-8 byte order mark, so such an answer was read before MayBeJson.
      {"UTF-8 BOM before the JSON", d, "POST", "/v1.41/containers/create", 201,
       "\xEF\xBB\xBF"
       R"({"Id":")" +
           hex + R"("})",
       false, hex},
      {"k8s UTF-8 BOM before the JSON", k, "create", "/api/v1/namespaces/default/configmaps", 201,
       "\xEF\xBB\xBF\n"
       R"({"metadata":{"uid":"uid-7"}})",
       false, "uid-7"},
      {"truncated create response", d, "POST", "/v1.41/containers/create", 201,
       R"({"Id":")" + hex + R"(","Warn)", true, std::nullopt},
      {"id is not a string", d, "POST", "/containers/create", 201, R"({"Id":42})", false,
       std::nullopt},
      {"GET is not a create", d, "GET", "/v1.41/containers/create", 200,
       R"({"Id":")" + hex + R"("})", false, std::nullopt},
      {"no response", d, "POST", "/v1.41/containers/create", 0, "<none>", false, std::nullopt},
      {"k8s create uid", k, "create", "/api/v1/namespaces/default/configmaps", 201,
       R"({"kind":"ConfigMap","metadata":{"name":"app","uid":"0d3c4b1a-1111-4222-8333-444455556666"}})",
       false, "0d3c4b1a-1111-4222-8333-444455556666"},
      {"k8s patch uid", k, "patch", "/apis/apps/v1/namespaces/default/deployments/web", 200,
       R"({"metadata":{"name":"web","uid":"uid-2"}})", false, "uid-2"},
      {"k8s update uid", k, "update", "/api/v1/namespaces/default/configmaps/app", 200,
       R"({"metadata":{"name":"app","uid":"uid-3"}})", false, "uid-3"},
      {"k8s create without uid: never the name", k, "create", "/api/v1/namespaces/x/pods", 201,
       R"({"metadata":{"name":"web"}})", false, std::nullopt},
      {"k8s get is not a create", k, "get", "/api/v1/namespaces/default/configmaps/app", 200,
       R"({"metadata":{"uid":"uid-4"}})", false, std::nullopt},
      {"k8s 4xx", k, "create", "/api/v1/namespaces/default/configmaps", 409,
       R"({"kind":"Status","metadata":{"uid":"uid-5"}})", false, std::nullopt},
      {"k8s protobuf response", k, "create", "/api/v1/namespaces/default/configmaps", 201,
       std::string("k8s\0\x0a\x0f", 6), false, std::nullopt},
      {"k8s truncated response", k, "create", "/api/v1/namespaces/default/configmaps", 201,
       R"({"metadata":{"uid":"uid-6"},"da)", true, std::nullopt},
  };
  for (const IdCase& c : cases) {
    http::HttpExchange exchange;
    exchange.request = Request(c.verb, c.path, "");
    if (c.response != "<none>") {
      http::HttpResponse response;
      response.status = c.status;
      response.body = c.response;
      response.body_size = c.response.size() + (c.truncated ? 100 : 0);
      response.body_truncated = c.truncated;
      exchange.response = response;
    }
    EXPECT_EQ(ObjectIdOf(c.kind, c.verb, PathOf(c.path), exchange), c.id) << c.name;
  }
}

}  // namespace
}  // namespace mat::audit

// util/url.h: the one percent-decoder, in its lenient and Go-strict readings.
TEST(PercentDecoding, ValidEscapesDecodeAndMalformedOnesStayAsWritten) {
  EXPECT_EQ(mat::PercentDecoded("/secrets%2Fcreate%2f"), "/secrets/create/");
  EXPECT_EQ(mat::PercentDecoded("/a%2"), "/a%2");
  EXPECT_EQ(mat::PercentDecoded("/a%zz%41"), "/a%zzA");
  EXPECT_EQ(mat::PercentDecoded("a+b"), "a+b");
  std::string query;
  mat::AppendPercentDecoded("a+b%20c", true, query);
  EXPECT_EQ(query, "a b c");
}

TEST(PercentDecoding, GoPathUnescapeRefusesAnyMalformedEscape) {
  EXPECT_EQ(mat::GoPathUnescape("x%41y"), "xAy");
  EXPECT_EQ(mat::GoPathUnescape("x%4"), std::nullopt);
  EXPECT_EQ(mat::GoPathUnescape("%g1"), std::nullopt);
  EXPECT_FALSE(mat::PercentEscapesValid("%%41"));
  EXPECT_TRUE(mat::PercentEscapesValid("100%25"));
}
