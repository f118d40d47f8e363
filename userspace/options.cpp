#include "options.h"

#include <cerrno>
#include <cstdlib>
#include <string_view>

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
  --config FILE                  configuration file (not supported yet: reserved)

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
                                 PLAINTEXT, including credentials: protect it)
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
  if (!o.config_file.empty()) {
    *error = "--config: configuration files are not supported yet";
    return std::nullopt;
  }
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
