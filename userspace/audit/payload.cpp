#include "audit/payload.h"

#include <boost/container/small_vector.hpp>
#include <cstddef>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <utility>

#include "util/ascii.h"
#include "util/docker_version.h"
#include "util/url.h"

// Principles (the tool sees secrets in plaintext; none may reach an output):
// - Matching is deliberately wider than the servers' routing: every spelling of a path that a
//   server could route to a redacted call (version prefix, "//", "." and "..", percent escapes,
//   trailing slashes, absolute-form targets, query strings) matches, and literal segments and
//   methods compare case-insensitively. A misspelt request that the server rejects still carried
//   its secret on the wire, so over-matching only ever costs payload detail, never a leak.
// - Fail closed: whenever a body that may hold a sensitive value cannot be fully understood
//   (truncated, not JSON, too deep, not parseable, any exception), it becomes kRedacted.
// - JSON object keys compare the way Go's encoding/json matches struct fields (Docker, and
//   Kubernetes before sigs.k8s.io/json): case-insensitively, including the two non-ASCII runes
//   that fold to ASCII letters (U+212A KELVIN SIGN ~ k, U+017F LATIN SMALL LETTER LONG S ~ s).

namespace mat::audit {

namespace {

using Json = nlohmann::json;

// Bodies nested deeper than this are never handed to nlohmann (its dump, copy and our walks
// recurse; a hostile body must not overflow the stack).
constexpr size_t kMaxJsonDepth = 64;
// Ids longer than this are not ids.
constexpr size_t kMaxIdLength = 256;

// A JSON key folded as Go's encoding/json folds field names for its case-insensitive match.
std::string GoFoldKey(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (size_t i = 0; i < key.size(); ++i) {
    if (key.substr(i, 3) == "\xE2\x84\xAA") {  // U+212A KELVIN SIGN
      out.push_back('k');
      i += 2;
    } else if (key.substr(i, 2) == "\xC5\xBF") {  // U+017F LATIN SMALL LETTER LONG S
      out.push_back('s');
      i += 1;
    } else {
      out.push_back(AsciiLower(key[i]));
    }
  }
  return out;
}

bool KeyMatches(std::string_view key, std::string_view wanted) {
  return GoFoldKey(key) == GoFoldKey(wanted);
}

// The path of a request-target: an absolute-form target ("https://host/p") is reduced to its
// path (Go's servers route those too), then the query and fragment are cut off.
std::string_view PathOf(std::string_view target) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (StartsWithIgnoreCase(target, scheme)) {
      const size_t slash = target.find('/', scheme.size());
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
      break;
    }
  }
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] == '?' || target[i] == '#') return target.substr(0, i);
  }
  return target;
}

// The segments of `path` as a router sees them after cleaning: empty segments (from "//" and
// trailing slashes) and "." dropped, ".." pops one, then a leading version segment dropped.
// Views into `path`, appended to `segments` (which is cleared first).
template <typename Segments>
void CleanSegmentsInto(std::string_view path, Segments& segments) {
  segments.clear();
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view segment = path.substr(start, end - start);
    if (segment == "..") {
      if (!segments.empty()) segments.pop_back();
    } else if (!segment.empty() && segment != ".") {
      segments.push_back(segment);
    }
    start = end + 1;
  }
  if (!segments.empty() && IsDockerVersionSegment(segments.front(), VersionRule::kAnyCase))
    segments.erase(segments.begin());
}

std::vector<std::string> CleanSegments(std::string_view path) {
  std::vector<std::string_view> views;
  CleanSegmentsInto(path, views);
  return std::vector<std::string>(views.begin(), views.end());
}

// The ways a server may read the path of `target`: as sent, and percent-decoded.
std::vector<std::vector<std::string>> PathReadings(std::string_view target) {
  const std::string_view path = PathOf(target);
  std::vector<std::vector<std::string>> readings;
  readings.push_back(CleanSegments(path));
  if (path.find('%') != std::string_view::npos) {
    readings.push_back(CleanSegments(PercentDecoded(path)));
  }
  return readings;
}

template <typename Segments>
bool SegmentsMatch(const std::vector<std::string>& pattern, const Segments& segments) {
  if (pattern.size() != segments.size()) return false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == "{id}") continue;  // segments are never empty
    if (!EqualsIgnoreCase(pattern[i], segments[i])) return false;
  }
  return true;
}

// The readings of one request's `path` and `target` (both are checked, so a caller passing an
// unexpected spelling of the path cannot make a redacted call slip through), made once per
// request and matched against every pattern: what MatchesCall(pattern, method, path) ||
// (target != path && MatchesCall(pattern, method, target)) says, without cleaning the same
// path again for each pattern.
class RequestReadings {
 public:
  RequestReadings(std::string_view method, std::string_view path, std::string_view target)
      : method_(method) {
    Add(path);
    if (target != path) Add(target);
  }

  // `wanted` is CleanSegments(pattern.path).
  bool Matches(const CallPattern& pattern, const std::vector<std::string>& wanted) const {
    if (pattern.method != "*" && !EqualsIgnoreCase(pattern.method, method_)) return false;
    for (size_t i = 0; i < count_; ++i) {
      if (SegmentsMatch(wanted, readings_[i])) return true;
    }
    return false;
  }

 private:
  // PathReadings of `target`, as views (into the request or decoded_), without allocating for
  // paths of up to 8 segments.
  void Add(std::string_view target) {
    const std::string_view path = PathOf(target);
    CleanSegmentsInto(path, readings_[count_++]);
    if (path.find('%') != std::string_view::npos) {
      std::string& decoded = decoded_[count_ / 2];
      decoded = PercentDecoded(path);
      CleanSegmentsInto(decoded, readings_[count_++]);
    }
  }

  std::string_view method_;
  std::string decoded_[2];
  boost::container::small_vector<std::string_view, 8> readings_[4];
  size_t count_ = 0;
};

std::string_view ContentType(const http::HttpRequest& request) {
  const std::string* value = http::FindHeader(request.headers, "Content-Type");
  return value == nullptr ? std::string_view() : std::string_view(*value);
}

// application/json, text/json, and any "+json" type: application/json-patch+json,
// application/merge-patch+json, application/strategic-merge-patch+json, vendor types...
bool IsJsonContentType(std::string_view content_type) {
  const size_t semicolon = content_type.find(';');
  if (semicolon != std::string_view::npos) content_type = content_type.substr(0, semicolon);
  while (!content_type.empty() && (content_type.front() == ' ' || content_type.front() == '\t')) {
    content_type.remove_prefix(1);
  }
  while (!content_type.empty() && (content_type.back() == ' ' || content_type.back() == '\t')) {
    content_type.remove_suffix(1);
  }
  std::string lower;
  for (char c : content_type) lower.push_back(AsciiLower(c));
  return lower == "application/json" || lower == "text/json" ||
         (lower.size() > 5 && lower.ends_with("+json"));
}

bool LooksLikeJson(std::string_view body) {
  for (char c : body) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    return c == '{' || c == '[';
  }
  return false;
}

// Scans bracket nesting outside JSON strings without parsing. False when deeper than `limit`.
bool JsonDepthWithin(std::string_view text, size_t limit) {
  size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > limit) return false;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return true;
}

// Parses a complete JSON text, depth-bounded, without exceptions. nullopt when it is not one.
std::optional<Json> ParseBoundedJson(std::string_view text) {
  if (!JsonDepthWithin(text, kMaxJsonDepth)) return std::nullopt;
  Json value = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return std::nullopt;
  return value;
}

Json Marker() { return Json(std::string(kRedactedMarker)); }

// Replaces the value at `pointer` (object keys from `node`, Go-folded) with the marker, for
// every key that Go would match at each level.
void RedactPointer(Json& node, const std::vector<std::string>& pointer, size_t index) {
  if (index >= pointer.size()) {
    node = Marker();
    return;
  }
  if (!node.is_object()) return;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (KeyMatches(it.key(), pointer[index])) RedactPointer(it.value(), pointer, index + 1);
  }
}

void RedactKeys(Json& object, std::initializer_list<std::string_view> keys) {
  if (!object.is_object()) return;
  for (auto it = object.begin(); it != object.end(); ++it) {
    for (std::string_view key : keys) {
      if (KeyMatches(it.key(), key)) it.value() = Marker();
    }
  }
}

// A Kubernetes Secret object: its "kind" is "Secret".
bool IsSecretObject(const Json& object) {
  if (!object.is_object()) return false;
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (KeyMatches(it.key(), "kind") && it.value().is_string() &&
        EqualsIgnoreCase(it.value().get_ref<const std::string&>(), "Secret")) {
      return true;
    }
  }
  return false;
}

// At any depth: the "data" and "stringData" of every Secret object; with `kubernetes`, also
// every "stringData" key. Depth is bounded by kMaxJsonDepth (checked before parsing).
void RedactSecretContent(Json& node, bool kubernetes) {
  if (node.is_object()) {
    if (IsSecretObject(node)) RedactKeys(node, {"data", "stringData"});
    if (kubernetes) RedactKeys(node, {"stringData"});
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it.value().is_string()) RedactSecretContent(it.value(), kubernetes);
    }
  } else if (node.is_array()) {
    for (Json& element : node) RedactSecretContent(element, kubernetes);
  }
}

bool PointerHasSegment(std::string_view pointer, std::string_view segment) {
  size_t start = 0;
  while (start <= pointer.size()) {
    size_t end = pointer.find('/', start);
    if (end == std::string_view::npos) end = pointer.size();
    if (KeyMatches(pointer.substr(start, end - start), segment)) return true;
    start = end + 1;
  }
  return false;
}

// A JSON patch (RFC 6902 array of operations) sent to the Kubernetes API: on a Secret every
// operation's value (and any element that is not an operation) is replaced; elsewhere the value
// of an operation whose path goes through "stringData" is.
void RedactK8sJsonPatch(Json& patch, bool secret) {
  for (Json& op : patch) {
    if (!op.is_object()) {
      if (secret) op = Marker();
      continue;
    }
    bool redact_value = secret;
    for (auto it = op.begin(); it != op.end(); ++it) {
      if (KeyMatches(it.key(), "path") && it.value().is_string() &&
          PointerHasSegment(it.value().get_ref<const std::string&>(), "stringData")) {
        redact_value = true;
      }
    }
    if (redact_value) RedactKeys(op, {"value"});
  }
}

RequestObject Redacted(bool truncated) {
  RequestObject object;
  object.kind = RequestObject::Kind::kRedacted;
  object.truncated = truncated;
  return object;
}

RequestObject AsString(std::string_view body, bool truncated) {
  RequestObject object;
  object.kind = RequestObject::Kind::kString;
  object.text = std::string(body);
  object.truncated = truncated;
  return object;
}

// "abc..." of 12 to 64 lower-case hex digits (a container, image or local network id, or its
// short form), or 25 lower-case letters and digits (a swarm object id: node, service, task,
// secret, config, overlay network). A name can look like that too; such a name is taken as an
// id (rare, and names of that shape are indistinguishable from ids by the path alone).
bool LooksLikeId(std::string_view text) {
  bool hex = true;
  bool alnum = true;
  for (char c : text) {
    const bool digit = c >= '0' && c <= '9';
    hex = hex && (digit || (c >= 'a' && c <= 'f'));
    alnum = alnum && (digit || (c >= 'a' && c <= 'z'));
  }
  return (hex && text.size() >= 12 && text.size() <= 64) || (alnum && text.size() == 25);
}

std::optional<std::string> UsableId(const Json& value) {
  if (!value.is_string()) return std::nullopt;
  const std::string& id = value.get_ref<const std::string&>();
  if (id.empty() || id.size() > kMaxIdLength) return std::nullopt;
  return id;
}

// The top-level "Id"/"ID"/"id" (any case) of a JSON object response.
std::optional<std::string> TopLevelId(const Json& response) {
  if (!response.is_object()) return std::nullopt;
  for (auto it = response.begin(); it != response.end(); ++it) {
    if (EqualsIgnoreCase(it.key(), "id")) {
      if (auto id = UsableId(it.value())) return id;
    }
  }
  return std::nullopt;
}

// Can `text` be a JSON value at all? Its first non-space byte must start one. (nlohmann builds
// an error message for every failed parse, exceptions off or not: most non-JSON answers are
// ruled out here for nothing.) A UTF-8 byte order mark first is skipped, as nlohmann does.
bool MayBeJson(std::string_view text) {
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    return c == '{' || c == '[' || c == '"' || c == '-' || (c >= '0' && c <= '9') || c == 't' ||
           c == 'f' || c == 'n';
  }
  return false;
}

std::optional<Json> ParseResponse(const http::HttpResponse& response) {
  if (response.body_truncated || response.body.size() < response.body_size) return std::nullopt;
  if (!MayBeJson(response.body)) return std::nullopt;
  return ParseBoundedJson(response.body);
}

std::optional<std::string> KubernetesObjectId(std::string_view verb,
                                              const http::HttpResponse& response) {
  if (verb != "create" && verb != "update" && verb != "patch") return std::nullopt;
  const std::optional<Json> body = ParseResponse(response);
  if (!body || !body->is_object()) return std::nullopt;
  const auto metadata = body->find("metadata");
  if (metadata == body->end() || !metadata->is_object()) return std::nullopt;
  const auto uid = metadata->find("uid");
  if (uid == metadata->end()) return std::nullopt;
  return UsableId(*uid);
}

std::optional<std::string> DockerObjectId(std::string_view verb, std::string_view path,
                                          const http::HttpResponse& response) {
  if (!EqualsIgnoreCase(verb, "POST")) return std::nullopt;
  const std::vector<std::string> segments = CleanSegments(PercentDecoded(PathOf(path)));
  if (segments.empty()) return std::nullopt;
  const std::string& last = segments.back();

  // POST /swarm/init answers with the new node's id as a bare JSON string.
  if (segments.size() == 2 && EqualsIgnoreCase(segments[0], "swarm") &&
      EqualsIgnoreCase(segments[1], "init")) {
    const std::optional<Json> body = ParseResponse(response);
    return body ? UsableId(*body) : std::nullopt;
  }
  // POST /images/create is a pull: its progress messages carry "id" fields that are layer ids
  // and tags, not the id of a created object.
  if (EqualsIgnoreCase(last, "create") && !EqualsIgnoreCase(segments.front(), "images")) {
    const std::optional<Json> body = ParseResponse(response);
    return body ? TopLevelId(*body) : std::nullopt;
  }
  if (EqualsIgnoreCase(last, "update") && segments.size() >= 3) {
    if (const std::optional<Json> body = ParseResponse(response)) {
      if (auto id = TopLevelId(*body)) return id;
    }
    // Docker answers service, node, secret and config updates with an empty body or
    // {"Warnings":...}: the id is in the path, unless the path holds a name.
    const std::string& segment = segments[segments.size() - 2];
    if (LooksLikeId(segment)) return segment;
  }
  return std::nullopt;
}

}  // namespace

bool MatchesCall(const CallPattern& pattern, std::string_view method, std::string_view path) {
  if (pattern.method != "*" && !EqualsIgnoreCase(pattern.method, method)) return false;
  const std::vector<std::string> wanted = CleanSegments(pattern.path);
  for (const std::vector<std::string>& segments : PathReadings(path)) {
    if (SegmentsMatch(wanted, segments)) return true;
  }
  return false;
}

Redactor::Redactor(RedactionConfig config) : config_(std::move(config)) {
  for (const CallPattern& call : config_.redacted_calls)
    redacted_segments_.push_back(CleanSegments(call.path));
  for (const SensitiveField& field : config_.sensitive_fields)
    sensitive_segments_.push_back(CleanSegments(field.call.path));
}

bool Redactor::IsRedacted(const http::HttpRequest& request, std::string_view path,
                          const K8sRequestInfo* k8s) const {
  // The method first: a pattern's method rules most requests out before any path is read.
  bool any_method = false;
  for (const CallPattern& call : config_.redacted_calls) {
    if (call.method == "*" || EqualsIgnoreCase(call.method, request.method)) {
      any_method = true;
      break;
    }
  }
  if (any_method) {
    const RequestReadings readings(request.method, path, request.target);
    for (size_t i = 0; i < config_.redacted_calls.size(); ++i) {
      if (readings.Matches(config_.redacted_calls[i], redacted_segments_[i])) return true;
    }
  }
  if (config_.redact_k8s_secrets && k8s != nullptr && k8s->is_resource_request &&
      k8s->resource == "secrets" && k8s->api_group.empty() && k8s->subresource.empty() &&
      (k8s->verb == "create" || k8s->verb == "update" || k8s->verb == "patch")) {
    return true;
  }
  return false;
}

RequestObject Redactor::BuildRequestObject(const http::HttpRequest& request, std::string_view path,
                                           const K8sRequestInfo* k8s) const {
  const bool truncated = request.body_truncated || request.body.size() < request.body_size;
  if (request.body.empty() && !truncated) return RequestObject{};
  try {
    if (IsRedacted(request, path, k8s)) return Redacted(truncated);

    std::vector<const SensitiveField*> fields;
    const RequestReadings readings(request.method, path, request.target);
    for (size_t i = 0; i < config_.sensitive_fields.size(); ++i) {
      if (readings.Matches(config_.sensitive_fields[i].call, sensitive_segments_[i])) {
        fields.push_back(&config_.sensitive_fields[i]);
      }
    }
    // Every Kubernetes body may carry "stringData" (and a Secret's "data"), in JSON, YAML or
    // protobuf: only a fully parsed JSON body can be cleaned, anything else fails closed.
    const bool sensitive = !fields.empty() || k8s != nullptr;

    // A cut body is not valid JSON, and the cut may fall inside a sensitive value (or the
    // sensitive key may be spelt with escapes no text search would see): fail closed.
    if (truncated) return sensitive ? Redacted(true) : AsString(request.body, true);

    const bool json =
        sensitive || IsJsonContentType(ContentType(request)) || LooksLikeJson(request.body);
    if (!json) return AsString(request.body, false);
    std::optional<Json> body = ParseBoundedJson(request.body);
    if (!body) return sensitive ? Redacted(false) : AsString(request.body, false);

    for (const SensitiveField* field : fields) RedactPointer(*body, field->pointer, 0);
    const bool secret_resource = k8s != nullptr && k8s->resource == "secrets";
    if (secret_resource) RedactKeys(*body, {"data", "stringData"});
    if (k8s != nullptr && body->is_array()) RedactK8sJsonPatch(*body, secret_resource);
    RedactSecretContent(*body, k8s != nullptr);

    RequestObject object;
    object.kind = RequestObject::Kind::kJson;
    // Compact; numbers keep their integer form (floats may be re-spelt, e.g. 1.50 -> 1.5;
    // integers beyond 64 bits become floats). The line writer re-encodes this Go-style.
    object.text = body->dump(-1, ' ', false, Json::error_handler_t::replace);
    return object;
  } catch (...) {
    // Out of memory or anything else unexpected: nothing about the body is written.
    return Redacted(truncated);
  }
}

bool Redactor::IsSensitiveHeader(std::string_view name) const {
  for (const std::string& header : config_.sensitive_headers) {
    if (EqualsIgnoreCase(header, name)) return true;
  }
  return false;
}

std::optional<std::string> ObjectIdOf(std::string_view kind, std::string_view verb,
                                      std::string_view path, const http::HttpExchange& exchange) {
  if (!exchange.response.has_value()) return std::nullopt;
  const http::HttpResponse& response = *exchange.response;
  if (response.status < 200 || response.status > 299) return std::nullopt;
  try {
    if (kind == "kubernetes") return KubernetesObjectId(verb, response);
    return DockerObjectId(verb, path, response);
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace mat::audit
