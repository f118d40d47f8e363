// The audit's policy tables in one place: the default ignore list, the default redacted calls,
// sensitive JSON fields and headers, and every annotation key the auditor writes. The rules
// that read them are in policy.cpp (ignore, kind, stages) and payload.cpp (redaction); an
// operator changes the lists with `ignore` and `redact` in the configuration file (options.cpp).
// To redact a new call by default, add it to DefaultRedactedCalls (policy_tables.cpp) and a
// row to the redaction tests (payload_test.cpp).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mat::audit {

// The MKE default ignore list (see ../shared/design.md): /_ping /ca /auth /trustedregistryca
// /kubeauth /metrics /info /version* /debug /openid_keys /apidocs /kubernetesdocs /manage
std::vector<std::string> DefaultIgnoreList();

// A call matched by method and path. The path pattern is matched against the path after an
// optional Docker API version prefix (/vN.NN); "{id}" matches one non-empty path segment.
// Matching is wider than any server's routing, on purpose (over-matching costs payload detail,
// under-matching would leak): method and literal segments compare ASCII case-insensitively; the
// request path is cleaned first (query and fragment cut, an absolute-form "http(s)://host"
// dropped, empty segments from "//" and trailing slashes dropped, "." dropped, ".." resolved),
// then a leading "/v[0-9.]+" segment is dropped; the path matches when either its text as sent
// or its percent-decoded text matches. So "/secrets/create/", "/v1.41//secrets/./create" and
// "/secrets/%63reate?x" all match "/secrets/create"; "/secretsx/create" and
// "/secrets/a/update/extra" match nothing.
struct CallPattern {
  std::string method;  // upper case; "*" matches any
  std::string path;    // e.g. "/secrets/{id}/update"
};

// The design's default redaction list: POST /secrets/create, POST /secrets/{id}/update,
// POST /swarm/join, POST /swarm/update, POST /auth/login. Kubernetes secrets create, update
// and patch are redacted by RedactK8sSecrets below.
std::vector<CallPattern> DefaultRedactedCalls();

// A JSON field of a call's body that must never be written; the rest of the body may be.
struct SensitiveField {
  CallPattern call;
  std::vector<std::string> pointer;  // path of object keys from the root, e.g. {"UnlockKey"}
};
// /swarm/init signing keys (SigningCAKey, CAConfig.SigningCAKey and Spec.CAConfig.SigningCAKey,
// where the Docker API puts it), /swarm/unlock UnlockKey, /configs/create and
// /configs/{id}/update Data, POST /auth (Docker's registry login, in case it is not ignored)
// password, auth, identitytoken, registrytoken. Keys match as Go's encoding/json matches struct
// fields (case-insensitively), at every key spelling present. For Kubernetes any "stringData"
// and the "data" of a Secret object are removed too (matched by RequestInfo and by the body's
// "kind", see Redactor; not listed here).
std::vector<SensitiveField> DefaultSensitiveFields();

// Headers never written anywhere (case-insensitive): Authorization, Proxy-Authorization, Cookie,
// Set-Cookie, X-Registry-Auth, X-Registry-Config (the registry credentials of POST /build).
std::vector<std::string> DefaultSensitiveHeaders();

// The marker written as requestObject for a redacted call at request level.
inline constexpr std::string_view kRedactedMarker = "[REDACTED by mke-audit-tap]";

// Annotation keys ("annotations" of the audit line). Values are strings.
// How the line's user was found: identity::MethodName() ("client-certificate", "bearer-token",
// "learned-session-token", "unix-peer-credentials", "anonymous", "no-credential-seen", ...).
inline constexpr char kUserIdentifiedByAnnotation[] = "mke-audit-tap/user-identified-by";
// MKE lines (which have no impersonatedUser field): whom a Kubernetes client impersonated.
inline constexpr char kImpersonatedUserAnnotation[] = "mke-audit-tap/impersonated-user";
inline constexpr char kImpersonatedGroupsAnnotation[] = "mke-audit-tap/impersonated-groups";
// "true" when the call's payload was redacted (a redacted call or sensitive fields removed).
inline constexpr char kRedactedAnnotation[] = "mke-audit-tap/redacted";
// Why the requestObject is missing or cut: "truncated" (cut in capture or for the line cap),
// "grpc-omitted", "dropped: line over N bytes".
inline constexpr char kRequestObjectAnnotation[] = "mke-audit-tap/request-object";
// "true" when part of the exchange was lost (a gap in the byte stream).
inline constexpr char kIncompleteAnnotation[] = "mke-audit-tap/incomplete";
// On a line written without a response status, why: "none seen", "none seen before the response
// timeout", "none seen: the client reset the stream" (HTTP/2, and the other reasons it knows),
// or what was seen instead ("HTTP/0.9 answer: no status line"). Never on a line with a status.
inline constexpr char kResponseAnnotation[] = "mke-audit-tap/response";
// "truncated" when the requestURI was cut to fit the line cap.
inline constexpr char kRequestUriAnnotation[] = "mke-audit-tap/request-uri";
// "truncated" when other fields (user extra) were cut to fit the line cap.
inline constexpr char kFieldsAnnotation[] = "mke-audit-tap/fields";

}  // namespace mat::audit
