// MakeConfig (daemon/make_config): every option that shapes the pipeline reaches its field, the
// policy lists add to (or replace) the defaults, and the options' defaults are the ones the
// pipeline's components would use on their own.
#include "daemon/make_config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "output/async_writer.h"
#include "tap/bpf_tap.h"
#include "tls/decrypt_stage.h"

namespace mat::daemon {
namespace {

Options Parse(std::vector<std::string> args) {
  std::vector<char*> argv;
  static std::string name = "mke-audit-tap";
  argv.push_back(name.data());
  for (auto& a : args) argv.push_back(a.data());
  auto o = ParseOptions(static_cast<int>(argv.size()), argv.data());
  EXPECT_TRUE(o) << o.error();
  return o ? *o : Options{};
}

std::vector<std::string> Calls(const audit::RedactionConfig& r) {
  std::vector<std::string> v;
  for (const auto& c : r.redacted_calls) v.push_back(c.method + " " + c.path);
  return v;
}

TEST(MakeConfig, EveryOptionReachesItsField) {
  auto c = MakeConfig(Parse({"--level",
                             "request",
                             "--comm",
                             "x",
                             "--max-body-bytes",
                             "1001",
                             "--max-header-bytes",
                             "2002",
                             "--max-pending-requests",
                             "33",
                             "--max-connection-bytes",
                             "400004",
                             "--max-connections",
                             "505",
                             "--license-key",
                             "K-1",
                             "--format",
                             "k8s",
                             "--every-request-received",
                             "--max-line-bytes",
                             "6006",
                             "--response-timeout",
                             "7",
                             "--user-map",
                             "/u.json",
                             "--client-ca",
                             "/ca.pem",
                             "--token-ttl",
                             "8",
                             "--token-cache-size",
                             "909",
                             "--audit-grpc",
                             "--local-socket-ignore",
                             "kubelet",
                             "--local-socket-ignore",
                             "web"}));
  EXPECT_EQ(c.policy.level, audit::Level::kRequest);
  EXPECT_TRUE(c.policy.audit_grpc);
  EXPECT_EQ(c.tracker.http.max_body_bytes, 1001u);
  EXPECT_EQ(c.tracker.http.max_header_bytes, 2002u);
  EXPECT_EQ(c.tracker.http.max_pending_requests, 33u);
  EXPECT_EQ(c.tracker.http.max_connection_bytes, 400004u);
  // HTTP/2 takes the same caps: a header list, streams, bytes per connection.
  EXPECT_EQ(c.tracker.http2.max_header_list_bytes, 2002u);
  EXPECT_EQ(c.tracker.http2.max_streams, 33u);
  EXPECT_EQ(c.tracker.http2.max_connection_bytes, 400004u);
  EXPECT_EQ(c.tracker.max_connections, 505u);
  EXPECT_EQ(c.identity.max_connections, 505u);  // a client certificate per connection
  EXPECT_EQ(c.license_key, "K-1");
  EXPECT_EQ(c.format, pipeline::OutputFormat::kK8s);
  EXPECT_TRUE(c.every_request_received);
  EXPECT_EQ(c.line.max_line_bytes, 6006u);
  EXPECT_EQ(c.response_timeout_ns, 7'000'000'000ull);
  EXPECT_EQ(c.identity.user_map_path, "/u.json");
  EXPECT_EQ(c.identity.client_ca_path, "/ca.pem");
  EXPECT_EQ(c.identity.tokens.ttl_ns, 8'000'000'000ull);
  EXPECT_EQ(c.identity.tokens.max_entries, 909u);
  EXPECT_EQ(c.local_socket_ignore, (std::vector<std::string>{"kubelet", "web"}));
}

TEST(MakeConfig, IgnoreAndRedactAddToTheDefaultsOrReplaceThem) {
  const audit::PolicyConfig defaults;
  auto added = MakeConfig(Parse({"--comm", "x", "--ignore", "/_ping2", "--redact",
                                 "post /plugins/{id}/set", "--redact", "* /x"}));
  std::vector<std::string> ignore = defaults.ignore;
  ignore.push_back("/_ping2");
  EXPECT_EQ(added.policy.ignore, ignore);
  std::vector<std::string> calls = Calls(defaults.redaction);
  calls.push_back("POST /plugins/{id}/set");  // the method upper-cased
  calls.push_back("* /x");
  EXPECT_EQ(Calls(added.policy.redaction), calls);

  auto replaced = MakeConfig(Parse({"--comm", "x", "--no-default-ignore", "--ignore", "/a",
                                    "--no-default-redact", "--redact", "PUT /b"}));
  EXPECT_EQ(replaced.policy.ignore, (std::vector<std::string>{"/a"}));
  EXPECT_EQ(Calls(replaced.policy.redaction), (std::vector<std::string>{"PUT /b"}));

  auto none = MakeConfig(Parse({"--comm", "x", "--no-default-ignore", "--no-default-redact"}));
  EXPECT_TRUE(none.policy.ignore.empty());
  EXPECT_TRUE(none.policy.redaction.redacted_calls.empty());
}

// The options' defaults are what each component would do without them: a default given in two
// headers cannot drift without this failing.
TEST(MakeConfig, DefaultsAreTheComponentsDefaults) {
  const pipeline::PipelineConfig component;
  auto c = MakeConfig(Options{});
  EXPECT_EQ(c.policy.level, audit::Level::kNone);  // the only one that differs: capture is opt-in
  EXPECT_EQ(c.policy.ignore, component.policy.ignore);
  EXPECT_EQ(Calls(c.policy.redaction), Calls(component.policy.redaction));
  EXPECT_EQ(c.policy.audit_grpc, component.policy.audit_grpc);
  EXPECT_EQ(c.tracker.http.max_body_bytes, component.tracker.http.max_body_bytes);
  EXPECT_EQ(c.tracker.http.max_header_bytes, component.tracker.http.max_header_bytes);
  EXPECT_EQ(c.tracker.http.max_pending_requests, component.tracker.http.max_pending_requests);
  EXPECT_EQ(c.tracker.http.max_connection_bytes, component.tracker.http.max_connection_bytes);
  EXPECT_EQ(c.tracker.http2.max_connection_bytes, component.tracker.http2.max_connection_bytes);
  EXPECT_EQ(c.tracker.max_connections, component.tracker.max_connections);
  EXPECT_EQ(c.format, component.format);
  EXPECT_EQ(c.every_request_received, component.every_request_received);
  EXPECT_EQ(c.response_timeout_ns, component.response_timeout_ns);
  EXPECT_EQ(c.line.max_line_bytes, component.line.max_line_bytes);
  EXPECT_EQ(c.identity.tokens.ttl_ns, component.identity.tokens.ttl_ns);
  EXPECT_EQ(c.identity.tokens.max_entries, component.identity.tokens.max_entries);
  EXPECT_EQ(c.identity.max_connections, component.identity.max_connections);
}

// The options the live auditor hands to the tap, the TLS stage and the output writer itself.
TEST(MakeConfig, LiveDefaultsAreTheComponentsDefaults) {
  const Options o;
  EXPECT_EQ(o.cap_bytes, tap::TapOptions{}.cap_bytes);
  EXPECT_EQ(o.ringbuf_bytes, tap::TapOptions{}.ringbuf_bytes);
  EXPECT_EQ(o.max_connections, tls::StageOptions{}.max_connections);
  EXPECT_EQ(o.output_buffer_bytes, output::AsyncWriterOptions{}.buffer_bytes);
}

}  // namespace
}  // namespace mat::daemon
