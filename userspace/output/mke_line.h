// Encodes an AuditRecord as one MKE audit line (a logrus JSON line wrapping "audit"), exactly
// the shape of the reference line in ../shared/design.md: keys sorted byte-wise at every level,
// Go-style escaping (& < > as \u0026 \u003c \u003e), UTC times with six fractional digits, null
// for unknown times.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/policy.h"
#include "util/defaults.h"

namespace mat::output {

// The user a Kubernetes client asked to act as (Impersonate-* headers), as an
// authentication/v1 UserInfo. Written in k8s Event lines as "impersonatedUser".
struct ImpersonatedUserFacts {
  std::string username;
  std::string uid;
  std::vector<std::string> groups;
  std::map<std::string, std::vector<std::string>> extra;
};

struct UserFacts {
  std::string uid;       // MKE account id (see identity/identify.h for what stands in for it)
  std::string username;  // MKE account id
  std::string login;     // extra.username[0]
  std::string license_key;
  std::vector<std::string> groups;  // k8s Event lines only: MKE's line has no groups
  std::optional<ImpersonatedUserFacts> impersonated;  // k8s Event lines only
  // A local socket's peer (extra.pid, extra.comm, extra.container); empty: not written.
  std::string peer_pid, peer_comm, peer_container;
};

// A random RFC 4122 version-4 UUID, from OpenSSL's RAND_bytes.
// The bytes come from a per-thread pool that RAND_bytes refills 4 KiB at a time (dropped in a
// forked child, so parent and child never share ids).
std::string NewAuditId();

// Both formatters cache the text of the last second they formatted (per thread).
// "2019-01-30T17:21:45.316157Z"
std::string FormatMicros(uint64_t wall_ns);
// "2019-01-30T17:21:45Z"
std::string FormatSeconds(uint64_t wall_ns);

// Appends `text` as a JSON string literal exactly as Go 1.19's encoding/json writes it with HTML
// escaping on (as logrus does): \" \\ \n \r \t; other bytes < 0x20 as \u00xx (lowercase hex,
// so \b and \f become \u0008 and \u000c); & < > as \u0026 \u003c \u003e; U+2028 and U+2029 as
// \u2028 \u2029; each byte that does not start a valid UTF-8 sequence as \ufffd; all else raw.
void AppendGoJsonString(std::string& out, std::string_view text);

// Serialises a JSON value compactly as Go's encoding/json would: object keys in the order of the
// (byte-wise sorted) nlohmann object, strings via AppendGoJsonString, floats in Go's format
// (shortest round-trip; exponent form below 1e-6 or from 1e21), NaN/Inf and binary as null.
std::string GoJsonDump(const nlohmann::json& value);

// Options shared by the line writers (FormatMkeLine, FormatK8sEvent).
//
// The line size cap: no line is longer than max_line_bytes (without the newline; 0: no cap;
// a cap below kMinLineBytes is raised to it). A line that would be longer is cut down in steps,
// each measured on the encoded line (escapes expand, so raw sizes say nothing):
//  1. without its requestObject, annotated "mke-audit-tap/request-object":
//     "dropped: line over N bytes" (N the cap), when that fits;
//  2. else requestURI is also cut to the longest prefix that fits (never inside a UTF-8
//     sequence, so it stays valid), annotated "mke-audit-tap/request-uri": "truncated";
//  3. else (huge user, object or annotation fields; never seen in practice) every other string
//     field is also cut to 64 encoded bytes, only the first source IP, at most 8 short
//     annotations of the record and at most 4 groups (of the user, and of the impersonated user,
//     whose extra is dropped) are kept, annotated "mke-audit-tap/fields": "truncated", and
//     requestURI gets what is left.
inline constexpr size_t kMinLineBytes = 4096;
struct LineOptions {
  size_t max_line_bytes = defaults::kMaxLineBytes;
};

// One line, without the trailing newline. `now_ns` fills the envelope's "time".
// "audit" holds: annotations (record.annotations merged with the writer's own, which win on
// equal keys: "mke-audit-tap/incomplete": "true" when record.incomplete,
// "mke-audit-tap/request-object": "truncated" when the request object was cut in capture, and
// those of the line size cap; absent when there are none), auditID, kind, level, metadata
// {"creationTimestamp":null}, objectRef (only when non-empty; only its non-empty fields),
// requestObject (only when record.request_object is set and not kNone: kJson as the JSON value
// re-encoded with sorted keys, kString as a string, kRedacted as the string
// audit::kRedactedMarker), requestReceivedTimestamp, requestURI, responseStatus {"code":N} (only
// when response_code is set), sourceIPs, stage, stageTimestamp and timestamp (null at
// RequestReceived or when unknown), user {"extra":{"licenseKey":[..],"username":[login]},"uid",
// "username"}, verb.
// Written directly into one string (no JSON tree but the one re-encoding a kJson requestObject);
// the unit tests check it byte for byte against the tree-based encoding through GoJsonDump.
std::string FormatMkeLine(const audit::AuditRecord& record, const UserFacts& user,
                          const std::string& audit_id, uint64_t now_ns, const LineOptions& options);
// The same into `out` (cleared first; its storage reused line after line).
void FormatMkeLine(std::string& out, const audit::AuditRecord& record, const UserFacts& user,
                   const std::string& audit_id, uint64_t now_ns, const LineOptions& options);
// The same with the default LineOptions (a 16383-byte cap).
std::string FormatMkeLine(const audit::AuditRecord& record, const UserFacts& user,
                          const std::string& audit_id, uint64_t now_ns);

}  // namespace mat::output
