// The TOML reader and the options it feeds: MKE's [audit_log_configuration] section
// verbatim, our [mke_audit_tap] section, a whole MKE config file, and clear errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>

#include "config/toml_reader.h"
#include "options.h"
#include "parse_args.h"
#include "test_support.h"

namespace mat {
namespace {

using mat::testing::ErrorOf;
using mat::testing::ParseArgs;

std::string WriteConfig(const std::string& text) {
  static int n = 0;
  std::string path =
      (std::filesystem::temp_directory_path() /
       ("mat-config-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + ".toml"))
          .string();
  std::ofstream(path) << text;
  return path;
}

TEST(Toml, ReadsTheValuesOptionsTake) {
  auto doc = config::ParseToml(R"(# comment
top = 1
[a]
s = "x\"y\u00e9" # trailing
l = 'C:\raw'
b = true
n = -42
arr = [ "one",
  "two", ]   
[b-c]
nested = [[1, 2], []]
)");
  ASSERT_TRUE(doc) << doc.error();
  EXPECT_EQ(std::get<int64_t>((*doc)[""]["top"].v), 1);
  EXPECT_EQ(std::get<std::string>((*doc)["a"]["s"].v), "x\"y\xc3\xa9");
  EXPECT_EQ(std::get<std::string>((*doc)["a"]["l"].v), "C:\\raw");
  EXPECT_TRUE(std::get<bool>((*doc)["a"]["b"].v));
  EXPECT_EQ(std::get<int64_t>((*doc)["a"]["n"].v), -42);
  EXPECT_EQ(std::get<config::TomlArray>((*doc)["a"]["arr"].v).size(), 2u);
  EXPECT_EQ(std::get<config::TomlArray>((*doc)["b-c"]["nested"].v).size(), 2u);
}

TEST(Toml, ErrorsNameTheLine) {
  const std::pair<const char*, const char*> cases[] = {
      {"a = 1\nb = \"open\n", "line 2: "},
      {"[s]\nx = 1.5.2\n", "line 2: "},
      {"x = 1\nx = 2\n", "line 2: "},
      {"[s]\n[s]\n", "line 2: "},
      {"\n\nx = [1, 2,", "line 3: "},
      {"\nx = 1 2\n", "line 2: "},
      {"= 1\n", "line 1: "},
      {"\n\nx = \"\\q\"\n", "line 3: "},
  };
  for (const auto& [text, want] : cases) {
    auto doc = config::ParseToml(text);
    ASSERT_FALSE(doc) << text;
    EXPECT_NE(doc.error().find(want), std::string::npos) << text << " -> " << doc.error();
  }
}

TEST(Config, MkeSectionVerbatimSetsTheLevel) {
  std::string path = WriteConfig(R"([audit_log_configuration]
  level = "request"
  support_dump_include_audit_logs = true
)");
  std::string error;
  auto o = ParseArgs({"--config", path, "--comm", "nginx"});
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->level, audit::Level::kRequest);
  std::filesystem::remove(path);
}

TEST(Config, EmptyLevelDisablesAndFlagsWin) {
  std::string path = WriteConfig("[audit_log_configuration]\nlevel = \"\"\n");
  std::string error;
  auto o = ParseArgs({"--config", path});
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->level, audit::Level::kNone);
  auto flagged = ParseArgs({"--config=" + path, "--level", "metadata", "--pid", "1"});
  ASSERT_TRUE(flagged) << flagged.error();
  EXPECT_EQ(flagged->level, audit::Level::kMetadata);
  std::filesystem::remove(path);
}

TEST(Config, OurSectionAndAWholeMkeConfigFile) {
  std::string path = WriteConfig(R"([auth]
  default_new_user_role = "restrictedcontrol"
  backend = "managed"
  samlEnabled = false
[auth.sessions]
  lifetime_minutes = 60
  renewal_threshold_minutes = 20
[[custom_kube_api_server_flags]]
  flag = 1.5
[scheduling_configuration]
  enable_admin_ucp_scheduling = true
  default_node_orchestrator = "swarm"
[audit_log_configuration]
  level = "metadata"
  support_dump_include_audit_logs = false
[mke_audit_tap]
  license_key = "KEY-1"
  comm = ["ucp-controller", "dockerd"]
  pid = [4242]
  format = "k8s"
  ignore = ["/healthz"]
  default_ignore = false
  redact = ["POST /plugins/{id}/set"]
  response_timeout = 30
  every_request_received = true
  cap_bytes = 131072
[cluster_config]
  controller_port = 443
  metrics_retention_time = "24h"
)");
  std::string error;
  auto o = ParseArgs({"--config", path});
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->level, audit::Level::kMetadata);
  EXPECT_EQ(o->license_key, "KEY-1");
  EXPECT_EQ(o->comms, (std::vector<std::string>{"ucp-controller", "dockerd"}));
  EXPECT_EQ(o->pids, (std::vector<pid_t>{4242}));
  EXPECT_EQ(o->format, "k8s");
  EXPECT_EQ(o->ignore, (std::vector<std::string>{"/healthz"}));
  EXPECT_TRUE(o->no_default_ignore);
  EXPECT_EQ(o->redact, (std::vector<std::string>{"POST /plugins/{id}/set"}));
  EXPECT_EQ(o->response_timeout_s, 30u);
  EXPECT_TRUE(o->every_request_received);
  EXPECT_EQ(o->cap_bytes, 131072u);
  std::filesystem::remove(path);
}

TEST(Config, BrokenFilesAreClearErrors) {
  const std::pair<const char*, const char*> cases[] = {
      {"[audit_log_configuration]\nlevel = \"verbose\"\n", "line 2: level: expected none"},
      {"[audit_log_configuration]\nlevel = true\n", "line 2"},
      {"[audit_log_configuration]\nsupport_dump_include_audit_logs = \"no\"\n", "true or false"},
      {"[mke_audit_tap]\ncomm = \"x\"\n", "array of strings"},
      {"[mke_audit_tap]\ncap_bytes = 10\n", "from 4096"},
      {"[mke_audit_tap]\nbogus = 1\n", "line 2: bogus: unknown key"},
      {"[mke_audit_tap]\nformat = \"xml\"\n", "line 2: format: expected mke or k8s"},
  };
  for (const auto& [text, want] : cases) {
    std::string path = WriteConfig(text);
    std::string error;
    error = ErrorOf(ParseArgs({"--config", path, "--pid", "1"}));
    EXPECT_NE(error, "") << text;
    EXPECT_NE(error.find(want), std::string::npos) << text << " -> " << error;
    std::filesystem::remove(path);
  }
  std::string error;
  error = ErrorOf(ParseArgs({"--config", "/nonexistent/mat.toml"}));
  EXPECT_NE(error, "");
  EXPECT_NE(error.find("cannot read"), std::string::npos) << error;
  // A device is refused at once (read whole, /dev/zero would fill the memory).
  error = ErrorOf(ParseArgs({"--config", "/dev/zero", "--pid", "1"}));
  EXPECT_NE(error, "");
  EXPECT_EQ(error, "--config /dev/zero: not a regular file");
}

TEST(Options, FlagsAreValidated) {
  const std::pair<std::vector<std::string>, const char*> cases[] = {
      {{"--level", "loud"}, "--level"},
      {{"--pid", "abc"}, "--pid"},
      {{"--format", "xml"}, "--format"},
      {{"--ignore", "nope"}, "--ignore"},
      {{"--redact", "POST"}, "--redact"},
      {{"--ringbuf-bytes", "100000"}, "power of two"},
      {{"--level", "metadata"}, "no targets"},
      {{"--bogus"}, "unknown option"},
      {{"--record", "a", "--replay", "b"}, "cannot be combined"},
  };
  for (const auto& [args, want] : cases) {
    std::string error;
    error = ErrorOf(ParseArgs(args));
    EXPECT_NE(error, "") << args[0];
    EXPECT_NE(error.find(want), std::string::npos) << args[0] << " -> " << error;
  }
}

TEST(Options, LocalSocketFlagsAndKeys) {
  std::string error;
  auto o = ParseArgs({"--pid", "1"});
  ASSERT_TRUE(o) << o.error();
  EXPECT_TRUE(o->local_socket);  // on by default
  EXPECT_TRUE(o->local_socket_ignore.empty());
  o = ParseArgs({"--pid", "1", "--local-socket", "off", "--local-socket-ignore", "ucp-agent",
                 "--local-socket-ignore=curl"});
  ASSERT_TRUE(o) << o.error();
  EXPECT_FALSE(o->local_socket);
  EXPECT_EQ(o->local_socket_ignore, (std::vector<std::string>{"ucp-agent", "curl"}));
  error = ErrorOf(ParseArgs({"--pid", "1", "--local-socket", "yes"}));
  EXPECT_NE(error, "");
  EXPECT_NE(error.find("--local-socket"), std::string::npos) << error;
  error = ErrorOf(ParseArgs({"--pid", "1", "--local-socket-ignore", ""}));
  EXPECT_NE(error, "");

  std::string path = WriteConfig(R"([mke_audit_tap]
  local_socket = "off"
  local_socket_ignore = ["ucp-kv", "ucp-controller"]
)");
  o = ParseArgs({"--config", path, "--pid", "1", "--local-socket", "on"});
  ASSERT_TRUE(o) << o.error();
  EXPECT_TRUE(o->local_socket);  // the flag wins
  EXPECT_EQ(o->local_socket_ignore, (std::vector<std::string>{"ucp-kv", "ucp-controller"}));
  const std::string toml = EffectiveConfigToml(*o);
  EXPECT_NE(toml.find("local_socket = \"on\""), std::string::npos) << toml;
  EXPECT_NE(toml.find("local_socket_ignore = [\"ucp-kv\", \"ucp-controller\"]"), std::string::npos)
      << toml;
  std::filesystem::remove(path);
}

TEST(Options, IdentityFlagsAndKeys) {
  std::string error;
  auto o = ParseArgs({"--pid", "1"});
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->user_map, "");
  EXPECT_EQ(o->token_ttl_s, 3600u);
  EXPECT_EQ(o->token_cache_size, 10000u);
  o = ParseArgs({"--pid", "1", "--user-map", "/etc/mat/users.json", "--token-ttl=600",
                 "--token-cache-size", "0"});
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->user_map, "/etc/mat/users.json");
  EXPECT_EQ(o->token_ttl_s, 600u);
  EXPECT_EQ(o->token_cache_size, 0u);

  std::string path = WriteConfig(R"([mke_audit_tap]
  user_map = "/etc/mat/map.json"
  token_ttl = 7200
  token_cache_size = 50
)");
  o = ParseArgs({"--config", path, "--pid", "1", "--token-ttl", "60"});
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->user_map, "/etc/mat/map.json");
  EXPECT_EQ(o->token_ttl_s, 60u);  // the flag wins
  EXPECT_EQ(o->token_cache_size, 50u);
  std::filesystem::remove(path);

  const std::pair<std::vector<std::string>, const char*> cases[] = {
      {{"--user-map", ""}, "--user-map"},
      {{"--token-ttl", "0"}, "--token-ttl"},
      {{"--token-cache-size", "-1"}, "--token-cache-size"},
      {{"--token-cache-size", "2000000"}, "--token-cache-size"},
  };
  for (const auto& [args, want] : cases) {
    std::vector<std::string> with_target = args;
    with_target.insert(with_target.end(), {"--pid", "1"});
    error = ErrorOf(ParseArgs(with_target));
    EXPECT_NE(error, "") << args[0];
    EXPECT_NE(error.find(want), std::string::npos) << args[0] << " -> " << error;
  }
  path = WriteConfig("[mke_audit_tap]\ntoken_ttl = 0\n");
  error = ErrorOf(ParseArgs({"--config", path, "--pid", "1"}));
  EXPECT_NE(error, "");
  EXPECT_NE(error.find("line 2: token_ttl: expected a number from 1"), std::string::npos) << error;
  std::filesystem::remove(path);
}

// ---- the file gets the validation the flags get (one check per option) ----

// Writes `text` as a config file, parses it with `args` and returns the error ("" when it
// loaded).
std::string ConfigError(const std::string& text, std::vector<std::string> args = {"--pid", "1"}) {
  std::string path = WriteConfig(text);
  args.insert(args.begin(), {"--config", path});
  auto o = ParseArgs(args);
  std::filesystem::remove(path);
  return ErrorOf(o);
}

TEST(Config, LogLevelsAreCaseInsensitiveAndCheckedInBothPlaces) {
  std::string error;
  // MKE's own API says "INFO"; spdlog's parser would turn that into "off".
  for (const auto& [given, want] :
       std::vector<std::pair<std::string, std::string>>{{"INFO", "info"},
                                                        {"Debug", "debug"},
                                                        {"WARNING", "warn"},
                                                        {"warn", "warn"},
                                                        {"ERROR", "error"},
                                                        {"trace", "trace"}}) {
    auto o = ParseArgs({"--pid", "1", "--log-level", given});
    ASSERT_TRUE(o) << given << ": " << o.error();
    EXPECT_EQ(o->log_level, want) << given;
    std::string path = WriteConfig("[mke_audit_tap]\nlog_level = \"" + given + "\"\n");
    o = ParseArgs({"--config", path, "--pid", "1"});
    std::filesystem::remove(path);
    ASSERT_TRUE(o) << given << ": " << o.error();
    EXPECT_EQ(o->log_level, want) << given;
  }
  error = ErrorOf(ParseArgs({"--pid", "1", "--log-level", "loud"}));
  EXPECT_NE(error, "");
  EXPECT_NE(error.find("--log-level"), std::string::npos) << error;
  std::string path = WriteConfig("[mke_audit_tap]\n\nlog_level = \"off\"\n");
  error = ErrorOf(ParseArgs({"--config", path, "--pid", "1"}));
  EXPECT_NE(error, "");
  EXPECT_EQ(error.rfind(path + ": line 3: log_level", 0), 0u) << error;
  std::filesystem::remove(path);
}

TEST(Config, ListEntriesAreValidatedLikeTheirFlags) {
  const std::pair<const char*, const char*> cases[] = {
      // No method: it would be a pattern that never matches, and the call would not be redacted.
      {"[mke_audit_tap]\nredact = [\"POST /ok\",\n  \"/plugins/{id}/set\"]\n",
       "line 3: redact: expected 'METHOD /path'"},
      {"[mke_audit_tap]\nredact = [\"POST plugins\"]\n", "line 2: redact"},
      {"[mke_audit_tap]\nredact = [\"POST /a b\"]\n", "line 2: redact"},
      // The kernel keeps 15 characters of a command name (TASK_COMM_LEN - 1).
      {"[mke_audit_tap]\ncomm = [\"abcdefghijklmnopqrstuvw\"]\n", "line 2: comm: a command name"},
      {"[mke_audit_tap]\ncomm = [\"\"]\n", "line 2: comm"},
      {"[mke_audit_tap]\nignore = [\"healthz\"]\n", "line 2: ignore: a path starting with '/'"},
      {"[mke_audit_tap]\npid = [0]\n", "line 2: pid"},
      {"[mke_audit_tap]\nringbuf_bytes = 100000\n",
       "line 2: ringbuf_bytes: must be a power of two"},
      {"[mke_audit_tap]\nuser_map = \"\"\n", "line 2: user_map"},
  };
  for (const auto& [text, want] : cases) {
    std::string error = ConfigError(text);
    EXPECT_NE(error.find(want), std::string::npos) << text << " -> " << error;
    EXPECT_NE(error.find(".toml: line "), std::string::npos) << error;  // names the file
  }
  std::string error;
  error = ErrorOf(ParseArgs({"--pid", "1", "--redact", "/plugins/{id}/set"}));
  EXPECT_NE(error, "");
  error = ErrorOf(ParseArgs({"--pid", "1", "--comm", "abcdefghijklmnop"}));
  EXPECT_NE(error, "");
  error = ErrorOf(ParseArgs({"--pid", "1", "--redact", "POST /a b"}));
  EXPECT_NE(error, "");
  auto o = ParseArgs({"--pid", "1", "--comm", "abcdefghijklmno", "--redact", "post /x/{id}"});
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->redact, (std::vector<std::string>{"POST /x/{id}"}));
  auto call = ParseRedactedCall("* /plugins/{id}/set");
  ASSERT_TRUE(call.has_value());
  EXPECT_EQ(call->first, "*");
  EXPECT_EQ(call->second, "/plugins/{id}/set");
}

// A whole MKE configuration file is valid TOML of every kind; only our sections are read.
TEST(Config, AnyValidTomlInOtherSectionsLoads) {
  std::string error = ConfigError(R"(# MKE configuration file
[auth]
  default_new_user_role = "restrictedcontrol"
  backend = "managed"
  [auth.sessions]
    lifetime_minutes = 60
  [auth.external_identity_provider]
    issuer = 'https://idp.example.com'
    scopes = {openid = true, profile = "x"}
["a.b"]
  x = 1
[a."b c"]
  y = 2.5
[[registries]]
  host_address = "dtr.example.com"
  ca_bundle = """
-----BEGIN CERTIFICATE-----
[not a table]
-----END CERTIFICATE-----
"""
[[registries]]
  host_address = 'other'
  literal = '''
[neither]'''
[cluster_config]
  custom_kube_api_server_flags = ["--event-ttl=1h0m0s",
    "--service-node-port-range=32768-35535"]
  nested = [
    [1, 2],
    ["a", "b"],
  ]
  when = 1979-05-27T07:32:00Z
  ratio = 0.5
  inline = { a = [1, {b = 2}] }
  dotted.key = "v"
[audit_log_configuration]
  level = "request"
  support_dump_include_audit_logs = false
[mke_audit_tap]
  comm = [
    "ucp-controller",
  ]
[tracking_configuration]
  disable_usageinfo = false
)",
                                  {});
  EXPECT_EQ(error, "");
}

TEST(Config, BrokenTomlAnywhereNamesTheLine) {
  EXPECT_NE(ConfigError("[auth]\nx = 1\n[auth]\n").find(".toml: line 3"), std::string::npos);
  EXPECT_NE(ConfigError("[other]\n\nx = [1, \n").find(".toml: line "), std::string::npos);
  EXPECT_NE(ConfigError("[mke_audit_tap]\ncap_bytes = 1.5\n").find("line 2: cap_bytes"),
            std::string::npos);
  EXPECT_NE(ConfigError("[mke_audit_tap]\nformat = { a = 1 }\n").find("line 2: format"),
            std::string::npos);
  EXPECT_NE(ConfigError("[[mke_audit_tap]]\ncomm = [\"x\"]\n").find("line 1: mke_audit_tap"),
            std::string::npos);
}

// ---- the license key from a file, so it is not in /proc/PID/cmdline ----

std::string WriteFile(const std::string& name, const std::string& text) {
  std::string path =
      (std::filesystem::temp_directory_path() / ("mat-" + std::to_string(::getpid()) + "-" + name))
          .string();
  std::ofstream(path) << text;
  return path;
}

TEST(Options, LicenseKeyFromAFile) {
  std::string key_file = WriteFile("key", "KEY-FROM-FILE\n");
  std::string error;
  auto o = ParseArgs({"--pid", "1", "--license-key-file", key_file});
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->license_key, "KEY-FROM-FILE");  // the trailing newline is not part of it

  std::string path = WriteConfig("[mke_audit_tap]\nlicense_key_file = \"" + key_file + "\"\n");
  o = ParseArgs({"--config", path, "--pid", "1"});
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->license_key, "KEY-FROM-FILE");
  // Flags win over the file, whichever of the two forms each uses.
  o = ParseArgs({"--config", path, "--pid", "1", "--license-key", "KEY-FLAG"});
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->license_key, "KEY-FLAG");
  std::filesystem::remove(path);

  path = WriteConfig("[mke_audit_tap]\nlicense_key = \"KEY-IN-CONFIG\"\n");
  o = ParseArgs({"--config", path, "--pid", "1"});
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->license_key, "KEY-IN-CONFIG");
  o = ParseArgs({"--config", path, "--pid", "1", "--license-key-file", key_file});
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->license_key, "KEY-FROM-FILE");
  std::filesystem::remove(path);

  std::string crlf = WriteFile("key-crlf", "KEY-CRLF\r\n");
  o = ParseArgs({"--pid", "1", "--license-key-file", crlf});
  ASSERT_TRUE(o) << o.error();
  EXPECT_EQ(o->license_key, "KEY-CRLF");
  std::filesystem::remove(crlf);

  // An empty or unreadable file stops the start; the error never shows a key.
  std::string empty = WriteFile("key-empty", "\n");
  std::string two_lines = WriteFile("key-two", "KEY-ONE\nKEY-TWO\n");
  const std::vector<std::string> bad[] = {
      {"--license-key-file", empty},
      {"--license-key-file", "/nonexistent/mat-key"},
      {"--license-key-file", std::filesystem::temp_directory_path().string()},
      {"--license-key-file", two_lines},
      {"--license-key", "A", "--license-key-file", key_file},
  };
  for (const auto& args : bad) {
    std::vector<std::string> with_target = args;
    with_target.insert(with_target.end(), {"--pid", "1"});
    error = ErrorOf(ParseArgs(with_target));
    EXPECT_NE(error, "") << args[1];
    EXPECT_NE(error.find("license-key"), std::string::npos) << error;
    EXPECT_EQ(error.find("KEY-"), std::string::npos) << error;
  }
  path = WriteConfig("[mke_audit_tap]\nlicense_key_file = \"" + empty + "\"\n");
  error = ErrorOf(ParseArgs({"--config", path, "--pid", "1"}));
  EXPECT_NE(error, "");
  EXPECT_NE(error.find("line 2: license_key_file"), std::string::npos) << error;
  std::filesystem::remove(path);
  std::filesystem::remove(empty);
  std::filesystem::remove(two_lines);
  std::filesystem::remove(key_file);
}

// The support dump's config.toml: every key of the options table, the license key masked, and
// read back by --config to the same options.
TEST(Config, EffectiveConfigNamesEveryKeyAndMasksTheLicenseKey) {
  std::string error;
  auto o = ParseArgs({"--level", "request", "--license-key", "SECRET-LICENSE-KEY", "--comm",
                      "nginx", "--comm", "dockerd", "--ignore", "/x\"y", "--cap-bytes", "8192",
                      "--admin-subject", "admin", "--no-default-ignore"});
  ASSERT_TRUE(o) << o.error();
  std::string text = EffectiveConfigToml(*o);
  EXPECT_EQ(text.find("SECRET-LICENSE-KEY"), std::string::npos) << text;
  EXPECT_NE(text.find("license_key = \"<masked: 18 characters>\""), std::string::npos) << text;
  for (const std::string& key : OptionKeys())  // license_key_file as a comment (not both)
    EXPECT_TRUE(text.find("\n" + key + " = ") != std::string::npos ||
                text.find("\n# " + key + " = ") != std::string::npos)
        << key << " missing:\n"
        << text;
  std::string path = WriteConfig(text);
  auto back = ParseArgs({"--config", path});
  ASSERT_TRUE(back) << back.error() << "\n" << text;
  EXPECT_EQ(back->level, audit::Level::kRequest);
  EXPECT_EQ(back->comms, o->comms);
  EXPECT_EQ(back->ignore, o->ignore);
  EXPECT_EQ(back->cap_bytes, 8192u);
  EXPECT_EQ(back->admin_subjects, o->admin_subjects);
  EXPECT_TRUE(back->no_default_ignore);
  std::filesystem::remove(path);
}

// ---- the options table: each option declared once ------------------------------------------
// --help is made from the table: every row carries its entry.
TEST(OptionTable, EveryOptionHasItsHelp) {
  std::set<std::string_view> flags;
  for (const OptionInfo& opt : OptionTable()) {
    EXPECT_TRUE(flags.insert(opt.flag).second) << opt.flag << " is in the table twice";
    EXPECT_FALSE(opt.help.empty()) << opt.flag << " has no help";
    EXPECT_EQ(opt.arg.empty(), opt.kind == OptionInfo::Kind::kSwitch)
        << opt.flag << ": a value's placeholder, and only for an option with a value";
    EXPECT_NE(opt.help.back(), '\n') << opt.flag;
  }
  for (std::string_view flag : {"--help", "--version", "--config"})  // parsed apart, listed too
    EXPECT_TRUE(flags.count(flag)) << flag;
}

// Every flag has one entry in --help, in the table's order; no entry is written by hand in the
// fixed text; every placeholder is filled in.
TEST(OptionTable, HelpListsEveryFlagOnceInTableOrder) {
  const std::string help = UsageText();
  std::set<std::string> table_flags;
  size_t previous = 0;
  std::string previous_flag = "(start)";
  for (const OptionInfo& opt : OptionTable()) {
    std::string flag(opt.flag);
    table_flags.insert(flag);
    std::string entry = "\n  " + flag + (opt.arg.empty() ? " " : " " + std::string(opt.arg) + " ");
    size_t at = help.find(entry);
    ASSERT_NE(at, std::string::npos) << entry << " is not in --help";
    EXPECT_EQ(help.find(entry, at + 1), std::string::npos) << flag << " is in --help twice";
    EXPECT_GT(at, previous) << flag << " comes before " << previous_flag << " in --help";
    previous = at;
    previous_flag = flag;
  }
  // An option entry: "  --flag [ARG]" up to column 33, where its description starts.
  std::istringstream lines(help);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("  --", 0) != 0 || line.size() <= 33 || line.compare(31, 2, "  ") != 0 ||
        line[33] == ' ')
      continue;
    std::string flag = line.substr(2, line.find(' ', 2) - 2);
    EXPECT_TRUE(table_flags.count(flag)) << flag << ": an entry of --help not in the table";
  }
  for (const char* placeholder : {"{default}", "{min}", "{max}"})
    EXPECT_EQ(help.find(placeholder), std::string::npos) << placeholder << " left in:\n" << help;
}

// A default a help text states is written {default}, never as a number of its own.
TEST(OptionTable, HelpTakesDefaultsFromOptions) {
  int placeholders = 0;
  for (const OptionInfo& opt : OptionTable()) {
    if (opt.kind == OptionInfo::Kind::kSwitch) continue;  // "the default ignore list": no value
    std::string_view help = opt.help;
    for (size_t at = help.find("default"); at != std::string_view::npos;
         at = help.find("default", at + 1)) {
      size_t after = at + 7;
      if (after >= help.size() || (help[after] != ' ' && help[after] != '\n')) continue;
      EXPECT_EQ(help.substr(after + 1, 9), "{default}")
          << opt.flag << " states a default of its own: " << help;
      ++placeholders;
    }
  }
  EXPECT_GE(placeholders, 20);
}

// Every option of the table is in --help, and a default --help states is the one in force.
TEST(OptionTable, EveryOptionIsInHelpWithItsDefault) {
  const std::string help = UsageText();
  const std::string effective = EffectiveConfigToml(Options{});
  int defaults_checked = 0;
  for (const OptionInfo& opt : OptionTable()) {
    std::string flag(opt.flag);
    size_t at = help.find("\n  " + flag + " ");
    if (at == std::string::npos) at = help.find("\n  " + flag + "\n");
    ASSERT_NE(at, std::string::npos) << flag << " is not in --help";
    if (opt.key.empty() || opt.kind == OptionInfo::Kind::kSwitch) continue;
    // Its paragraph: up to the next option or blank line, white space folded.
    size_t end = std::min(help.find("\n  --", at + 1), help.find("\n\n", at + 1));
    std::string text;
    for (char c : help.substr(at, end - at)) {
      if (c == '\n' || c == ' ') {
        if (!text.empty() && text.back() != ' ') text += ' ';
      } else {
        text += c;
      }
    }
    size_t d = text.find("(default ");
    if (d == std::string::npos) d = text.find(" default ");
    if (d == std::string::npos) continue;
    d = text.find("default ", d) + 8;
    size_t e = d;
    while (e < text.size() && std::isalnum(static_cast<unsigned char>(text[e]))) ++e;
    std::string stated = text.substr(d, e - d);
    // The value in force: the key's line of the effective configuration of no options at all.
    std::string line_start = "\n" + std::string(opt.key) + " = ";
    size_t v = effective.find(line_start);
    ASSERT_NE(v, std::string::npos) << opt.key;
    v += line_start.size();
    std::string value = effective.substr(v, effective.find('\n', v) - v);
    if (value.size() >= 2 && value.front() == '"') value = value.substr(1, value.size() - 2);
    EXPECT_EQ(stated, value) << flag << ": --help says default " << stated << ", in force " << value
                             << "\n"
                             << text;
    ++defaults_checked;
  }
  EXPECT_GE(defaults_checked, 20);
}

// Every key of the table takes, in the file, what its flag takes, with the same checks: a value
// accepted by one is accepted by the other with the same effect; rejected by one, by both.
TEST(OptionTable, FileAndFlagAcceptTheSameValues) {
  const std::vector<std::string> texts = {"",
                                          "x",
                                          "/x",
                                          "x y",
                                          "GET /x",
                                          "get /x y",
                                          "on",
                                          "off",
                                          "auto",
                                          "keys",
                                          "k8s",
                                          "mke",
                                          "INFO",
                                          "warning",
                                          "verbose",
                                          "127.0.0.1:8443",
                                          "[::1]:1",
                                          "1.2.3.4",
                                          "abcdefghijklmnop"};
  auto effective = [](const Options& o) {
    std::string text = EffectiveConfigToml(o);
    size_t at = text.find("# configuration file: ");
    if (at != std::string::npos) text.erase(at, text.find('\n', at) + 1 - at);
    return text;
  };
  int compared = 0;
  for (const OptionInfo& opt : OptionTable()) {
    if (opt.key.empty()) continue;
    std::string flag(opt.flag), key(opt.key);
    std::vector<std::pair<std::vector<std::string>, std::string>> cases;  // flag args, TOML value
    if (opt.kind == OptionInfo::Kind::kSwitch) {
      cases.push_back({{flag}, opt.key_negates ? "false" : "true"});
    } else if (opt.kind == OptionInfo::Kind::kNumber) {
      std::vector<uint64_t> numbers = {opt.min, opt.max, opt.max + 1, opt.min + 1, 1024, 65536};
      if (opt.min > 0) numbers.push_back(opt.min - 1);
      for (uint64_t n : numbers) {
        std::string v = std::to_string(n);
        cases.push_back({{flag, v}, opt.repeatable ? "[" + v + "]" : v});
      }
    } else {
      for (const std::string& t : texts)
        cases.push_back({{flag, t}, opt.repeatable ? "[\"" + t + "\"]" : "\"" + t + "\""});
    }
    // A target from a flag, of another option (the file's list would come before the flag's).
    const std::vector<std::string> target = flag == "--pid"
                                                ? std::vector<std::string>{"--comm", "t"}
                                                : std::vector<std::string>{"--pid", "1"};
    for (const auto& [args, toml] : cases) {
      std::vector<std::string> cli = target;
      cli.insert(cli.end(), args.begin(), args.end());
      std::vector<std::string> by_config = target;
      std::string path = WriteConfig("[mke_audit_tap]\n" + key + " = " + toml + "\n");
      by_config.insert(by_config.end(), {"--config", path});
      auto by_flag = ParseArgs(cli);
      auto by_file = ParseArgs(by_config);
      std::filesystem::remove(path);
      EXPECT_EQ(by_flag.ok(), by_file.ok())
          << key << " = " << toml << ": flag: " << (by_flag ? "accepted" : by_flag.error())
          << "; file: " << (by_file ? "accepted" : by_file.error());
      if (by_flag && by_file) {
        EXPECT_EQ(effective(*by_flag), effective(*by_file)) << key << " = " << toml;
        ++compared;
      }
    }
  }
  EXPECT_GE(compared, 100);
}

}  // namespace
}  // namespace mat
