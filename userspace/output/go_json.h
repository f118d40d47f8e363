// Internal to userspace/output: the Go-style JSON pieces shared by the MKE line writer and the
// audit.k8s.io/v1 Event writer, and the line size cap both apply. Defined in mke_line.cpp.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string>
#include <string_view>

#include "audit/payload.h"
#include "audit/policy.h"
#include "output/mke_line.h"

namespace mat::output::internal {

// Appends a string literal that is known to need no escaping.
template <size_t N>
void AppendLiteral(std::string& out, const char (&text)[N]) {
  out.append(text, N - 1);
}

// The inside of AppendGoJsonString's literal, without the quotes.
void AppendEscaped(std::string& out, std::string_view text);

// Writes the members of one JSON object (or map) whose values are strings, skipping the empty
// ones: `first` before the first member written ('{', or 0 when the caller wrote it), ',' before
// the others.
class MemberWriter {
 public:
  MemberWriter(std::string& out, char first) : out_(out), separator_(first) {}
  // `key` is the member up to the value (R"("uid":")"), `close` what follows it.
  void Put(std::string_view key, std::string_view value, std::string_view close = "\"") {
    if (value.empty()) return;
    Separate();
    out_.append(key);
    AppendEscaped(out_, value);
    out_.append(close);
  }
  // The separator of a member the caller writes itself.
  void Separate() {
    if (separator_ != 0) out_.push_back(separator_);
    separator_ = ',';
  }

 private:
  std::string& out_;
  char separator_;
};

// The raw length of the longest prefix of `text` whose escaped form (AppendEscaped) takes at
// most `budget` bytes. The prefix ends at a boundary of what the escaper treats as one unit (a
// whole valid UTF-8 sequence, or one byte), so it never splits a character. `*escaped` (when not
// null) receives the escaped size of that prefix.
size_t EscapedPrefix(std::string_view text, size_t budget, size_t* escaped = nullptr);
// The size of AppendEscaped's output for `text`.
size_t EscapedSize(std::string_view text);

// Go encoding/json of a value (GoJsonDump, appended).
void AppendGoJsonValue(std::string& out, const nlohmann::json& value);

// Parses `text` as JSON (without exceptions) and appends it as AppendGoJsonValue does: objects
// with their keys sorted byte-wise, as Go writes a map. False (nothing appended) when `text` is
// not JSON. Defined in k8s_event.cpp, away from the MKE line writer: nlohmann's parser,
// instantiated in mke_line.cpp, made GCC stop inlining std::string::append on its hot path
// (+20% instructions a line).
bool AppendParsedJson(std::string& out, std::string_view text);

// A metav1.MicroTime / MKE time value: "\"2019-01-30T17:21:45.316157Z\"", or null when not
// `known`.
void AppendTimeValue(std::string& out, uint64_t wall_ns, bool known);

// A decimal integer.
void AppendInt(std::string& out, int64_t value);

// True when record.request_object is set and says something (kind != kNone).
bool HasRequestObject(const audit::AuditRecord& record);

// The requestObject value: kJson re-encoded Go-style with sorted keys (the text is parsed
// without exceptions; text that does not parse is written as a string), kString as a string,
// kRedacted as the string audit::kRedactedMarker.
void AppendRequestObject(std::string& out, const audit::RequestObject& object);

// The annotations the writers add themselves, merged into (and overriding) record.annotations.
// (keys in audit/policy_tables.h)
inline constexpr std::string_view kFieldsKey = audit::kFieldsAnnotation;
inline constexpr std::string_view kIncompleteKey = audit::kIncompleteAnnotation;
inline constexpr std::string_view kRequestObjectKey = audit::kRequestObjectAnnotation;
inline constexpr std::string_view kRequestUriKey = audit::kRequestUriAnnotation;

struct Annotation {
  std::string_view key, value;
};

// A few annotations, kept sorted byte-wise by key, keys unique. Keys and values are the
// writers' own plain ASCII text that needs no escaping (they are copied as they are).
class ExtraAnnotations {
 public:
  void Set(std::string_view key, std::string_view value);
  void Erase(std::string_view key);
  std::span<const Annotation> items() const { return {items_.data(), size_}; }
  bool empty() const { return size_ == 0; }

 private:
  std::array<Annotation, 4> items_{};
  size_t size_ = 0;
};

// The annotations every line of `record` carries: incomplete -> kIncompleteKey "true"; a
// truncated request object -> kRequestObjectKey "truncated".
ExtraAnnotations BaseExtras(const audit::AuditRecord& record);

// Appends the JSON object of `annotations` merged with `extras` (which win on equal keys), keys
// sorted byte-wise as Go sorts a map's keys.
void AppendAnnotations(std::string& out, const std::map<std::string, std::string>& annotations,
                       std::span<const Annotation> extras);
inline bool HasAnnotations(const audit::AuditRecord& record, const ExtraAnnotations& extras) {
  return !record.annotations.empty() || !extras.empty();
}

// What varies between the attempts to fit a line under the cap.
struct LineView {
  bool request_object;  // write record.request_object (only when HasRequestObject)
  std::string_view request_uri;
  const ExtraAnnotations* extras;
};

// Appends one whole line of `record` as `view` says.
using LineWriter = void (*)(std::string& out, const audit::AuditRecord& record,
                            const UserFacts& user, const std::string& audit_id, uint64_t now_ns,
                            const LineView& view);

// The cap a LineOptions means: 0 (no cap), or max_line_bytes raised to kMinLineBytes.
size_t EffectiveCap(const LineOptions& options);

// The line of `record` written by `write`, cut down to at most `cap` (> 0) bytes, for a record
// whose full line is longer (see LineOptions for the steps).
std::string FitLine(const audit::AuditRecord& record, const UserFacts& user,
                    const std::string& audit_id, uint64_t now_ns, size_t cap, LineWriter write);

}  // namespace mat::output::internal
