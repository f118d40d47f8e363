#include "options.h"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string_view>

#include "config/toml_reader.h"

namespace mat {
namespace {

bool ParseUnsigned(std::string_view text, uint64_t min, uint64_t max, uint64_t* out) {
  if (text.empty() || text.size() > 20) return false;
  std::string s(text);
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || s[0] == '-' || v < min || v > max) return false;
  *out = v;
  return true;
}

// Reads the configuration file into o. Command-line flags are applied afterwards and win.
bool ApplyConfigFile(const std::string& path, Options* o, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = "--config: cannot read " + path;
    return false;
  }
  std::stringstream text;
  text << in.rdbuf();
  std::string parse_error;
  auto doc =
      config::ParseToml(text.str(), &parse_error, {"audit_log_configuration", "mke_audit_tap"});
  if (!doc) {
    *error = path + ": " + parse_error;
    return false;
  }
  auto fail = [&](const config::TomlValue& v, const std::string& what) {
    *error = path + ": line " + std::to_string(v.line) + ": " + what;
    return false;
  };
  auto str = [](const config::TomlValue& v) { return std::get_if<std::string>(&v.v); };
  auto boolean = [](const config::TomlValue& v) { return std::get_if<bool>(&v.v); };
  auto integer = [](const config::TomlValue& v) { return std::get_if<int64_t>(&v.v); };
  auto strings = [&](const config::TomlValue& v, std::vector<std::string>* out) {
    const auto* arr = std::get_if<config::TomlArray>(&v.v);
    if (arr == nullptr) return false;
    for (const auto& item : *arr) {
      const std::string* s = str(item);
      if (s == nullptr) return false;
      out->push_back(*s);
    }
    return true;
  };
  for (const auto& [key, v] : (*doc)["audit_log_configuration"]) {
    if (key == "level") {
      const std::string* s = str(v);
      auto level = s ? audit::ParseLevel(*s) : std::nullopt;
      if (!level) return fail(v, "level must be \"\", \"metadata\" or \"request\"");
      o->level = *level;
    } else if (key == "support_dump_include_audit_logs") {
      const bool* b = boolean(v);
      if (b == nullptr) return fail(v, key + " must be true or false");
      o->support_dump_include_audit_logs = *b;
    } else {
      return fail(v, "unknown key " + key + " in [audit_log_configuration]");
    }
  }
  struct UIntKey {
    const char* name;
    uint64_t min, max;
    std::function<void(uint64_t)> set;
  };
  const UIntKey uint_keys[] = {
      {"cap_bytes", 4096, 1u << 20, [&](uint64_t n) { o->cap_bytes = static_cast<uint32_t>(n); }},
      {"ringbuf_bytes", 1u << 16, 1u << 30,
       [&](uint64_t n) { o->ringbuf_bytes = static_cast<uint32_t>(n); }},
      {"max_body_bytes", 0, 16u << 20, [&](uint64_t n) { o->max_body_bytes = n; }},
      {"poll_ms", 1, 1000, [&](uint64_t n) { o->poll_ms = static_cast<uint32_t>(n); }},
      {"rescan_ms", 50, 3600000, [&](uint64_t n) { o->rescan_ms = static_cast<uint32_t>(n); }},
      {"idle_timeout", 1, 30 * 86400,
       [&](uint64_t n) { o->idle_timeout_s = static_cast<uint32_t>(n); }},
      {"max_line_bytes", 0, 16u << 20, [&](uint64_t n) { o->max_line_bytes = n; }},
      {"response_timeout", 0, 86400,
       [&](uint64_t n) { o->response_timeout_s = static_cast<uint32_t>(n); }},
      {"token_ttl", 1, 30 * 86400, [&](uint64_t n) { o->token_ttl_s = static_cast<uint32_t>(n); }},
      {"token_cache_size", 0, 1000000, [&](uint64_t n) { o->token_cache_size = n; }},
  };
  for (const auto& [key, v] : (*doc)["mke_audit_tap"]) {
    bool done = false;
    for (const auto& k : uint_keys) {
      if (key != k.name) continue;
      const int64_t* n = integer(v);
      if (n == nullptr || *n < 0 || static_cast<uint64_t>(*n) < k.min ||
          static_cast<uint64_t>(*n) > k.max)
        return fail(v, key + " must be an integer from " + std::to_string(k.min) + " to " +
                           std::to_string(k.max));
      k.set(static_cast<uint64_t>(*n));
      done = true;
    }
    if (done) continue;
    if (key == "license_key" || key == "format" || key == "log_level" || key == "record" ||
        key == "user_map" || key == "client_ca") {
      const std::string* s = str(v);
      if (s == nullptr) return fail(v, key + " must be a string");
      if (key == "license_key") o->license_key = *s;
      if (key == "record") o->record_file = *s;
      if (key == "user_map") o->user_map = *s;
      if (key == "client_ca") o->client_ca = *s;
      if (key == "format") {
        if (*s != "mke" && *s != "k8s") return fail(v, "format must be \"mke\" or \"k8s\"");
        o->format = *s;
      }
      if (key == "log_level") o->log_level = *s;
    } else if (key == "comm" || key == "ignore" || key == "redact") {
      std::vector<std::string>* out = key == "comm"     ? &o->comms
                                      : key == "ignore" ? &o->ignore
                                                        : &o->redact;
      if (!strings(v, out)) return fail(v, key + " must be an array of strings");
    } else if (key == "pid") {
      const auto* arr = std::get_if<config::TomlArray>(&v.v);
      if (arr == nullptr) return fail(v, "pid must be an array of integers");
      for (const auto& item : *arr) {
        const int64_t* n = integer(item);
        if (n == nullptr || *n <= 0 || *n > 4194304) return fail(item, "bad pid");
        o->pids.push_back(static_cast<pid_t>(*n));
      }
    } else if (key == "default_ignore" || key == "default_redact" ||
               key == "every_request_received" || key == "audit_grpc") {
      const bool* b = boolean(v);
      if (b == nullptr) return fail(v, key + " must be true or false");
      if (key == "default_ignore") o->no_default_ignore = !*b;
      if (key == "default_redact") o->no_default_redact = !*b;
      if (key == "every_request_received") o->every_request_received = *b;
      if (key == "audit_grpc") o->audit_grpc = *b;
    } else {
      return fail(v, "unknown key " + key + " in [mke_audit_tap]");
    }
  }
  return true;
}

}  // namespace

std::string UsageText() {
  return R"(Usage: mke-audit-tap --level LEVEL (--comm NAME | --pid PID)... [options]
       mke-audit-tap --replay FILE [--level LEVEL] [options]

Passive MKE audit logging: captures the HTTPS API calls made to the target processes (through
uprobes on their TLS library) and writes one MKE-format audit line per API request to stdout.
Operational messages go to stderr; a line containing "ready" is written once probes are attached.

Audit:
  --level none|metadata|request  audit level ("" and none disable capture; default none)
  --license-key KEY              license key written into every line (user.extra.licenseKey)
  --config FILE                  TOML configuration file: MKE's [audit_log_configuration]
                                 section (level, support_dump_include_audit_logs) and an
                                 [mke_audit_tap] section with any option below by its long
                                 name with '_' for '-' (lists as arrays: comm, pid, ignore,
                                 redact; default_ignore/default_redact = false); other
                                 sections (a whole MKE config file) are skipped. Flags win.
  --format mke|k8s               mke: MKE's audit line (default); k8s: audit.k8s.io/v1 Event
                                 lines, as Kubernetes audit consumers (Falco k8saudit) read
  --ignore PATH                  also ignore PATH (repeatable; a trailing * matches any
                                 continuation; matched after an optional /vN.NN prefix)
  --no-default-ignore            drop MKE's default ignore list (/_ping /ca /auth ...)
  --audit-grpc                   also audit gRPC calls (swarmkit's manager/node protocol on
                                 port 2377: heartbeats, task status; not user API calls, so
                                 skipped by default); their payload is never written
  --redact 'METHOD PATH'         also redact the payload of this call (repeatable; {id} matches
                                 one path segment, METHOD * any), e.g. 'POST /plugins/{id}/set'
  --no-default-redact            drop the default redacted calls (secrets, swarm join/update,
                                 auth/login); Kubernetes secrets and sensitive fields and
                                 headers stay redacted
  --response-timeout S           write a request still without response after S seconds at
                                 stage RequestReceived (default 60; 0: only at connection end)
  --max-line-bytes N             no line longer than N bytes (default 16384, as Docker's log
                                 drivers split longer lines; 0: no cap): a payload that does not
                                 fit is dropped, then a too-long URI cut, and the line says so
                                 in an annotation
  --every-request-received       also write a RequestReceived line for every request when it
                                 is complete, as the Kubernetes audit does (same auditID)

Identity (who made the request; the annotation mke-audit-tap/user-identified-by says how):
  --client-ca FILE               PEM CA bundle (MKE's client CA) that client certificates must
                                 chain to: the tap sees a certificate before the server
                                 verifies it, so without this a certificate's CN is written as
                                 client-certificate-unverified, and with it one that does not
                                 chain names nobody (unresolved)
  --user-map FILE                JSON file mapping certificate CNs and login names to MKE
                                 account ids: {"users":[{"match":"cn:NAME"|"login:NAME",
                                 "id":"ACCOUNT-ID","name":"LOGIN"}]}; reread when it changes
                                 (a broken version is logged and the previous map kept)
  --token-ttl S                  remember a session token learned at a login for S seconds
                                 after its last use (default 3600, MKE's session lifetime)
  --token-cache-size N           session tokens remembered at most (default 10000; the least
                                 recently used goes first; 0: learn none)

Targets (repeatable, at least one unless --replay):
  --comm NAME                    every process whose command name is NAME
  --pid PID                      process PID and all its descendants

Capture:
  --cap-bytes N                  plaintext bytes delivered per TLS call (default 65536,
                                 4096..1048576); the rest is counted as truncated
  --ringbuf-bytes N              kernel ring buffer size, a power of two (default 8388608)
  --max-body-bytes N             request/response body bytes kept per message (default 65536)
  --poll-ms N                    how often the kernel ring buffer is drained, ms (default 20;
                                 it is drained at once when an eighth of it is full)
  --rescan-ms N                  how often to look for new target processes (default 1000)
  --idle-timeout S               end connections idle this long, seconds (default 900)

Record and replay:
  --record FILE                  also write the raw tap records to FILE (mode 0600; it holds
                                 PLAINTEXT, including credentials: protect it); a symbolic
                                 link, FIFO, device or another user's file there is refused
  --replay FILE                  run the pipeline from a recording instead of the kernel
                                 (needs no privileges)

Other:
  --log-level LEVEL              trace|debug|info|warn|error (default info), to stderr
  --help                         this text
  --version                      the version
)";
}

std::optional<Options> ParseOptions(int argc, char** argv, std::string* error) {
  Options o;
  // The configuration file first, so that flags override it.
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string path;
    if (arg == "--config" && i + 1 < argc) path = argv[i + 1];
    if (arg.rfind("--config=", 0) == 0) path = std::string(arg.substr(9));
    if (!path.empty()) {
      if (!ApplyConfigFile(path, &o, error)) return std::nullopt;
      o.config_file = path;
    }
  }
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view value;
    size_t eq = arg.find('=');
    bool inline_value = arg.rfind("--", 0) == 0 && eq != std::string_view::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto need = [&](std::string_view* out) {
      if (inline_value) {
        *out = value;
        return true;
      }
      if (i + 1 >= argc) {
        *error = std::string(arg) + " needs a value";
        return false;
      }
      *out = argv[++i];
      return true;
    };
    auto number = [&](uint64_t min, uint64_t max, uint64_t* out) {
      std::string_view v;
      if (!need(&v)) return false;
      if (!ParseUnsigned(v, min, max, out)) {
        *error = std::string(arg) + ": expected a number from " + std::to_string(min) + " to " +
                 std::to_string(max) + ", got '" + std::string(v) + "'";
        return false;
      }
      return true;
    };
    std::string_view v;
    uint64_t n = 0;
    if (arg == "--help" || arg == "-h") {
      o.help = true;
    } else if (arg == "--version") {
      o.version = true;
    } else if (arg == "--level") {
      if (!need(&v)) return std::nullopt;
      auto level = audit::ParseLevel(v);
      if (!level) {
        *error = "--level: expected none, metadata or request, got '" + std::string(v) + "'";
        return std::nullopt;
      }
      o.level = *level;
    } else if (arg == "--config") {
      if (!need(&v)) return std::nullopt;
      o.config_file = v;
    } else if (arg == "--comm") {
      if (!need(&v)) return std::nullopt;
      if (v.empty() || v.size() > 15) {
        *error = "--comm: a command name has 1 to 15 characters, got '" + std::string(v) + "'";
        return std::nullopt;
      }
      o.comms.emplace_back(v);
    } else if (arg == "--pid") {
      if (!number(1, 4194304, &n)) return std::nullopt;
      o.pids.push_back(static_cast<pid_t>(n));
    } else if (arg == "--license-key") {
      if (!need(&v)) return std::nullopt;
      o.license_key = v;
    } else if (arg == "--record") {
      if (!need(&v)) return std::nullopt;
      o.record_file = v;
    } else if (arg == "--replay") {
      if (!need(&v)) return std::nullopt;
      o.replay_file = v;
    } else if (arg == "--cap-bytes") {
      if (!number(4096, 1u << 20, &n)) return std::nullopt;
      o.cap_bytes = static_cast<uint32_t>(n);
    } else if (arg == "--ringbuf-bytes") {
      if (!number(1u << 16, 1u << 30, &n)) return std::nullopt;
      if (n & (n - 1)) {
        *error = "--ringbuf-bytes: must be a power of two";
        return std::nullopt;
      }
      o.ringbuf_bytes = static_cast<uint32_t>(n);
    } else if (arg == "--max-body-bytes") {
      if (!number(0, 16u << 20, &n)) return std::nullopt;
      o.max_body_bytes = n;
    } else if (arg == "--poll-ms") {
      if (!number(1, 1000, &n)) return std::nullopt;
      o.poll_ms = static_cast<uint32_t>(n);
    } else if (arg == "--rescan-ms") {
      if (!number(50, 3600000, &n)) return std::nullopt;
      o.rescan_ms = static_cast<uint32_t>(n);
    } else if (arg == "--idle-timeout") {
      if (!number(1, 30 * 86400, &n)) return std::nullopt;
      o.idle_timeout_s = static_cast<uint32_t>(n);
    } else if (arg == "--format") {
      if (!need(&v)) return std::nullopt;
      if (v != "mke" && v != "k8s") {
        *error = "--format: expected mke or k8s, got '" + std::string(v) + "'";
        return std::nullopt;
      }
      o.format = v;
    } else if (arg == "--ignore") {
      if (!need(&v)) return std::nullopt;
      if (v.empty() || v[0] != '/') {
        *error = "--ignore: a path starting with '/', got '" + std::string(v) + "'";
        return std::nullopt;
      }
      o.ignore.emplace_back(v);
    } else if (arg == "--no-default-ignore") {
      o.no_default_ignore = true;
    } else if (arg == "--audit-grpc") {
      o.audit_grpc = true;
    } else if (arg == "--redact") {
      if (!need(&v)) return std::nullopt;
      size_t space = v.find(' ');
      if (space == std::string_view::npos || space == 0 || space + 1 >= v.size() ||
          v[space + 1] != '/') {
        *error = "--redact: expected 'METHOD /path', got '" + std::string(v) + "'";
        return std::nullopt;
      }
      o.redact.emplace_back(v);
    } else if (arg == "--no-default-redact") {
      o.no_default_redact = true;
    } else if (arg == "--response-timeout") {
      if (!number(0, 86400, &n)) return std::nullopt;
      o.response_timeout_s = static_cast<uint32_t>(n);
    } else if (arg == "--max-line-bytes") {
      if (!number(0, 16u << 20, &n)) return std::nullopt;
      o.max_line_bytes = n;
    } else if (arg == "--every-request-received") {
      o.every_request_received = true;
    } else if (arg == "--client-ca") {
      if (!need(&v)) return std::nullopt;
      if (v.empty()) {
        *error = "--client-ca: needs a file name";
        return std::nullopt;
      }
      o.client_ca = v;
    } else if (arg == "--user-map") {
      if (!need(&v)) return std::nullopt;
      if (v.empty()) {
        *error = "--user-map: needs a file name";
        return std::nullopt;
      }
      o.user_map = v;
    } else if (arg == "--token-ttl") {
      if (!number(1, 30 * 86400, &n)) return std::nullopt;
      o.token_ttl_s = static_cast<uint32_t>(n);
    } else if (arg == "--token-cache-size") {
      if (!number(0, 1000000, &n)) return std::nullopt;
      o.token_cache_size = n;
    } else if (arg == "--log-level") {
      if (!need(&v)) return std::nullopt;
      if (v != "trace" && v != "debug" && v != "info" && v != "warn" && v != "error") {
        *error = "--log-level: expected trace, debug, info, warn or error";
        return std::nullopt;
      }
      o.log_level = v;
    } else {
      *error = "unknown option '" + std::string(arg) + "' (see --help)";
      return std::nullopt;
    }
  }
  if (o.help || o.version) return o;
  if (!o.record_file.empty() && !o.replay_file.empty()) {
    *error = "--record and --replay cannot be combined";
    return std::nullopt;
  }
  if (o.replay_file.empty() && o.level != audit::Level::kNone && o.comms.empty() &&
      o.pids.empty()) {
    *error = "no targets: give --comm NAME or --pid PID (or --replay FILE)";
    return std::nullopt;
  }
  return o;
}

}  // namespace mat
