#include "audit/policy.h"

#include <cctype>
#include <utility>

#include "util/ascii.h"
#include "util/docker_version.h"
#include "util/url.h"

namespace mat::audit {

namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

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

bool ObjectRef::empty() const {
  return resource.empty() && namespace_.empty() && api_group.empty() && api_version.empty() &&
         subresource.empty() && uid.empty();
}

bool IsIgnored(const std::vector<std::string>& ignore, std::string_view path) {
  const std::string_view stripped = StripDockerVersion(path, VersionRule::kStrict);
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
  // Every Kubernetes path below starts with one of these second bytes: most Docker paths are
  // decided by that byte alone.
  if (path.size() < 2) return kDocker;
  switch (path[1]) {
    case 'a':
    case 'h':
    case 'l':
    case 'r':
    case 'o':
    case '.':
      break;
    default:
      return kDocker;
  }
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

bool IsGrpc(const http::HttpRequest& request) {
  const std::string* type = http::FindHeader(request.headers, "Content-Type");
  constexpr std::string_view kGrpc = "application/grpc";
  if (type == nullptr || !StartsWithIgnoreCase(*type, kGrpc)) return false;
  return type->size() == kGrpc.size() || (*type)[kGrpc.size()] == '+' ||
         (*type)[kGrpc.size()] == ';';
}

std::optional<AuditRecord> AuditPolicy::Decide(const http::HttpExchange& exchange, Stage stage,
                                               const RequestContext& context) const {
  std::optional<AuditRecord> record(std::in_place);
  if (!Decide(exchange, stage, context, &*record)) record.reset();
  return record;
}

bool AuditPolicy::Decide(const http::HttpExchange& exchange, Stage stage,
                         const RequestContext& context, AuditRecord* out) const {
  if (config_.level == Level::kNone) return false;
  const http::HttpRequest& request = exchange.request;
  const std::string_view target = request.target;
  const std::string_view path = target.substr(0, target.find('?'));
  if (IsIgnored(config_.ignore, path)) return false;
  const bool grpc = IsGrpc(request);
  if (grpc && !config_.audit_grpc) return false;

  // Every field is set or cleared; assignments keep the strings' storage of the last record.
  AuditRecord& record = *out;
  record.kind.assign(ClassifyKind(path));
  record.level = config_.level;
  record.stage = stage;
  record.request_uri.assign(request.target);
  record.verb.clear();
  record.object_ref.resource.clear();
  record.object_ref.namespace_.clear();
  record.object_ref.api_group.clear();
  record.object_ref.api_version.clear();
  record.object_ref.subresource.clear();
  record.object_ref.uid.clear();
  record.response_code.reset();
  record.request_object.reset();
  record.annotations.clear();
  record.user_agent.clear();
  std::optional<K8sRequestInfo> k8s;
  if (record.kind == "kubernetes") {
    k8s = ParseK8sRequestInfo(request.method, target);
    record.verb = k8s->verb;
    if (k8s->is_resource_request) {
      record.object_ref.resource = k8s->resource;
      record.object_ref.namespace_ = k8s->namespace_;
      record.object_ref.api_group = k8s->api_group;
      record.object_ref.api_version = k8s->api_version;
      record.object_ref.subresource = k8s->subresource;
    }
  } else {
    record.verb.reserve(request.method.size());
    for (char c : request.method) record.verb.push_back(AsciiUpper(c));
  }
  if (context.source.empty()) {
    record.source_ips.clear();
  } else {
    record.source_ips.resize(1);
    record.source_ips[0].assign(context.source);
  }
  record.request_received_ns =
      request.headers_done_ns != 0 ? request.headers_done_ns : request.first_byte_ns;
  record.stage_ns = context.stage_time_ns;
  if (stage != Stage::kRequestReceived && exchange.response.has_value()) {
    record.response_code = exchange.response->status;
    if (auto uid = ObjectIdOf(record.kind, record.verb, path, exchange))
      record.object_ref.uid = *uid;
  }
  record.incomplete = exchange.incomplete;
  const K8sRequestInfo* info = k8s ? &*k8s : nullptr;
  if (redactor_.IsRedacted(request, path, info)) record.annotations[kRedactedAnnotation] = "true";
  if (grpc && config_.level == Level::kRequest) {
    record.annotations[kRequestObjectAnnotation] = "grpc-omitted";
  } else if (config_.level == Level::kRequest) {
    RequestObject object = redactor_.BuildRequestObject(request, path, info);
    if (object.kind != RequestObject::Kind::kNone) {
      if (object.truncated) record.annotations[kRequestObjectAnnotation] = "truncated";
      record.request_object = std::move(object);
    }
  }
  if (const std::string* agent = http::FindHeader(request.headers, "User-Agent"))
    record.user_agent.assign(*agent);
  return true;
}

namespace {

// httputils.BoolValue, as dockerd reads a flag of the query: anything but "", "0", "no",
// "false" and "none" (any case, spaces trimmed) is true.
bool DockerBoolValue(std::string_view value) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  for (std::string_view no : {"", "0", "no", "false", "none"}) {
    if (EqualsIgnoreCase(value, no)) return false;
  }
  return true;
}

// httputils.BoolValueOrDefault: `if_absent` when the query has no such key.
bool DockerQueryFlag(std::string_view target, std::string_view name, bool if_absent) {
  const std::optional<std::string> value = GoQueryValue(target, name);
  return value ? DockerBoolValue(*value) : if_absent;
}

// The first path segments after an optional Docker version prefix (at most kMax of them;
// count() tells how many the path has in all, up to kMax + 1), without allocating.
struct DockerSegments {
  static constexpr size_t kMax = 3;
  std::string_view part[kMax];
  size_t n = 0;  // segments seen, capped at kMax + 1

  explicit DockerSegments(std::string_view path) {
    size_t i = 0;
    bool first = true;
    while (i < path.size() && n <= kMax) {
      while (i < path.size() && path[i] == '/') ++i;
      size_t j = path.find('/', i);
      if (j == std::string_view::npos) j = path.size();
      if (j > i) {
        std::string_view s = path.substr(i, j - i);
        const bool version = first && IsDockerVersionSegment(s, VersionRule::kRouter);
        first = false;
        if (!version) {
          if (n < kMax) part[n] = s;
          ++n;
        }
      }
      i = j;
    }
  }
  size_t size() const { return n; }
  std::string_view operator[](size_t k) const { return part[k]; }
};

}  // namespace

bool IsLongRunning(const http::HttpRequest& request) {
  const std::string_view target = request.target;
  const std::string_view path = target.substr(0, target.find('?'));
  if (ClassifyKind(path) == "kubernetes") {
    K8sRequestInfo info = ParseK8sRequestInfo(request.method, target);
    if (info.verb == "watch" || info.verb == "proxy") return true;
    const std::string& sub = info.subresource;
    return sub == "attach" || sub == "exec" || sub == "log" || sub == "portforward" ||
           sub == "proxy";
  }
  const DockerSegments p(path);
  // dockerd's events stream until `until` names a time (an empty one is no time).
  if (p.size() == 1 && p[0] == "events") return GoQueryValue(target, "until").value_or("").empty();
  if (p.size() == 3 && p[0] == "exec" && p[2] == "start") return true;
  if (p.size() >= 3 && p[0] == "containers" && p[2] == "attach") return true;
  if (p.size() == 3 && p[2] == "logs" &&
      (p[0] == "containers" || p[0] == "services" || p[0] == "tasks"))
    return DockerQueryFlag(target, "follow", false);
  if (p.size() == 3 && p[0] == "containers" && p[2] == "stats")
    return DockerQueryFlag(target, "stream", true);
  return false;
}

AuditPolicy::AuditPolicy(PolicyConfig config)
    : config_(std::move(config)), redactor_(config_.redaction) {}

}  // namespace mat::audit
