// The admin API without a network: the logging settings JSON (MKE's document, compact, checked
// strictly), the routes (405, 400, 403, 404), the options that start it, and the textual
// write-back of a setting into a TOML configuration file.
#include "control/admin_api.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "config/config_writer.h"
#include "config/toml_reader.h"
#include "control/logging_api.h"
#include "options.h"
#include "parse_args.h"
#include "test_support.h"

namespace mat {
namespace {

using control::LoggingSettings;

TEST(LoggingJson, GetIsTheDocumentsCompactLine) {
  LoggingSettings s;
  s.audit_level = audit::Level::kMetadata;
  EXPECT_EQ(control::FormatLoggingSettings(s),
            R"({"logLevel":"INFO","auditLevel":"metadata","supportDumpIncludeAuditLogs":false})");
  s.audit_level = audit::Level::kNone;
  s.log_level = "warn";
  s.support_dump_include_audit_logs = true;
  EXPECT_EQ(control::FormatLoggingSettings(s),
            R"({"logLevel":"WARNING","auditLevel":"","supportDumpIncludeAuditLogs":true})");
}

TEST(LoggingJson, PutAcceptsTheDocumentAndPartialBodies) {
  LoggingSettings current;
  // The document's auditlog.json, pretty-printed as in its step 3.
  auto next = control::ParseLoggingSettings(R"({
    "logLevel": "DEBUG",
    "auditLevel": "request",
    "supportDumpIncludeAuditLogs": true
})",
                                            current);
  ASSERT_TRUE(next) << next.error();
  EXPECT_EQ(next->log_level, "debug");
  EXPECT_EQ(next->audit_level, audit::Level::kRequest);
  EXPECT_TRUE(next->support_dump_include_audit_logs);
  auto partial = control::ParseLoggingSettings(R"({"auditLevel":"none"})", *next);
  ASSERT_TRUE(partial) << partial.error();
  EXPECT_EQ(partial->audit_level, audit::Level::kNone);
  EXPECT_EQ(partial->log_level, "debug");  // kept
  partial = control::ParseLoggingSettings(R"({"auditLevel":""})", *next);
  ASSERT_TRUE(partial) << partial.error();
  EXPECT_EQ(partial->audit_level, audit::Level::kNone);
  partial = control::ParseLoggingSettings(R"({"auditLevel":"Metadata"})", *next);
  ASSERT_TRUE(partial) << partial.error();
  EXPECT_EQ(partial->audit_level, audit::Level::kMetadata);
}

TEST(LoggingJson, PutErrorsChangeNothing) {
  LoggingSettings current;
  current.audit_level = audit::Level::kMetadata;
  for (const char* body :
       {"", "{", "[]", "\"metadata\"", "{\"auditLevel\":\"verbose\"}", "{\"auditLevel\":1}",
        "{\"logLevel\":\"LOUD\"}", "{\"supportDumpIncludeAuditLogs\":\"yes\"}",
        "{\"auditlevel\":\"request\"}", "{\"auditLevel\":\"request\",\"x\":1}",
        "{\"auditLevel\":\"request\"} {}"}) {
    auto out = control::ParseLoggingSettings(body, current);
    ASSERT_FALSE(out) << body;
    EXPECT_NE(out.error(), "") << body;
  }
  auto out = control::ParseLoggingSettings("{\"auditlevel\":\"request\"}", current);
  ASSERT_FALSE(out);
  EXPECT_EQ(
      out.error(),
      "unknown field 'auditlevel' (known: logLevel, auditLevel, supportDumpIncludeAuditLogs)");
}

TEST(LoggingJson, ErrorsAreJsonEvenForBadBytes) {
  auto doc = nlohmann::json::parse(control::JsonError("bad \xff byte \"quoted\""));
  EXPECT_TRUE(doc["error"].is_string());
}

struct Backend {
  LoggingSettings state;
  int applied = 0;
  control::AdminBackend Make() {
    control::AdminBackend b;
    b.settings = [this] { return state; };
    b.apply = [this](const LoggingSettings& s) {
      state = s;
      ++applied;
      return Status();
    };
    b.metrics = [] { return std::string("mke_audit_tap_records_total 1\n"); };
    return b;
  }
};

control::AdminResponse Call(Backend& b, std::string method, std::string target,
                            std::string body = "", std::string subject = "admin") {
  control::AdminRequest r{std::move(method), std::move(target), std::move(body),
                          std::move(subject)};
  return control::HandleAdminRequest(r, b.Make(), {"admin"});
}

TEST(AdminRoutes, GetPutAndRefusals) {
  Backend b;
  b.state.audit_level = audit::Level::kMetadata;
  auto r = Call(b, "GET", "/api/ucp/config/logging");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body,
            R"({"logLevel":"INFO","auditLevel":"metadata","supportDumpIncludeAuditLogs":false})");
  r = Call(b, "GET", "/api/ucp/config/logging", "", "somebody");  // readers need no admin CN
  EXPECT_EQ(r.status, 200);

  r = Call(b, "PUT", "/api/ucp/config/logging", R"({"auditLevel":"request"})", "somebody");
  EXPECT_EQ(r.status, 403);
  EXPECT_TRUE(nlohmann::json::parse(r.body).contains("error"));
  EXPECT_EQ(b.applied, 0);

  r = Call(b, "PUT", "/api/ucp/config/logging", R"({"auditLevel":"loud"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(b.applied, 0);
  r = Call(b, "PUT", "/api/ucp/config/logging", R"({"unknown":true})");
  EXPECT_EQ(r.status, 400);
  r = Call(b, "PUT", "/api/ucp/config/logging", "not json");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(b.applied, 0);

  for (const char* m : {"POST", "DELETE", "PATCH"}) {
    r = Call(b, m, "/api/ucp/config/logging", R"({"auditLevel":"request"})");
    EXPECT_EQ(r.status, 405) << m;
    EXPECT_EQ(r.allow, "GET, PUT");
  }
  EXPECT_EQ(b.applied, 0);

  r = Call(b, "PUT", "/api/ucp/config/logging",
           R"({"logLevel":"INFO","auditLevel":"request","supportDumpIncludeAuditLogs":false})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(b.applied, 1);
  EXPECT_EQ(b.state.audit_level, audit::Level::kRequest);
  EXPECT_EQ(r.body,
            R"({"logLevel":"INFO","auditLevel":"request","supportDumpIncludeAuditLogs":false})");
}

TEST(AdminRoutes, MetricsPageAndUnknown) {
  Backend b;
  auto r = Call(b, "GET", "/metrics", "", "reader");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type.rfind("text/plain", 0), 0u);
  r = Call(b, "GET", "/", "", "reader");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("Configure Audit Log Level"), std::string::npos);
  EXPECT_NE(r.body.find("/api/ucp/config/logging"), std::string::npos);
  EXPECT_EQ(r.body.find("http://"), std::string::npos);  // no external assets
  EXPECT_EQ(r.body.find("https://"), std::string::npos);
  EXPECT_EQ(Call(b, "POST", "/metrics").status, 405);
  EXPECT_EQ(Call(b, "GET", "/nothing").status, 404);
}

// ---- write-back ---------------------------------------------------------------------------

std::string Set(const std::string& text, const std::string& section, const std::string& key,
                const std::string& literal) {
  auto out = config::SetTomlKey(text, section, key, literal);
  EXPECT_TRUE(out) << text << " -> " << out.error();
  return out ? *out : std::string();
}

TEST(ConfigWriteBack, RewritesTheOneLineKeepingCommentsAndSections) {
  const std::string before = R"(# MKE configuration
[scheduling_configuration]
  enable_admin_ucp_scheduling = false
  level = "not this one"

[audit_log_configuration]
  # the audit level
  level = "metadata"   # "", "metadata" or "request"
  support_dump_include_audit_logs = false

[mke_audit_tap]
  comm = ["dockerd"]
)";
  std::string after = Set(before, "audit_log_configuration", "level", "\"request\"");
  std::string want = before;
  want.replace(want.find("level = \"metadata\""), std::string("level = \"metadata\"").size(),
               "level = \"request\"");
  EXPECT_EQ(after, want);
  auto doc = config::ParseToml(after);
  ASSERT_TRUE(doc) << doc.error();
  EXPECT_EQ(std::get<std::string>((*doc)["audit_log_configuration"]["level"].v), "request");
  EXPECT_EQ(std::get<std::string>((*doc)["scheduling_configuration"]["level"].v), "not this one");
}

TEST(ConfigWriteBack, AddsAMissingKeyUnderItsSectionOrAMissingSection) {
  std::string after =
      Set("[audit_log_configuration]\n    support_dump_include_audit_logs = "
          "true\n[other]\nx = 1\n",
          "audit_log_configuration", "level", "\"\"");
  EXPECT_EQ(after,
            "[audit_log_configuration]\n    level = \"\"\n    support_dump_include_audit_logs "
            "= true\n[other]\nx = 1\n");
  after = Set("[other]\nx = 1", "audit_log_configuration", "level", "\"request\"");
  EXPECT_EQ(after, "[other]\nx = 1\n\n[audit_log_configuration]\n  level = \"request\"\n");
  after = Set("", "audit_log_configuration", "level", "\"request\"");
  EXPECT_EQ(after, "[audit_log_configuration]\n  level = \"request\"\n");
}

TEST(ConfigWriteBack, RefusesWhatItCannotEditSafely) {
  // The section also given by a dotted key elsewhere: adding the header would be invalid TOML.
  auto dotted = config::SetTomlKey("audit_log_configuration.level = \"metadata\"\n",
                                   "audit_log_configuration", "level", "\"request\"");
  ASSERT_FALSE(dotted);
  EXPECT_NE(dotted.error().find("would not be valid TOML"), std::string::npos) << dotted.error();
  auto multiline = config::SetTomlKey("[audit_log_configuration]\nlevel = \"\"\"\nmetadata\"\"\"\n",
                                      "audit_log_configuration", "level", "\"request\"");
  ASSERT_FALSE(multiline);
  EXPECT_NE(multiline.error().find("line 2: level is not a one-line value"), std::string::npos)
      << multiline.error();
  EXPECT_EQ(config::TomlString("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
}

TEST(ConfigWriteBack, WritesTheFileInPlaceAndItLoads) {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("mat-writeback-" + std::to_string(::getpid()) + ".toml"))
                         .string();
  std::ofstream(path) << "# keep me\n[audit_log_configuration]\n  level = \"metadata\"\n"
                         "[mke_audit_tap]\n  comm = [\"nginx\"]\n";
  std::filesystem::permissions(
      path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto ino = std::filesystem::status(path).permissions();
  auto written = config::WriteTomlKeys(
      path, "audit_log_configuration",
      {{"level", "\"request\""}, {"support_dump_include_audit_logs", "true"}});
  EXPECT_TRUE(written) << written.error();
  std::stringstream text;
  text << std::ifstream(path).rdbuf();
  EXPECT_EQ(text.str(),
            "# keep me\n[audit_log_configuration]\n  support_dump_include_audit_logs = true\n  "
            "level = \"request\"\n[mke_audit_tap]\n  comm = [\"nginx\"]\n");
  EXPECT_EQ(std::filesystem::status(path).permissions(), ino);
  std::string arg0 = "mke-audit-tap", arg1 = "--config", arg2 = path;
  char* argv[] = {arg0.data(), arg1.data(), arg2.data()};
  auto o = ParseOptions(3, argv);
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->level, audit::Level::kRequest);
  EXPECT_TRUE(o->support_dump_include_audit_logs);
  EXPECT_EQ(o->config_file, path);
  EXPECT_FALSE(
      config::WriteTomlKeys(path + ".missing", "audit_log_configuration", {{"level", "\"\""}}));
  std::filesystem::remove(path);
}

// ---- options --------------------------------------------------------------------------------

using mat::testing::ErrorOf;
using mat::testing::ParseArgs;

TEST(AdminOptions, FlagsAndChecks) {
  std::string error;
  auto o = ParseArgs({"--admin-listen", "127.0.0.1:8443", "--admin-cert", "c.pem", "--admin-key",
                      "k.pem", "--admin-ca", "ca.pem", "--admin-subject", "admin",
                      "--admin-subject", "ops"});
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->admin_listen, "127.0.0.1:8443");
  EXPECT_EQ(o->admin_subjects, (std::vector<std::string>{"admin", "ops"}));
  error = ErrorOf(ParseArgs({"--admin-listen", "127.0.0.1:8443"}));
  EXPECT_NE(error, "");
  EXPECT_NE(error.find("--admin-cert"), std::string::npos) << error;
  error = ErrorOf(ParseArgs({"--admin-listen", "localhost"}));
  EXPECT_NE(error, "");
  EXPECT_NE(error.find("--admin-listen"), std::string::npos) << error;
  error = ErrorOf(ParseArgs({"--admin-listen", "::1:80"}));
  EXPECT_NE(error, "");
  EXPECT_EQ(ErrorOf(ParseArgs({"--admin-listen", "[::1]:80", "--admin-cert", "c", "--admin-key",
                               "k", "--admin-ca", "a"})),
            "");
  error = ErrorOf(ParseArgs({"--admin-listen", "127.0.0.1:0"}));
  EXPECT_NE(error, "");
  error = ErrorOf(ParseArgs({"--admin-listen", "127.0.0.1:65536"}));
  EXPECT_NE(error, "");
}

TEST(AdminOptions, AlsoInTheConfigFile) {
  std::string path = (std::filesystem::temp_directory_path() /
                      ("mat-admin-" + std::to_string(::getpid()) + ".toml"))
                         .string();
  std::ofstream(path) << "[mke_audit_tap]\nadmin_listen = \"127.0.0.1:9443\"\n"
                         "admin_cert = \"c.pem\"\nadmin_key = \"k.pem\"\n"
                         "admin_ca = \"ca.pem\"\nadmin_subject = [\"admin\"]\n";
  std::string error;
  auto o = ParseArgs({"--config", path});
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->admin_listen, "127.0.0.1:9443");
  EXPECT_EQ(o->admin_subjects, std::vector<std::string>{"admin"});
  std::ofstream(path) << "[mke_audit_tap]\nadmin_listen = \"nowhere\"\n";
  error = ErrorOf(ParseArgs({"--config", path}));
  EXPECT_NE(error, "");
  EXPECT_NE(error.find(path + ": line 2: admin_listen"), std::string::npos) << error;
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace mat
