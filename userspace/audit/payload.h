// What an audit line may say about a request's payload and the object it created: redaction
// of secret-bearing calls, removal of sensitive fields, the requestObject of the request
// level, and the created or updated object's id. Pure functions over bytes.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/k8s_request_info.h"
#include "audit/policy_tables.h"
#include "http/exchange.h"

namespace mat::audit {

bool MatchesCall(const CallPattern& pattern, std::string_view method, std::string_view path);

struct RedactionConfig {
  std::vector<CallPattern> redacted_calls = DefaultRedactedCalls();
  bool redact_k8s_secrets = true;
  std::vector<SensitiveField> sensitive_fields = DefaultSensitiveFields();
  std::vector<std::string> sensitive_headers = DefaultSensitiveHeaders();
};

// The requestObject of one request at request level.
struct RequestObject {
  enum class Kind { kNone, kJson, kString, kRedacted };
  Kind kind = Kind::kNone;
  // kJson: compact JSON text with sensitive fields replaced by kRedactedMarker (strings);
  // kString: the body as text (not valid JSON, or not JSON at all); kRedacted: empty.
  std::string text;
  bool truncated = false;  // the captured body was cut (capture cap or body cap)
};

class Redactor {
 public:
  explicit Redactor(RedactionConfig config);
  // Whole-payload redaction: true for the redacted calls and (when enabled) Kubernetes
  // secrets create/update/patch (core group, no subresource). `k8s` is null for
  // non-Kubernetes requests. Both `path` and request.target are matched against the calls.
  bool IsRedacted(const http::HttpRequest& request, std::string_view path,
                  const K8sRequestInfo* k8s) const;
  // Builds the requestObject: nothing for an empty body; kRedacted for a redacted call; a JSON
  // body (Content-Type or content sniffing) embedded as JSON with sensitive fields replaced;
  // an invalid JSON body or any other body as a string; a PATCH body as sent (JSON patch,
  // merge patch and strategic merge patch are JSON: embedded as JSON). Never throws.
  // Fail closed: a call with sensitive-field rules, and every Kubernetes request (any body may
  // hold "stringData"), is always parsed as JSON whatever its Content-Type; when its body is
  // truncated, not a single complete JSON value (YAML, protobuf, trailing data), nested deeper
  // than 64 levels, or anything unexpected happens, the result is kRedacted. Other bodies that
  // fail so become kString. Removed values become the string kRedactedMarker. Kubernetes: every
  // "stringData" key at any depth; "data" and "stringData" of any object whose "kind" is
  // "Secret" and at the top of a body sent to the "secrets" resource; in a JSON patch array,
  // the "value" of ops whose path goes through stringData (all ops' values for secrets).
  // `truncated` is set for kString and kRedacted when the captured body was cut.
  RequestObject BuildRequestObject(const http::HttpRequest& request, std::string_view path,
                                   const K8sRequestInfo* k8s) const;
  bool IsSensitiveHeader(std::string_view name) const;
  const RedactionConfig& config() const { return config_; }

 private:
  RedactionConfig config_;
  // The cleaned path segments of each redacted call's and each sensitive field's pattern,
  // computed once here rather than for every request.
  std::vector<std::vector<std::string>> redacted_segments_;
  std::vector<std::vector<std::string>> sensitive_segments_;
};

// The id of the object a create or update call created or updated, for objectRef.uid; never
// its name. Docker/MKE: the response's top-level "Id"/"ID"/"id" (any case) of a successful
// POST .../create (services/create returns {"ID":...}), or the {id} segment of
// POST /.../{id}/update. Kubernetes create/update/patch: the response's metadata.uid.
// nullopt when there is none. The response body is read only for this and written nowhere.
// Only 2xx responses; a truncated or unparseable (or > 64 levels deep) body yields no id.
// Docker/MKE details: `verb` must be POST; POST /swarm/init yields the node id, which Docker
// answers as a bare JSON string; POST /images/create (a pull, whose progress "id"s are layers
// and tags) yields nothing. For .../{x}/update without an id in the response the path segment
// {x} is taken only when it looks like an id, as the path may hold a name: 12-64 lower-case
// hex digits (container ids and short ids) or exactly 25 lower-case letters and digits (swarm
// ids). A name of exactly such a shape cannot be told apart and is taken as an id.
std::optional<std::string> ObjectIdOf(std::string_view kind, std::string_view verb,
                                      std::string_view path, const http::HttpExchange& exchange);

}  // namespace mat::audit
