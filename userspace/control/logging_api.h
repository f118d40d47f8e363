// MKE's logging settings API (GET/PUT /api/ucp/config/logging): the JSON document
// {"logLevel":"INFO","auditLevel":"metadata","supportDumpIncludeAuditLogs":false}, formatted as
// one compact line (the source document's `curl ... --data $(cat auditlog.json)` splits on
// spaces) and checked strictly on the way in. Pure: no I/O.
#pragma once

#include <string>
#include <string_view>

#include "audit/policy.h"
#include "util/result.h"

namespace mat::control {

struct LoggingSettings {
  std::string log_level = "info";  // as spdlog names it (NormalizeLogLevel)
  audit::Level audit_level = audit::Level::kNone;
  bool support_dump_include_audit_logs = false;
  bool operator==(const LoggingSettings&) const = default;
};

// {"logLevel":"INFO","auditLevel":"metadata","supportDumpIncludeAuditLogs":false}: keys in this
// order, no spaces, no newline. logLevel as MKE writes it (upper case; "WARNING" for warn),
// auditLevel "" for none (as MKE's configuration file spells it).
std::string FormatLoggingSettings(const LoggingSettings& settings);

// A PUT body applied to `current`: every field is optional (a missing one keeps its value), an
// unknown field, a value of the wrong type, an unknown level or anything but one JSON object is
// an error. The new settings, or the error (for a 400 answer).
Result<LoggingSettings> ParseLoggingSettings(std::string_view body, const LoggingSettings& current);

// {"error":"message"}: the body of every 4xx/5xx answer of the admin API.
std::string JsonError(std::string_view message);

}  // namespace mat::control
