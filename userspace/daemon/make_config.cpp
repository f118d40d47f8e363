#include "daemon/make_config.h"

namespace mat::daemon {

mat::pipeline::PipelineConfig MakeConfig(const mat::Options& o) {
  mat::pipeline::PipelineConfig config;
  config.policy.level = o.level;
  if (o.no_default_ignore) config.policy.ignore.clear();
  config.policy.audit_grpc = o.audit_grpc;
  config.policy.ignore.insert(config.policy.ignore.end(), o.ignore.begin(), o.ignore.end());
  if (o.no_default_redact) config.policy.redaction.redacted_calls.clear();
  for (const std::string& call : o.redact) {
    if (auto parsed = mat::ParseRedactedCall(call))  // checked when the options were read
      config.policy.redaction.redacted_calls.push_back({parsed->first, parsed->second});
  }
  config.tracker.http.max_body_bytes = o.max_body_bytes;
  config.tracker.http.max_header_bytes = o.max_header_bytes;
  config.tracker.http.max_pending_requests = o.max_pending_requests;
  config.tracker.http.max_connection_bytes = o.max_connection_bytes;
  config.tracker.http2.max_header_list_bytes = o.max_header_bytes;
  config.tracker.http2.max_streams = o.max_pending_requests;
  config.tracker.http2.max_connection_bytes = o.max_connection_bytes;
  config.tracker.max_connections = o.max_connections;
  config.identity.max_connections = o.max_connections;  // client certificates kept, one each
  config.license_key = o.license_key;
  config.format =
      o.format == "k8s" ? mat::pipeline::OutputFormat::kK8s : mat::pipeline::OutputFormat::kMke;
  config.every_request_received = o.every_request_received;
  config.line.max_line_bytes = o.max_line_bytes;
  config.response_timeout_ns = uint64_t{o.response_timeout_s} * 1000000000ull;
  config.identity.user_map_path = o.user_map;
  config.identity.client_ca_path = o.client_ca;
  config.identity.tokens.ttl_ns = uint64_t{o.token_ttl_s} * 1000000000ull;
  config.identity.tokens.max_entries = o.token_cache_size;
  config.local_socket_ignore = o.local_socket_ignore;
  return config;
}

}  // namespace mat::daemon
