#include "audit/policy.h"

#include <cctype>
#include <utility>

namespace mat::audit {

namespace {

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

char AsciiUpper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Removes a Docker API version prefix "/v<digits>.<digits>" when it is followed by '/' or by the
// end of the path. "/v1.41/_ping" -> "/_ping", "/v1.41" -> "/", "/v1.41x" stays.
std::string_view StripDockerVersion(std::string_view path) {
  if (path.size() < 5 || path[0] != '/' || path[1] != 'v') return path;
  size_t i = 2;
  const size_t major_start = i;
  while (i < path.size() && IsDigit(path[i])) ++i;
  if (i == major_start || i >= path.size() || path[i] != '.') return path;
  ++i;
  const size_t minor_start = i;
  while (i < path.size() && IsDigit(path[i])) ++i;
  if (i == minor_start) return path;
  if (i == path.size()) return "/";
  if (path[i] != '/') return path;
  return path.substr(i);
}

bool MatchesEntry(std::string_view entry, std::string_view path) {
  if (entry.empty()) return false;
  if (entry.back() == '*') {
    entry.remove_suffix(1);
    return path.starts_with(entry);
  }
  return path == entry;
}

// True for `prefix` itself and for anything below it ("prefix/...").
bool IsOrUnder(std::string_view path, std::string_view prefix) {
  return path == prefix ||
         (path.size() > prefix.size() && path.starts_with(prefix) && path[prefix.size()] == '/');
}

}  // namespace

std::optional<Level> ParseLevel(std::string_view text) {
  if (text.empty() || EqualsIgnoreCase(text, "none")) return Level::kNone;
  if (EqualsIgnoreCase(text, "metadata")) return Level::kMetadata;
  if (EqualsIgnoreCase(text, "request")) return Level::kRequest;
  return std::nullopt;
}

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kNone:
      return "";
    case Level::kMetadata:
      return "metadata";
    case Level::kRequest:
      return "request";
  }
  return "";
}

std::string_view StageName(Stage stage) {
  switch (stage) {
    case Stage::kRequestReceived:
      return "RequestReceived";
    case Stage::kResponseStarted:
      return "ResponseStarted";
    case Stage::kResponseComplete:
      return "ResponseComplete";
  }
  return "";
}

std::vector<std::string> DefaultIgnoreList() {
  return {"/_ping", "/ca",       "/auth",  "/trustedregistryca", "/kubeauth", "/metrics",
          "/info",  "/version*", "/debug", "/openid_keys",       "/apidocs",  "/kubernetesdocs",
          "/manage"};
}

bool ObjectRef::empty() const {
  return resource.empty() && namespace_.empty() && api_group.empty() && api_version.empty() &&
         subresource.empty() && uid.empty();
}

bool IsIgnored(const std::vector<std::string>& ignore, std::string_view path) {
  const std::string_view stripped = StripDockerVersion(path);
  for (const std::string& entry : ignore) {
    if (MatchesEntry(entry, stripped)) return true;
  }
  return false;
}

std::string_view ClassifyKind(std::string_view path) {
  static constexpr std::string_view kDocker = "docker-swarm";
  static constexpr std::string_view kKubernetes = "kubernetes";
  // The Kubernetes resource APIs: /apis (named groups) and /api (the legacy core group, whose
  // only children are versions: /api/v1/...). MKE serves its own API under /api too
  // (/api/ucp/..., /api/clientbundle, ...); those are not Kubernetes.
  if (IsOrUnder(path, "/apis")) return kKubernetes;
  if (path == "/api" || path == "/api/") return kKubernetes;
  if (path.starts_with("/api/v") && path.size() > 6 && IsDigit(path[6])) return kKubernetes;
  // The apiserver's non-resource paths (/version is on the ignore list and shared with Docker).
  for (std::string_view prefix : {"/healthz", "/livez", "/readyz", "/openapi", "/logs",
                                  "/.well-known/openid-configuration", "/openid/v1/jwks"}) {
    if (IsOrUnder(path, prefix)) return kKubernetes;
  }
  return kDocker;
}

AuditPolicy::AuditPolicy(PolicyConfig config) : config_(std::move(config)) {}

std::optional<AuditRecord> AuditPolicy::Decide(const http::HttpExchange& exchange, Stage stage,
                                               const RequestContext& context) const {
  if (config_.level == Level::kNone) return std::nullopt;
  const http::HttpRequest& request = exchange.request;
  const std::string_view target = request.target;
  const std::string_view path = target.substr(0, target.find('?'));
  if (IsIgnored(config_.ignore, path)) return std::nullopt;

  AuditRecord record;
  record.kind = std::string(ClassifyKind(path));
  record.level = config_.level;
  record.stage = stage;
  record.request_uri = request.target;
  record.verb.reserve(request.method.size());
  for (char c : request.method) record.verb.push_back(AsciiUpper(c));
  if (!context.source.empty()) record.source_ips.push_back(context.source);
  record.request_received_ns =
      request.headers_done_ns != 0 ? request.headers_done_ns : request.first_byte_ns;
  record.stage_ns = context.stage_time_ns;
  if (stage != Stage::kRequestReceived && exchange.response.has_value()) {
    record.response_code = exchange.response->status;
  }
  record.incomplete = exchange.incomplete;
  return record;
}

}  // namespace mat::audit
