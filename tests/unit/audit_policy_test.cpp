#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "audit/policy.h"
#include "util/docker_version.h"

namespace mat::audit {
namespace {

struct IgnoreCase {
  const char* path;
  bool ignored;
};

TEST(IsIgnoredTest, DefaultList) {
  const std::vector<IgnoreCase> cases = {
      // Every default entry, bare and behind a Docker API version prefix.
      {"/_ping", true},
      {"/v1.41/_ping", true},
      {"/ca", true},
      {"/v1.41/ca", true},
      {"/auth", true},
      {"/v1.41/auth", true},
      {"/trustedregistryca", true},
      {"/kubeauth", true},
      {"/metrics", true},
      {"/info", true},
      {"/v1.41/info", true},
      {"/version", true},
      {"/v1.30/version", true},
      {"/versions", true},
      {"/version/foo", true},
      {"/v1.41/version", true},
      {"/debug", true},
      {"/openid_keys", true},
      {"/apidocs", true},
      {"/kubernetesdocs", true},
      {"/manage", true},
      {"/v2.0/manage", true},
      // Near misses: exact entries do not match continuations, and a version prefix is only
      // stripped when it is a whole segment.
      {"/auth/login", false},
      {"/v1.41/auth/login", false},
      {"/infos", false},
      {"/info/x", false},
      {"/_pings", false},
      {"/_ping/", false},
      {"/ca/foo", false},
      {"/cat", false},
      {"/metricsservice/query", false},
      {"/debugger", false},
      {"/managers", false},
      {"/v1.41/containers/json", false},
      {"/containers/json", false},
      {"/v1.41_ping", false},
      {"/v1.41x/_ping", false},
      {"/v1/_ping", false},
      {"/v.41/_ping", false},
      {"/v1./_ping", false},
      {"/x/_ping", false},
      {"/", false},
      {"", false},
      {"/v1.41", false},
      {"/api/v1/pods", false},
      {"/apis/apps/v1/deployments", false},
      {"/api/ucp/config/logging", false},
  };
  const std::vector<std::string> ignore = DefaultIgnoreList();
  for (const IgnoreCase& c : cases) {
    EXPECT_EQ(IsIgnored(ignore, c.path), c.ignored) << c.path;
  }
}

TEST(IsIgnoredTest, DefaultListContents) {
  const std::vector<std::string> expected = {
      "/_ping", "/ca",       "/auth",  "/trustedregistryca", "/kubeauth", "/metrics",
      "/info",  "/version*", "/debug", "/openid_keys",       "/apidocs",  "/kubernetesdocs",
      "/manage"};
  EXPECT_EQ(DefaultIgnoreList(), expected);
}

TEST(IsIgnoredTest, CustomEntries) {
  const std::vector<std::string> ignore = {"", "/containers*", "/nodes"};
  EXPECT_TRUE(IsIgnored(ignore, "/containers/json"));
  EXPECT_TRUE(IsIgnored(ignore, "/v1.43/containers"));
  EXPECT_TRUE(IsIgnored(ignore, "/nodes"));
  EXPECT_FALSE(IsIgnored(ignore, "/nodes/abc"));
  EXPECT_FALSE(IsIgnored(ignore, "/_ping"));  // not the default list any more
  EXPECT_FALSE(IsIgnored(ignore, ""));        // the empty entry matches nothing
  EXPECT_FALSE(IsIgnored({}, "/_ping"));
  EXPECT_TRUE(IsIgnored({"*"}, "/anything"));
}

struct KindCase {
  const char* path;
  const char* kind;
};

TEST(ClassifyKindTest, Table) {
  const std::vector<KindCase> cases = {
      {"/api", "kubernetes"},
      {"/api/", "kubernetes"},
      {"/api/v1", "kubernetes"},
      {"/api/v1/pods", "kubernetes"},
      {"/api/v1/namespaces/default/secrets", "kubernetes"},
      {"/apis", "kubernetes"},
      {"/apis/apps/v1/deployments", "kubernetes"},
      {"/apis/rbac.authorization.k8s.io/v1/clusterroles", "kubernetes"},
      {"/healthz", "kubernetes"},
      {"/healthz/etcd", "kubernetes"},
      {"/livez", "kubernetes"},
      {"/readyz", "kubernetes"},
      {"/openapi/v2", "kubernetes"},
      {"/openapi/v3/apis/apps/v1", "kubernetes"},
      {"/.well-known/openid-configuration", "kubernetes"},
      {"/openid/v1/jwks", "kubernetes"},
      {"/logs", "kubernetes"},
      {"/logs/syslog", "kubernetes"},
      {"/api/ucp/config/logging", "docker-swarm"},
      {"/api/ucp", "docker-swarm"},
      {"/api/clientbundle", "docker-swarm"},
      {"/apisomething", "docker-swarm"},
      {"/apix/v1", "docker-swarm"},
      {"/healthzz", "docker-swarm"},
      {"/v1.41/secrets/create", "docker-swarm"},
      {"/v1.41/containers/json", "docker-swarm"},
      {"/containers/json", "docker-swarm"},
      {"/enzi/v0/accounts", "docker-swarm"},
      {"/metricsservice/query", "docker-swarm"},
      {"/auth/login", "docker-swarm"},
      {"/", "docker-swarm"},
      {"", "docker-swarm"},
  };
  for (const KindCase& c : cases) {
    EXPECT_EQ(ClassifyKind(c.path), c.kind) << c.path;
  }
}

TEST(LevelTest, ParseLevel) {
  struct Case {
    const char* text;
    std::optional<Level> level;
  };
  const std::vector<Case> cases = {
      {"", Level::kNone},
      {"none", Level::kNone},
      {"NONE", Level::kNone},
      {"metadata", Level::kMetadata},
      {"Metadata", Level::kMetadata},
      {"METADATA", Level::kMetadata},
      {"request", Level::kRequest},
      {"Request", Level::kRequest},
      {"requests", std::nullopt},
      {"meta", std::nullopt},
      {" metadata", std::nullopt},
      {"info", std::nullopt},
      {"RequestResponse", std::nullopt},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ParseLevel(c.text), c.level) << '"' << c.text << '"';
  }
}

TEST(LevelTest, Names) {
  EXPECT_EQ(LevelName(Level::kNone), "");
  EXPECT_EQ(LevelName(Level::kMetadata), "metadata");
  EXPECT_EQ(LevelName(Level::kRequest), "request");
  EXPECT_EQ(StageName(Stage::kRequestReceived), "RequestReceived");
  EXPECT_EQ(StageName(Stage::kResponseStarted), "ResponseStarted");
  EXPECT_EQ(StageName(Stage::kResponseComplete), "ResponseComplete");
  for (Level level : {Level::kNone, Level::kMetadata, Level::kRequest}) {
    EXPECT_EQ(ParseLevel(LevelName(level)), level);
  }
}

TEST(ObjectRefTest, Empty) {
  ObjectRef ref;
  EXPECT_TRUE(ref.empty());
  ref.uid = "abc";
  EXPECT_FALSE(ref.empty());
  ObjectRef ns;
  ns.namespace_ = "default";
  EXPECT_FALSE(ns.empty());
}

http::HttpExchange MakeExchange(const std::string& method, const std::string& target,
                                std::optional<int> status) {
  http::HttpExchange exchange;
  exchange.request.method = method;
  exchange.request.target = target;
  exchange.request.first_byte_ns = 1'000;
  exchange.request.headers_done_ns = 2'000;
  exchange.request.complete_ns = 3'000;
  if (status) {
    http::HttpResponse response;
    response.status = *status;
    response.complete_ns = 4'000;
    exchange.response = response;
  }
  return exchange;
}

RequestContext MakeContext() {
  RequestContext context;
  context.source = "172.31.45.250:48516";
  context.stage_time_ns = 5'000;
  return context;
}

TEST(DecideTest, LevelNoneAuditsNothing) {
  PolicyConfig config;
  config.level = Level::kNone;
  const AuditPolicy policy(config);
  const auto exchange = MakeExchange("GET", "/v1.41/containers/json", 200);
  EXPECT_FALSE(policy.Decide(exchange, Stage::kResponseComplete, MakeContext()).has_value());
  EXPECT_FALSE(policy.Decide(exchange, Stage::kRequestReceived, MakeContext()).has_value());
}

TEST(DecideTest, IgnoredPathsAreNotAudited) {
  const AuditPolicy policy(PolicyConfig{});
  for (const char* target : {"/_ping", "/v1.41/_ping", "/v1.41/version?x=1", "/info?a", "/auth"}) {
    const auto exchange = MakeExchange("GET", target, 200);
    EXPECT_FALSE(policy.Decide(exchange, Stage::kResponseComplete, MakeContext()).has_value())
        << target;
  }
  // The query is not part of the matched path.
  const auto exchange = MakeExchange("GET", "/containers/json?x=/_ping", 200);
  EXPECT_TRUE(policy.Decide(exchange, Stage::kResponseComplete, MakeContext()).has_value());
}

TEST(DecideTest, GrpcIsSkippedUnlessAskedAndNeverCarriesPayload) {
  auto exchange = MakeExchange("POST", "/docker.swarmkit.v1.Control/CreateSecret", 200);
  exchange.request.body = std::string("\0\0\0\0\x16\n\x08mysecret\x12\x0ahunter2-42", 27);
  exchange.request.body_size = exchange.request.body.size();
  for (const char* type : {"application/grpc", "Application/GRPC+proto", "application/grpc;x=1"}) {
    exchange.request.headers = {{"content-type", type}};
    EXPECT_TRUE(IsGrpc(exchange.request)) << type;
    PolicyConfig config;
    config.level = Level::kRequest;
    EXPECT_FALSE(AuditPolicy(config).Decide(exchange, Stage::kResponseComplete, MakeContext()))
        << type;
    config.audit_grpc = true;
    auto record = AuditPolicy(config).Decide(exchange, Stage::kResponseComplete, MakeContext());
    ASSERT_TRUE(record.has_value()) << type;
    EXPECT_FALSE(record->request_object.has_value());
    EXPECT_EQ(record->annotations["mke-audit-tap/request-object"], "grpc-omitted");
    EXPECT_EQ(record->verb, "POST");
  }
  for (const char* type : {"application/json", "application/grpcx", "application/grp", ""}) {
    exchange.request.headers = {{"Content-Type", type}};
    EXPECT_FALSE(IsGrpc(exchange.request)) << type;
  }
  exchange.request.headers.clear();
  EXPECT_FALSE(IsGrpc(exchange.request));
}

TEST(DecideTest, CompleteExchange) {
  PolicyConfig config;
  config.level = Level::kRequest;
  const AuditPolicy policy(config);
  auto exchange = MakeExchange("post", "/v1.41/secrets/create?a=1&b=2", 201);
  exchange.incomplete = true;
  const auto record = policy.Decide(exchange, Stage::kResponseComplete, MakeContext());
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->kind, "docker-swarm");
  EXPECT_EQ(record->level, Level::kRequest);
  EXPECT_EQ(record->stage, Stage::kResponseComplete);
  EXPECT_EQ(record->request_uri, "/v1.41/secrets/create?a=1&b=2");
  EXPECT_EQ(record->verb, "POST");
  EXPECT_EQ(record->source_ips, std::vector<std::string>{"172.31.45.250:48516"});
  EXPECT_EQ(record->request_received_ns, 2'000u);
  EXPECT_EQ(record->stage_ns, 5'000u);
  ASSERT_TRUE(record->response_code.has_value());
  EXPECT_EQ(*record->response_code, 201);
  EXPECT_TRUE(record->object_ref.empty());
  EXPECT_TRUE(record->incomplete);
}

TEST(DecideTest, KubernetesPathIsKubernetesKind) {
  const AuditPolicy policy(PolicyConfig{});
  const auto exchange = MakeExchange("GET", "/api/v1/namespaces/default/pods?limit=500", 200);
  const auto record = policy.Decide(exchange, Stage::kResponseComplete, MakeContext());
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->kind, "kubernetes");
  EXPECT_EQ(record->level, Level::kMetadata);
}

TEST(DecideTest, RequestReceivedHasNoCode) {
  const AuditPolicy policy(PolicyConfig{});
  const auto exchange = MakeExchange("GET", "/metricsservice/query?q=1", 200);
  const auto record = policy.Decide(exchange, Stage::kRequestReceived, MakeContext());
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->stage, Stage::kRequestReceived);
  EXPECT_FALSE(record->response_code.has_value());
  EXPECT_FALSE(record->incomplete);
}

TEST(DecideTest, NoResponseAndUnknownFacts) {
  const AuditPolicy policy(PolicyConfig{});
  auto exchange = MakeExchange("DELETE", "/services/abc", std::nullopt);
  exchange.request.headers_done_ns = 0;  // falls back to the first byte
  const auto record = policy.Decide(exchange, Stage::kResponseComplete, RequestContext{});
  ASSERT_TRUE(record.has_value());
  EXPECT_FALSE(record->response_code.has_value());
  EXPECT_TRUE(record->source_ips.empty());
  EXPECT_EQ(record->request_received_ns, 1'000u);
  EXPECT_EQ(record->stage_ns, 0u);
  EXPECT_EQ(record->verb, "DELETE");
}

TEST(DecideTest, KubernetesVerbsAndObjectRef) {
  const AuditPolicy policy(PolicyConfig{});
  struct Case {
    const char* method;
    const char* target;
    const char* verb;
    const char* resource;
    const char* ns;
    const char* group;
    const char* version;
    const char* sub;
  };
  const Case cases[] = {
      {"GET", "/api/v1/namespaces/default/pods", "list", "pods", "default", "", "v1", ""},
      {"GET", "/api/v1/namespaces/default/pods/p1", "get", "pods", "default", "", "v1", ""},
      {"GET", "/api/v1/pods?watch=true", "watch", "pods", "", "", "v1", ""},
      {"GET", "/api/v1/watch/namespaces/ns/pods", "watch", "pods", "ns", "", "v1", ""},
      {"POST", "/apis/apps/v1/namespaces/ns/deployments", "create", "deployments", "ns", "apps",
       "v1", ""},
      {"PUT", "/apis/apps/v1/namespaces/ns/deployments/d/scale", "update", "deployments", "ns",
       "apps", "v1", "scale"},
      {"PATCH", "/api/v1/nodes/n1", "patch", "nodes", "", "", "v1", ""},
      {"DELETE", "/api/v1/namespaces/ns/secrets", "deletecollection", "secrets", "ns", "", "v1",
       ""},
      {"DELETE", "/api/v1/namespaces/ns", "delete", "namespaces", "ns", "", "v1", ""},
      {"GET", "/api/v1/namespaces/ns/pods/p/log", "get", "pods", "ns", "", "v1", "log"},
  };
  for (const auto& c : cases) {
    const auto record = policy.Decide(MakeExchange(c.method, c.target, 200),
                                      Stage::kResponseComplete, MakeContext());
    ASSERT_TRUE(record.has_value()) << c.target;
    EXPECT_EQ(record->kind, "kubernetes") << c.target;
    EXPECT_EQ(record->verb, c.verb) << c.target;
    EXPECT_EQ(record->object_ref.resource, c.resource) << c.target;
    EXPECT_EQ(record->object_ref.namespace_, c.ns) << c.target;
    EXPECT_EQ(record->object_ref.api_group, c.group) << c.target;
    EXPECT_EQ(record->object_ref.api_version, c.version) << c.target;
    EXPECT_EQ(record->object_ref.subresource, c.sub) << c.target;
  }
  // Non-resource Kubernetes paths: the lower-case method, no objectRef.
  const auto healthz =
      policy.Decide(MakeExchange("GET", "/healthz", 200), Stage::kResponseComplete, MakeContext());
  ASSERT_TRUE(healthz.has_value());
  EXPECT_EQ(healthz->verb, "get");
  EXPECT_TRUE(healthz->object_ref.empty());
  // Docker and MKE: the method in upper case.
  for (const char* target : {"/v1.41/containers/json", "/api/ucp/config/logging",
                             "/enzi/v0/accounts", "/id", "/roles"}) {
    const auto r =
        policy.Decide(MakeExchange("get", target, 200), Stage::kResponseComplete, MakeContext());
    ASSERT_TRUE(r.has_value()) << target;
    EXPECT_EQ(r->kind, "docker-swarm") << target;
    EXPECT_EQ(r->verb, "GET") << target;
  }
}

TEST(LongRunningTest, Table) {
  const std::pair<const char*, bool> cases[] = {
      {"/api/v1/pods?watch=true", true},
      {"/api/v1/watch/pods", true},
      {"/api/v1/namespaces/ns/pods/p/exec?command=sh", true},
      {"/api/v1/namespaces/ns/pods/p/attach", true},
      {"/api/v1/namespaces/ns/pods/p/log?follow=true", true},
      {"/api/v1/namespaces/ns/pods/p/portforward", true},
      {"/api/v1/namespaces/ns/services/s/proxy/x", true},
      {"/api/v1/namespaces/ns/pods", false},
      {"/api/v1/namespaces/ns/pods/p", false},
      {"/v1.41/events", true},
      {"/v1.41/events?until=1700000000", false},
      {"/v1.41/containers/abc/attach?stream=1", true},
      {"/v1.41/containers/abc/logs?follow=1", true},
      {"/v1.41/containers/abc/logs?follow=0", false},
      {"/v1.41/containers/abc/logs", false},
      {"/v1.41/services/s/logs?follow=true", true},
      {"/v1.41/exec/e1/start", true},
      {"/v1.41/containers/abc/stats", true},
      {"/v1.41/containers/abc/stats?stream=false", false},
      {"/v1.41/containers/json", false},
      {"/api/ucp/config/logging", false},
      // As dockerd reads them (httputils.BoolValue, r.Form): any value but "", 0, no, false,
      // none is true; keys and values are percent-decoded; an empty `until` is no end.
      {"/v1.41/containers/abc/logs?follow=yes", true},
      {"/v1.41/containers/abc/logs?follow=%20TRUE", true},
      {"/v1.41/containers/abc/logs?follow=No", false},
      {"/v1.41/containers/abc/logs?follow=", false},
      {"/v1.41/containers/abc/logs?%66ollow=1", true},
      {"/v1.41/containers/abc/logs?follow;x=1&follow=1", true},
      {"/v1.41/containers/abc/stats?stream=none", false},
      {"/v1.41/containers/abc/stats?stream=%zz&stream=0", false},
      {"/v1.41/events?until=", true},
      {"/v1.41/events?%75ntil=1700000000", false},
  };
  for (const auto& [target, want] : cases) {
    http::HttpRequest request;
    request.method = "GET";
    request.target = target;
    if (std::string_view(target).find("exec/e1/start") != std::string_view::npos)
      request.method = "POST";
    EXPECT_EQ(IsLongRunning(request), want) << target;
  }
}

TEST(DecideTest, RequestLevelPayloadAndRedaction) {
  PolicyConfig config;
  config.level = Level::kRequest;
  const AuditPolicy policy(config);
  auto plain = MakeExchange("POST", "/v1.41/containers/create", 201);
  plain.request.body = R"({"Image":"nginx"})";
  plain.request.body_size = plain.request.body.size();
  auto record = policy.Decide(plain, Stage::kResponseComplete, MakeContext());
  ASSERT_TRUE(record.has_value());
  ASSERT_TRUE(record->request_object.has_value());
  EXPECT_EQ(record->request_object->kind, RequestObject::Kind::kJson);
  EXPECT_EQ(record->annotations.count("mke-audit-tap/redacted"), 0u);

  const char* kSecret = "s3cr3t-policy-VALUE";
  const std::pair<const char*, const char*> redacted[] = {
      {"POST", "/v1.41/secrets/create"},
      {"POST", "/secrets/abc/update"},
      {"POST", "/v1.41/swarm/join"},
      {"POST", "/swarm/update"},
      {"POST", "/auth/login"},
      {"POST", "/api/v1/namespaces/ns/secrets"},
      {"PUT", "/api/v1/namespaces/ns/secrets/s"},
      {"PATCH", "/api/v1/namespaces/ns/secrets/s"},
  };
  for (Level level : {Level::kMetadata, Level::kRequest}) {
    PolicyConfig c;
    c.level = level;
    const AuditPolicy p(c);
    for (const auto& [method, target] : redacted) {
      auto exchange = MakeExchange(method, target, 200);
      exchange.request.body =
          std::string(R"({"Data":")") + kSecret + R"(","password":")" + kSecret + R"("})";
      exchange.request.body_size = exchange.request.body.size();
      auto r = p.Decide(exchange, Stage::kResponseComplete, MakeContext());
      ASSERT_TRUE(r.has_value()) << target;  // still audited
      EXPECT_EQ(r->annotations.at("mke-audit-tap/redacted"), "true") << target;
      if (level == Level::kRequest) {
        ASSERT_TRUE(r->request_object.has_value()) << target;
        EXPECT_EQ(r->request_object->kind, RequestObject::Kind::kRedacted) << target;
        EXPECT_EQ(r->request_object->text.find(kSecret), std::string::npos) << target;
      } else {
        EXPECT_FALSE(r->request_object.has_value()) << target;
      }
    }
  }
}

}  // namespace
}  // namespace mat::audit

// The three readings of a Docker version segment, side by side (util/docker_version.h).
TEST(DockerVersionTest, ThreeRulesEachErringSafe) {
  using mat::IsDockerVersionSegment;
  using mat::VersionRule;
  struct Case {
    const char* segment;
    bool strict, router, any_case;
  } cases[] = {
      {"v1.41", true, true, true}, {"v1", false, true, true},       {"v.41", false, true, true},
      {"v1.", false, true, true},  {"v1.2.3", false, true, true},   {"V1.41", false, false, true},
      {"v", false, false, false},  {"v1.41x", false, false, false}, {"x1.41", false, false, false},
      {"", false, false, false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(IsDockerVersionSegment(c.segment, VersionRule::kStrict), c.strict) << c.segment;
    EXPECT_EQ(IsDockerVersionSegment(c.segment, VersionRule::kRouter), c.router) << c.segment;
    EXPECT_EQ(IsDockerVersionSegment(c.segment, VersionRule::kAnyCase), c.any_case) << c.segment;
  }
  EXPECT_EQ(mat::StripDockerVersion("/v1.41/_ping", VersionRule::kStrict), "/_ping");
  EXPECT_EQ(mat::StripDockerVersion("/v1.41", VersionRule::kStrict), "/");
  EXPECT_EQ(mat::StripDockerVersion("/v1.41x/_ping", VersionRule::kStrict), "/v1.41x/_ping");
  EXPECT_EQ(mat::StripDockerVersion("/v1/_ping", VersionRule::kStrict), "/v1/_ping");
  EXPECT_EQ(mat::StripDockerVersion("/v1/_ping", VersionRule::kRouter), "/_ping");
  EXPECT_EQ(mat::StripDockerVersion("//v1.41/_ping", VersionRule::kStrict), "//v1.41/_ping");
}
