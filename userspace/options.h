// Command-line options of mke-audit-tap.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "audit/policy.h"
#include "util/defaults.h"
#include "util/result.h"

namespace mat {

inline constexpr const char* kVersion = "0.1.0";

struct Options {
  audit::Level level = audit::Level::kNone;
  std::vector<std::string> comms;
  std::vector<pid_t> pids;
  std::string license_key;       // from --license-key, or read from license_key_file
  std::string license_key_file;  // --license-key-file: keeps the key out of /proc/PID/cmdline
  std::string record_file;
  std::string replay_file;
  // How TLS plaintext is obtained (--capture): auto (secrets per handshake and the socket's
  // bytes where the process allows it, per-call probes otherwise), keys (the first only: a
  // process that cannot is not audited), plaintext (per-call probes only).
  std::string capture = "auto";
  // keys/auto: per-call probes stay this long for connections opened before the auditor
  // (whose handshake it did not see), seconds; 0: none.
  uint32_t bridge_window_s = 600;
  // Audit what dockerd targets serve on their Unix sockets (--local-socket on|off).
  bool local_socket = true;
  // Local peers not written: command name, container name (or swarm service) or id.
  std::vector<std::string> local_socket_ignore;
  uint32_t cap_bytes = defaults::kCapBytes;
  uint32_t ringbuf_bytes = defaults::kRingbufBytes;
  uint32_t rescan_ms = 1000;
  uint32_t poll_ms = 20;
  uint32_t idle_timeout_s = 900;
  // stdout: decided lines held for a slow reader, at most (bytes; beyond: dropped, counted and
  // announced), and how long a stop (SIGTERM) may wait for a blocked reader, seconds.
  uint64_t output_buffer_bytes = defaults::kOutputBufferBytes;
  uint32_t exit_timeout_s = 5;
  size_t max_body_bytes = defaults::kMaxBodyBytes;
  // Memory bounds (issue 13): see --help and README "Memory bounds".
  size_t max_header_bytes =
      defaults::kMaxHeaderBytes;  // per message: HTTP/1.1 header block, HTTP/2 list
  size_t max_pending_requests =
      defaults::kMaxPendingRequests;  // per connection: waiting requests / HTTP/2 streams
  size_t max_connection_bytes =
      defaults::kMaxConnectionBytes;                   // per connection: headers and bodies kept
  size_t max_connections = defaults::kMaxConnections;  // connections (and TLS streams) followed
  std::string log_level = "info";  // trace|debug|info|warn|error, as spdlog names them
  std::string format = "mke";      // mke | k8s
  uint32_t response_timeout_s = 60;
  size_t max_line_bytes = defaults::kMaxLineBytes;
  bool every_request_received = false;
  std::vector<std::string> ignore;  // added to (or, with no_default_ignore, replacing) defaults
  bool no_default_ignore = false;
  bool audit_grpc = false;  // also audit gRPC calls (swarmkit's cluster protocol), no payload
  std::vector<std::string> redact;  // "METHOD PATH", added to the default redacted calls
  bool no_default_redact = false;
  std::string user_map;   // JSON user map file (identity/user_map.h)
  std::string client_ca;  // PEM CA bundle that client certificates must chain to
  uint32_t token_ttl_s =
      defaults::kTokenTtlSeconds;  // how long a learned session token is remembered
  size_t token_cache_size =
      defaults::kTokenCacheSize;                 // session tokens remembered at most (0: none)
  bool support_dump_include_audit_logs = false;  // [audit_log_configuration], MKE's API
  // Admin API (HTTPS, client certificates): GET/PUT /api/ucp/config/logging, /metrics, page.
  std::string admin_listen;                 // "ADDR:PORT" ("[v6]:PORT"); empty: no admin server
  std::string admin_cert, admin_key;        // the server's certificate chain and key (PEM)
  std::string admin_ca;                     // PEM CA bundle that client certificates must chain to
  std::vector<std::string> admin_subjects;  // client certificate CNs allowed to change settings
  std::string config_file;  // --config (the last one given), for reloads and write-back
  bool level_flag = false;  // --level was given on the command line (it wins over the file)
  bool help = false;
  bool version = false;
};

// Parses argv, after the configuration file(s) that --config names, which take the same checks.
// The options, or on a usage error a one-line message naming the flag, or the file, line and
// key. A license key file is read here: unreadable or empty is an error.
// require_targets = false: a configuration without targets is no error (the support dump
// reports the configuration as it is).
Result<Options> ParseOptions(int argc, char** argv, bool require_targets = true);
std::string UsageText();

// The effective configuration as a TOML file that --config would read back: MKE's
// [audit_log_configuration] and every key of [mke_audit_tap], defaults included. The license
// key is masked ("<masked: N characters>"); files are named, never read.
std::string EffectiveConfigToml(const Options& o);
// Every [mke_audit_tap] key of the options table (tests check EffectiveConfigToml names each).
std::vector<std::string> OptionKeys();

// One entry of the options table (options.cpp), as tests see it: each option is declared there
// once, and the command line, the configuration file and --help (UsageText) come from it.
struct OptionInfo {
  enum class Kind { kSwitch, kText, kNumber };
  std::string_view flag;  // "--cap-bytes"
  std::string_view key;   // its key in [mke_audit_tap] ("cap_bytes"); empty: flag only
  Kind kind;
  bool repeatable;        // the flag may be repeated; in the file the value is an array
  uint64_t min, max;      // kNumber: the range, the same for the flag and the key
  bool key_negates;       // kSwitch: key = false means the flag (default_ignore = false)
  std::string_view arg;   // --help: the value's placeholder ("N"); empty for a kSwitch
  std::string_view help;  // --help: the description; {default}, {min}, {max} are filled in
};
std::vector<OptionInfo> OptionTable();

// Splits "ADDR:PORT" ("[v6addr]:PORT") of --admin-listen; false when it is not one.
bool SplitListenAddress(std::string_view text, std::string* host, uint16_t* port);

// A log level in any case ("INFO", as MKE's API writes it; "warning" for warn) as spdlog names
// it (trace, debug, info, warn, error); nullopt for anything else.
std::optional<std::string> NormalizeLogLevel(std::string_view text);

// A redacted call "METHOD /path" (--redact, redact = [...]): the method upper-cased ("*": any)
// and the path; nullopt unless the text is a method token, one space and a path starting with
// '/' without spaces.
std::optional<std::pair<std::string, std::string>> ParseRedactedCall(std::string_view text);

}  // namespace mat
