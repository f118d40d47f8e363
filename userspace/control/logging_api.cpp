#include "control/logging_api.h"

#include <nlohmann/json.hpp>

#include "options.h"
#include "util/ascii.h"

namespace mat::control {

std::string FormatLoggingSettings(const LoggingSettings& settings) {
  std::string log_level = settings.log_level == "warn" ? "WARNING" : settings.log_level;
  for (char& c : log_level) c = AsciiUpper(c);
  nlohmann::ordered_json doc;
  doc["logLevel"] = log_level;
  doc["auditLevel"] = std::string(audit::LevelName(settings.audit_level));
  doc["supportDumpIncludeAuditLogs"] = settings.support_dump_include_audit_logs;
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<LoggingSettings> ParseLoggingSettings(std::string_view body,
                                             const LoggingSettings& current) {
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Error{"the body is not valid JSON"};
  if (!doc.is_object()) return Error{"the body must be a JSON object"};
  LoggingSettings next = current;
  for (const auto& [key, value] : doc.items()) {
    if (key == "logLevel") {
      if (!value.is_string()) return Error{"logLevel must be a string"};
      auto level = NormalizeLogLevel(value.get<std::string>());
      if (!level)
        return Error{"logLevel must be one of TRACE, DEBUG, INFO, WARNING, ERROR, got '" +
                     value.get<std::string>() + "'"};
      next.log_level = *level;
    } else if (key == "auditLevel") {
      if (!value.is_string()) return Error{"auditLevel must be a string"};
      auto level = audit::ParseLevel(value.get<std::string>());
      if (!level)
        return Error{"auditLevel must be \"\", \"none\", \"metadata\" or \"request\", got '" +
                     value.get<std::string>() + "'"};
      next.audit_level = *level;
    } else if (key == "supportDumpIncludeAuditLogs") {
      if (!value.is_boolean()) return Error{"supportDumpIncludeAuditLogs must be true or false"};
      next.support_dump_include_audit_logs = value.get<bool>();
    } else {
      return Error{"unknown field '" + key +
                   "' (known: logLevel, auditLevel, supportDumpIncludeAuditLogs)"};
    }
  }
  return next;
}

std::string JsonError(std::string_view message) {
  nlohmann::json doc;
  doc["error"] = std::string(message);
  // A message may quote the client's bytes: invalid UTF-8 is replaced, never thrown on.
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace mat::control
