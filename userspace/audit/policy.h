// The audit policy: a pure function from the facts of one HTTP exchange to an audit record
// (or to "not audited"). No I/O, no clock, no randomness: everything comes in as arguments.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/payload.h"
#include "http/exchange.h"

namespace mat::audit {

enum class Level { kNone, kMetadata, kRequest };
// Parses "", "none", "metadata", "request" (case-insensitive); nullopt for anything else.
std::optional<Level> ParseLevel(std::string_view text);
std::string_view LevelName(Level level);  // "", "metadata", "request"

enum class Stage { kRequestReceived, kResponseStarted, kResponseComplete };
std::string_view StageName(Stage stage);  // "RequestReceived", ...

struct PolicyConfig {
  Level level = Level::kMetadata;
  std::vector<std::string> ignore = DefaultIgnoreList();
  RedactionConfig redaction;
  // gRPC calls (content-type application/grpc...) are swarmkit's node-to-manager protocol
  // (heartbeats, task status, raft), not API calls a user makes; their protobuf payloads carry
  // secrets. Skipped unless this is set; when audited, their payload is never written.
  bool audit_grpc = false;
};

// Facts about the connection and the moment that the HTTP layer does not know.
struct RequestContext {
  std::string source;          // peer "ip:port" ("[v6]:port" for IPv6); empty when unknown
  uint64_t stage_time_ns = 0;  // wall-clock ns of the stage being reported (0: unknown)
};

// What the request acted on. Never carries the object's name (MKE records ids only).
struct ObjectRef {
  std::string resource, namespace_, api_group, api_version, subresource, uid;
  bool empty() const;  // true when every field is empty (then no "objectRef" is written)
};

// Everything one audit line says, independent of its encoding.
struct AuditRecord {
  std::string kind;  // "kubernetes" or "docker-swarm"
  Level level = Level::kMetadata;
  Stage stage = Stage::kResponseComplete;
  std::string request_uri;  // request-target as sent (path and query)
  std::string verb;         // HTTP method upper case, or Kubernetes verb
  std::vector<std::string> source_ips;
  uint64_t request_received_ns = 0;  // 0: unknown -> null
  uint64_t stage_ns = 0;             // 0: unknown -> null
  std::optional<int> response_code;  // absent at RequestReceived
  ObjectRef object_ref;
  bool incomplete = false;  // part of the exchange was lost in capture
  // Request level only: the payload (absent at metadata level or for an empty body).
  std::optional<RequestObject> request_object;
  // Extra facts, written as "annotations" (MKE line) / Event annotations (k8s format), e.g.
  // "mke-audit-tap/incomplete": "true", "mke-audit-tap/redacted": "true",
  // "mke-audit-tap/request-object": "truncated" | "dropped".
  std::map<std::string, std::string> annotations;
  std::string user_agent;  // the User-Agent header (k8s format)
};

// True when `path` (the request-target without the query) is on the ignore list. Matching uses
// the path after an optional Docker API version prefix /vN.NN; an entry matches exactly, an entry
// ending in '*' matches any continuation of the part before '*'.
bool IsIgnored(const std::vector<std::string>& ignore, std::string_view path);

// True when the request is a gRPC call (content-type application/grpc, +proto etc.).
bool IsGrpc(const http::HttpRequest& request);

// "kubernetes" for /apis, /api, /api/v<N>..., and the apiserver's non-resource paths (/healthz,
// /livez, /readyz, /openapi, /logs, /.well-known/openid-configuration, /openid/v1/jwks);
// "docker-swarm" otherwise, including MKE's own /api/ucp/..., /api/clientbundle, ...
// `path` is the request-target without the query.
std::string_view ClassifyKind(std::string_view path);

// Requests whose response streams for as long as the client wants: Kubernetes watch and proxy
// verbs and the attach, exec, log, portforward and proxy subresources; Docker attach, exec
// start, events, logs with follow, stats with streaming. Their line is written at
// ResponseStarted so it is not held back until the stream ends.
bool IsLongRunning(const http::HttpRequest& request);

class AuditPolicy {
 public:
  explicit AuditPolicy(PolicyConfig config);
  // nullopt when the exchange is not audited (level none, ignored path).
  std::optional<AuditRecord> Decide(const http::HttpExchange& exchange, Stage stage,
                                    const RequestContext& context) const;
  // The same into `*record` (every field set or cleared, its strings' storage reused): false,
  // and *record unspecified, when the exchange is not audited.
  bool Decide(const http::HttpExchange& exchange, Stage stage, const RequestContext& context,
              AuditRecord* record) const;
  const PolicyConfig& config() const { return config_; }
  const Redactor& redactor() const { return redactor_; }

 private:
  PolicyConfig config_;
  Redactor redactor_;
};

}  // namespace mat::audit
