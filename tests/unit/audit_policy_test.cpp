#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "audit/policy.h"

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

}  // namespace
}  // namespace mat::audit
