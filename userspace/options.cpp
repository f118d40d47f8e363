#include "options.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <type_traits>

#include "config/config_writer.h"
#include "config/toml_reader.h"
#include "util/ascii.h"
#include "util/read_file.h"

namespace mat {
namespace {

// ---- one check per option ------------------------------------------------------------------
// Each option is declared once below, with the check (and store) of one value that the command
// line and the configuration file both go through, so the two cannot accept different things.
// A check stores the value, or returns what is wrong with it.

bool IsTokenChar(char c) {  // RFC 9110 tchar: what an HTTP method is made of
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

Status SetLevel(Options& o, std::string_view v) {
  auto level = audit::ParseLevel(v);
  if (!level)
    return Error{"expected none, metadata or request (or \"\"), got '" + std::string(v) + "'"};
  o.level = *level;
  return {};
}

Status SetLicenseKey(Options& o, std::string_view v) {
  o.license_key = v;
  o.license_key_file.clear();
  return {};
}

Status SetLicenseKeyFile(Options& o, std::string_view v) {
  if (v.empty()) return Error{"needs a file name"};
  o.license_key_file = v;
  o.license_key.clear();
  return {};
}

Status SetFormat(Options& o, std::string_view v) {
  if (v != "mke" && v != "k8s") return Error{"expected mke or k8s, got '" + std::string(v) + "'"};
  o.format = v;
  return {};
}

Status SetCapture(Options& o, std::string_view v) {
  if (v != "auto" && v != "keys" && v != "plaintext")
    return Error{"expected auto, keys or plaintext, got '" + std::string(v) + "'"};
  o.capture = v;
  return {};
}

Status SetLocalSocket(Options& o, std::string_view v) {
  if (v != "on" && v != "off") return Error{"expected on or off, got '" + std::string(v) + "'"};
  o.local_socket = v == "on";
  return {};
}

Status AddLocalSocketIgnore(Options& o, std::string_view v) {
  if (v.empty() || v.size() > 255)
    return Error{"a command name, container name or container id, got '" + std::string(v) + "'"};
  o.local_socket_ignore.emplace_back(v);
  return {};
}

Status AddComm(Options& o, std::string_view v) {
  // The kernel keeps TASK_COMM_LEN - 1 = 15 bytes of a command name: a longer one never matches.
  if (v.empty() || v.size() > 15)
    return Error{"a command name has 1 to 15 characters (the kernel keeps no more), got '" +
                 std::string(v) + "'"};
  o.comms.emplace_back(v);
  return {};
}

Status AddPid(Options& o, uint64_t n) {
  o.pids.push_back(static_cast<pid_t>(n));
  return {};
}

Status AddIgnore(Options& o, std::string_view v) {
  if (v.empty() || v[0] != '/')
    return Error{"a path starting with '/', got '" + std::string(v) + "'"};
  o.ignore.emplace_back(v);
  return {};
}

Status AddRedact(Options& o, std::string_view v) {
  // Without a method it would be a pattern that never matches: the operator would believe the
  // call redacted while its payload is written.
  auto call = ParseRedactedCall(v);
  if (!call)
    return Error{"expected 'METHOD /path' (METHOD * for any), got '" + std::string(v) + "'"};
  o.redact.push_back(call->first + " " + call->second);
  return {};
}

Status SetRingbufBytes(Options& o, uint64_t n) {
  if (n & (n - 1)) return Error{"must be a power of two"};
  o.ringbuf_bytes = static_cast<uint32_t>(n);
  return {};
}

Status SetLogLevel(Options& o, std::string_view v) {
  auto level = NormalizeLogLevel(v);
  if (!level)
    return Error{"expected trace, debug, info, warn or error (any case), got '" + std::string(v) +
                 "'"};
  o.log_level = *level;
  return {};
}

Status SetAdminListen(Options& o, std::string_view v) {
  std::string host;
  uint16_t port = 0;
  if (!SplitListenAddress(v, &host, &port))
    return Error{"expected ADDR:PORT (an IP address, [v6]:PORT for IPv6), got '" + std::string(v) +
                 "'"};
  o.admin_listen = v;
  return {};
}

Status AddAdminSubject(Options& o, std::string_view v) {
  if (v.empty()) return Error{"needs a certificate subject CN"};
  o.admin_subjects.emplace_back(v);
  return {};
}

// A file name: any non-empty text.
template <std::string Options::*field>
Status SetFile(Options& o, std::string_view v) {
  if (v.empty()) return Error{"needs a file name"};
  o.*field = v;
  return {};
}

// A number with no rule beyond its range.
template <auto field>
Status SetNumber(Options& o, uint64_t n) {
  o.*field = static_cast<std::remove_reference_t<decltype(o.*field)>>(n);
  return {};
}

template <bool Options::*field>
void Enable(Options& o) {
  o.*field = true;
}

struct OptionSpec {
  using Kind = OptionInfo::Kind;
  std::string_view flag;  // "--cap-bytes"
  std::string_view key;   // its key in [mke_audit_tap] ("cap_bytes"); empty: flag only
  Kind kind;
  bool repeatable = false;    // the flag may be repeated; in the file the value is an array
  uint64_t min = 0, max = 0;  // kNumber
  Status (*text)(Options&, std::string_view) = nullptr;  // kText: check and store
  Status (*number)(Options&, uint64_t) = nullptr;        // kNumber, within [min, max]
  void (*on)(Options&) = nullptr;                        // kSwitch: the flag is given
  bool key_negates = false;  // kSwitch: key = false means the flag (default_ignore = false)
};

using K = OptionSpec::Kind;
using O = Options;

// clang-format off
const OptionSpec kOptions[] = {
    {"--level", "", K::kText, false, 0, 0, SetLevel},
    {"--license-key", "license_key", K::kText, false, 0, 0, SetLicenseKey},
    {"--license-key-file", "license_key_file", K::kText, false, 0, 0, SetLicenseKeyFile},
    {"--format", "format", K::kText, false, 0, 0, SetFormat},
    {"--comm", "comm", K::kText, true, 0, 0, AddComm},
    {"--pid", "pid", K::kNumber, true, 1, 4194304, nullptr, AddPid},
    {"--ignore", "ignore", K::kText, true, 0, 0, AddIgnore},
    {"--no-default-ignore", "default_ignore", K::kSwitch, false, 0, 0, nullptr, nullptr,
     Enable<&O::no_default_ignore>, true},
    {"--audit-grpc", "audit_grpc", K::kSwitch, false, 0, 0, nullptr, nullptr,
     Enable<&O::audit_grpc>},
    {"--redact", "redact", K::kText, true, 0, 0, AddRedact},
    {"--no-default-redact", "default_redact", K::kSwitch, false, 0, 0, nullptr, nullptr,
     Enable<&O::no_default_redact>, true},
    {"--response-timeout", "response_timeout", K::kNumber, false, 0, 86400, nullptr,
     SetNumber<&O::response_timeout_s>},
    {"--max-line-bytes", "max_line_bytes", K::kNumber, false, 0, 16u << 20, nullptr,
     SetNumber<&O::max_line_bytes>},
    {"--every-request-received", "every_request_received", K::kSwitch, false, 0, 0, nullptr,
     nullptr, Enable<&O::every_request_received>},
    {"--client-ca", "client_ca", K::kText, false, 0, 0, SetFile<&O::client_ca>},
    {"--user-map", "user_map", K::kText, false, 0, 0, SetFile<&O::user_map>},
    {"--token-ttl", "token_ttl", K::kNumber, false, 1, 30 * 86400, nullptr,
     SetNumber<&O::token_ttl_s>},
    {"--token-cache-size", "token_cache_size", K::kNumber, false, 0, 1000000, nullptr,
     SetNumber<&O::token_cache_size>},
    {"--capture", "capture", K::kText, false, 0, 0, SetCapture},
    {"--local-socket", "local_socket", K::kText, false, 0, 0, SetLocalSocket},
    {"--local-socket-ignore", "local_socket_ignore", K::kText, true, 0, 0, AddLocalSocketIgnore},
    {"--bridge-window", "bridge_window", K::kNumber, false, 0, 30 * 86400, nullptr,
     SetNumber<&O::bridge_window_s>},
    {"--cap-bytes", "cap_bytes", K::kNumber, false, 4096, 1u << 20, nullptr,
     SetNumber<&O::cap_bytes>},
    {"--ringbuf-bytes", "ringbuf_bytes", K::kNumber, false, 1u << 16, 1u << 30, nullptr,
     SetRingbufBytes},
    {"--max-body-bytes", "max_body_bytes", K::kNumber, false, 0, 16u << 20, nullptr,
     SetNumber<&O::max_body_bytes>},
    {"--max-header-bytes", "max_header_bytes", K::kNumber, false, 1024, 16u << 20, nullptr,
     SetNumber<&O::max_header_bytes>},
    {"--max-pending-requests", "max_pending_requests", K::kNumber, false, 1, 65536, nullptr,
     SetNumber<&O::max_pending_requests>},
    {"--max-connection-bytes", "max_connection_bytes", K::kNumber, false, 65536, 1u << 30,
     nullptr, SetNumber<&O::max_connection_bytes>},
    {"--max-connections", "max_connections", K::kNumber, false, 16, 4194304, nullptr,
     SetNumber<&O::max_connections>},
    {"--poll-ms", "poll_ms", K::kNumber, false, 1, 1000, nullptr, SetNumber<&O::poll_ms>},
    {"--rescan-ms", "rescan_ms", K::kNumber, false, 50, 3600000, nullptr,
     SetNumber<&O::rescan_ms>},
    {"--idle-timeout", "idle_timeout", K::kNumber, false, 1, 30 * 86400, nullptr,
     SetNumber<&O::idle_timeout_s>},
    {"--output-buffer", "output_buffer", K::kNumber, false, 1u << 16, 1ull << 40, nullptr,
     SetNumber<&O::output_buffer_bytes>},
    {"--exit-timeout", "exit_timeout", K::kNumber, false, 0, 3600, nullptr,
     SetNumber<&O::exit_timeout_s>},
    {"--record", "record", K::kText, false, 0, 0, SetFile<&O::record_file>},
    {"--replay", "", K::kText, false, 0, 0, SetFile<&O::replay_file>},
    {"--log-level", "log_level", K::kText, false, 0, 0, SetLogLevel},
    {"--admin-listen", "admin_listen", K::kText, false, 0, 0, SetAdminListen},
    {"--admin-cert", "admin_cert", K::kText, false, 0, 0, SetFile<&O::admin_cert>},
    {"--admin-key", "admin_key", K::kText, false, 0, 0, SetFile<&O::admin_key>},
    {"--admin-ca", "admin_ca", K::kText, false, 0, 0, SetFile<&O::admin_ca>},
    {"--admin-subject", "admin_subject", K::kText, true, 0, 0, AddAdminSubject},
};
// clang-format on

const OptionSpec* FindFlag(std::string_view flag) {
  for (const OptionSpec& spec : kOptions)
    if (spec.flag == flag) return &spec;
  return nullptr;
}

const OptionSpec* FindKey(std::string_view key) {
  for (const OptionSpec& spec : kOptions)
    if (!spec.key.empty() && spec.key == key) return &spec;
  return nullptr;
}

std::string RangeError(const OptionSpec& spec, const std::string& got) {
  return "expected a number from " + std::to_string(spec.min) + " to " + std::to_string(spec.max) +
         ", got " + got;
}

// One number given as text on the command line.
Status NumberFromText(const OptionSpec& spec, Options& o, std::string_view text) {
  std::string s(text);
  char* end = nullptr;
  errno = 0;
  unsigned long long v = s.empty() || s.size() > 20 ? 0 : std::strtoull(s.c_str(), &end, 10);
  if (s.empty() || s.size() > 20 || errno != 0 || *end != '\0' || s[0] == '-' || v < spec.min ||
      v > spec.max)
    return Error{RangeError(spec, "'" + s + "'")};
  return spec.number(o, v);
}

// Reads the license key file: the key is its one line, without the line end.
Result<std::string> ReadLicenseKeyFile(const std::string& path) {
  auto text = ReadSmallFile(path, 65536);
  if (!text) return Error{"cannot read " + path + ": " + text.error()};
  std::string key = std::move(*text);
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  if (key.empty()) return Error{path + " is empty"};
  if (key.find_first_of("\r\n") != std::string::npos)
    return Error{path + " holds more than one line (the key is the whole file)"};
  return key;
}

// A configuration file larger than this is refused (MKE's whole file is a few KiB).
constexpr size_t kMaxConfigBytes = 4u << 20;

// Reads the configuration file into o. Command-line flags are applied afterwards and win.
// *key_file_where is set to "FILE: line N: license_key_file" when the file names a key file.
Status ApplyConfigFile(const std::string& path, Options* o, std::string* key_file_where) {
  auto text = ReadSmallFile(path, kMaxConfigBytes);
  if (!text) return Error{"--config " + path + ": " + text.error()};
  auto doc = config::ParseToml(*text, {"audit_log_configuration", "mke_audit_tap"});
  if (!doc) return Error{path + ": " + doc.error()};
  auto fail = [&](const config::TomlValue& v, const std::string& key,
                  const std::string& what) -> Status {
    return Error{path + ": line " + std::to_string(v.line) + ": " + key + ": " + what};
  };
  // One value of `spec` from the file, through the same check as the flag's.
  auto apply = [&](const OptionSpec& spec, const std::string& key,
                   const config::TomlValue& v) -> Status {
    Status stored;
    if (spec.kind == K::kText) {
      const auto* s = std::get_if<std::string>(&v.v);
      if (s == nullptr) return fail(v, key, "expected a string");
      stored = spec.text(*o, *s);
    } else if (spec.kind == K::kNumber) {
      const auto* n = std::get_if<int64_t>(&v.v);
      if (n == nullptr) return fail(v, key, "expected an integer");
      if (*n < 0 || static_cast<uint64_t>(*n) < spec.min || static_cast<uint64_t>(*n) > spec.max)
        return fail(v, key, RangeError(spec, std::to_string(*n)));
      stored = spec.number(*o, static_cast<uint64_t>(*n));
    }
    if (!stored) return fail(v, key, stored.error());
    return {};
  };
  for (const auto& [key, v] : (*doc)["audit_log_configuration"]) {
    if (key == "level") {
      if (Status applied = apply(*FindFlag("--level"), key, v); !applied) return applied;
    } else if (key == "support_dump_include_audit_logs") {
      // MKE's setting for its support dump: kept (the admin API reports and changes it).
      const bool* b = std::get_if<bool>(&v.v);
      if (b == nullptr) return fail(v, key, "expected true or false");
      o->support_dump_include_audit_logs = *b;
    } else {
      return fail(v, key, "unknown key in [audit_log_configuration]");
    }
  }
  const auto& ours = (*doc)["mke_audit_tap"];
  if (ours.count("license_key") && ours.count("license_key_file"))
    return fail(ours.at("license_key_file"), "license_key_file",
                "give license_key or license_key_file, not both");
  for (const auto& [key, v] : ours) {
    const OptionSpec* spec = FindKey(key);
    if (spec == nullptr) return fail(v, key, "unknown key in [mke_audit_tap]");
    if (spec->kind == K::kSwitch) {
      const bool* b = std::get_if<bool>(&v.v);
      if (b == nullptr) return fail(v, key, "expected true or false");
      if (*b != spec->key_negates) spec->on(*o);
      continue;
    }
    if (!spec->repeatable) {
      if (Status applied = apply(*spec, key, v); !applied) return applied;
      if (key == "license_key_file")
        *key_file_where = path + ": line " + std::to_string(v.line) + ": " + key;
      continue;
    }
    const auto* items = std::get_if<config::TomlArray>(&v.v);
    if (items == nullptr)
      return fail(v, key,
                  spec->kind == K::kNumber ? "expected an array of integers"
                                           : "expected an array of strings");
    for (const auto& item : *items)
      if (Status applied = apply(*spec, key, item); !applied) return applied;
  }
  return {};
}

}  // namespace

bool SplitListenAddress(std::string_view text, std::string* host, uint16_t* port) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view h = text.substr(0, colon), p = text.substr(colon + 1);
  if (h.front() == '[') {
    if (h.size() < 3 || h.back() != ']') return false;
    h = h.substr(1, h.size() - 2);
  } else if (h.find(':') != std::string_view::npos) {
    return false;  // an IPv6 address needs its brackets
  }
  if (p.empty() || p.size() > 5 ||
      !std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  unsigned long n = std::strtoul(std::string(p).c_str(), nullptr, 10);
  if (n == 0 || n > 65535) return false;
  *host = h;
  *port = static_cast<uint16_t>(n);
  return true;
}

std::optional<std::string> NormalizeLogLevel(std::string_view text) {
  for (std::string_view name : {"trace", "debug", "info", "warn", "error"})
    if (EqualsIgnoreCase(text, name)) return std::string(name);
  if (EqualsIgnoreCase(text, "warning")) return "warn";  // logrus's and MKE's spelling
  return std::nullopt;
}

std::optional<std::pair<std::string, std::string>> ParseRedactedCall(std::string_view text) {
  size_t space = text.find(' ');
  if (space == std::string_view::npos || space == 0) return std::nullopt;
  std::string method(text.substr(0, space));
  std::string_view path = text.substr(space + 1);
  if (!std::all_of(method.begin(), method.end(), IsTokenChar)) return std::nullopt;
  if (path.empty() || path[0] != '/') return std::nullopt;
  for (char c : path)
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return std::nullopt;
  for (char& c : method) c = AsciiUpper(c);
  return std::make_pair(std::move(method), std::string(path));
}

std::string UsageText() {
  return R"(Usage: mke-audit-tap --level LEVEL (--comm NAME | --pid PID)... [options]
       mke-audit-tap --replay FILE [--level LEVEL] [options]
       mke-audit-tap support-dump [--output FILE] [--log-file FILE] [--container NAME]
                                  [--bundle DIR] [options, e.g. --config FILE]
       mke-audit-tap doctor [--comm NAME | --pid PID]... [--config FILE] [--capture MODE]

Passive MKE audit logging: captures the HTTPS API calls made to the target processes (through
uprobes on their TLS library) and writes one MKE-format audit line per API request to stdout.
Operational messages go to stderr; a line containing "ready" is written once probes are attached.

Audit:
  --level none|metadata|request  audit level ("" and none disable capture; default none)
  --license-key KEY              license key written into every line (user.extra.licenseKey);
                                 visible to every local user in /proc/PID/cmdline, so prefer:
  --license-key-file FILE        read the license key from FILE (its one line; a trailing
                                 newline is dropped; unreadable or empty stops the start)
  --config FILE                  TOML configuration file: MKE's [audit_log_configuration]
                                 section (level, support_dump_include_audit_logs) and an
                                 [mke_audit_tap] section with any option below by its long
                                 name with '_' for '-', checked as the flag is (lists as
                                 arrays: comm, pid, ignore, redact; default_ignore/
                                 default_redact = false); other sections (a whole MKE config
                                 file) are skipped. Flags win. Reread on SIGHUP and when it
                                 changes (level, log level, ignore and redact lists); a broken
                                 new version is logged and the running configuration kept.
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
  --max-line-bytes N             no line longer than N bytes, newline not counted (default
                                 16383: Docker's log drivers split a line that fills their
                                 16 KiB buffer with its newline; 0: no cap): a payload that
                                 does not fit is dropped, then a too-long URI cut, and the line
                                 says so in an annotation
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

Local socket (dockerd's Unix socket API, where MKE's own audit sees nothing):
  --local-socket on|off          audit the HTTP a dockerd target serves on its Unix sockets
                                 (-H unix://..., fd://), read from its accepted connections in
                                 the kernel (no probe per call; default on). The user is the
                                 connecting process's uid as the kernel recorded it (its host
                                 name; user.extra: pid, comm, container); sourceIPs: the socket
  --local-socket-ignore NAME     do not write the calls of local peers whose command name,
                                 container name (or its swarm service, the part before the
                                 first '.') or container id (12+ hex digits) is NAME
                                 (repeatable; they are counted: /metrics, the exit summary)

Targets (repeatable, at least one unless --replay):
  --comm NAME                    every process whose command name is NAME
  --pid PID                      process PID and all its descendants

Capture:
  --capture auto|keys|plaintext  how TLS plaintext is obtained (default auto). keys: the TLS
                                 secrets once per handshake and the socket's encrypted bytes,
                                 decrypted here (no probe hit per request); plaintext: probes
                                 on every TLS read and write (costly); auto: keys where the
                                 process allows it, plaintext otherwise, with one log line why
  --bridge-window S              keys/auto: connections opened before the auditor started are
                                 captured by per-call probes for at most S seconds (default
                                 600; 0: not at all); the probes go once all are closed
  --cap-bytes N                  plaintext bytes delivered per TLS call (default 65536,
                                 4096..1048576); the rest is counted as truncated
  --ringbuf-bytes N              kernel ring buffer size, a power of two (default 8388608)
  --max-body-bytes N             request/response body bytes kept per message (default 65536)
  --max-header-bytes N           header bytes kept per message (default 1048576, Go's
                                 net/http limit; at most 16777216): a larger HTTP/1.1 header
                                 block is audited by its request line only, a larger HTTP/2
                                 header list is cut; both marked incomplete
  --max-pending-requests N       requests per connection waiting for their responses, HTTP/2
                                 streams followed per connection (default 256)
  --max-connection-bytes N       header and body bytes kept per connection (default 8388608)
  --max-connections N            connections followed at once (default 65536); beyond, the one
                                 idle longest is ended first
  Beyond each, the oldest requests are audited at once, incomplete (over
  --max-pending-requests, an HTTP/2 connection's new stream, unless an answered one can end
  first); every cap hit is counted (summary, /metrics)
  --poll-ms N                    how often the kernel ring buffer is drained, ms (default 20;
                                 it is drained at once when an eighth of it is full)
  --rescan-ms N                  how often to look for new target processes (default 1000;
                                 a safety net: targets are found at their exec or fork)
  --idle-timeout S               end connections idle this long, seconds (default 900)

Output (stdout; a writer thread, so a slow reader never stalls the capture):
  --output-buffer N              audit lines held for a slow or stalled stdout, bytes at most
                                 (default 67108864); beyond, lines are dropped and counted,
                                 and a loss notice line says so once stdout flows again
  --exit-timeout S               at SIGTERM/SIGINT, write what is held for at most S seconds
                                 (default 5), then exit saying on stderr how many lines could
                                 not be written
  Every loss (kernel, TLS, HTTP, output) is announced on stdout by a loss notice, a JSON line
  without auditID: {"counts":{REASON:N,...},"level":"warning","msg":"mke-audit-tap/loss",
  "since":TIME,"time":TIME,"total":N,"type":"mke-audit-tap/loss"}, at most one a second.
  A reader that closes stdout (EPIPE) ends the auditor with an error and exit status 1.

Record and replay:
  --record FILE                  also write the raw tap records to FILE (mode 0600; it holds
                                 PLAINTEXT, including credentials: protect it); a symbolic
                                 link, FIFO, device or another user's file there is refused
  --replay FILE                  run the pipeline from a recording instead of the kernel
                                 (needs no privileges)

Admin API (HTTPS; every request needs a client certificate that chains to --admin-ca):
  --admin-listen ADDR:PORT       serve GET/PUT /api/ucp/config/logging (MKE's API), /metrics
                                 (Prometheus text) and a settings page at / ([v6]:PORT for IPv6)
  --admin-cert FILE              the server's certificate chain (PEM)
  --admin-key FILE               the server's private key (PEM)
  --admin-ca FILE                PEM CA bundle that client certificates must chain to
  --admin-subject CN             a client certificate CN allowed to change settings (PUT);
                                 repeatable; others may only read

Support dump (mke-audit-tap support-dump, with the auditor's options or its --config):
  writes a tar.gz (--output FILE, default ./mke-audit-tap-support-dump-TIME.tar.gz) with the
  version, the effective configuration (license key masked), the targets found and what would
  be probed, kernel facts (uname, BTF, BPF and perf sysctls), the running auditor's settings and
  /metrics when --bundle DIR (a client bundle: cert.pem, key.pem, ca.pem) reaches its admin
  API, and its recent logs: --log-file FILE (its last 16 MiB), or docker logs of the container
  --container NAME (or $MKE_AUDIT_TAP_CONTAINER). Every log line containing "auditID" is removed
  unless support_dump_include_audit_logs is true (the running auditor's, else the file's); the
  license key is masked everywhere.

Doctor (mke-audit-tap doctor, with the targets, --config or --capture; --help for more):
  checks the kernel (BTF, uprobes, ring buffer, the BPF programs and tracepoints, attached and
  detached at once), the capabilities, and per target its TLS library, probe plan, capture mode
  and a real attach (detached at once); one line per item (ok, warn, FAIL: what will not work
  and why); exit 0 when nothing failed, 1 otherwise.

Other:
  --log-level LEVEL              trace|debug|info|warn|error, any case (default info), to
                                 stderr
  --help                         this text
  --version                      the version
)";
}

Result<Options> ParseOptions(int argc, char** argv, bool require_targets) {
  Options o;
  std::string key_file_where;  // where the license key file was named, for its errors
  // The configuration file first, so that flags override it.
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string path;
    if (arg == "--config" && i + 1 < argc) path = argv[i + 1];
    if (arg.rfind("--config=", 0) == 0) path = std::string(arg.substr(9));
    if (path.empty()) continue;
    if (Status applied = ApplyConfigFile(path, &o, &key_file_where); !applied)
      return Error{applied.error()};
    o.config_file = path;
  }
  bool flag_key = false, flag_key_file = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view value;
    size_t eq = arg.find('=');
    bool inline_value = arg.rfind("--", 0) == 0 && eq != std::string_view::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    // The flag's value, inline or the next argument.
    auto need = [&]() -> Result<std::string_view> {
      if (inline_value) return value;
      if (i + 1 >= argc) return Error{std::string(arg) + " needs a value"};
      return std::string_view(argv[++i]);
    };
    if (arg == "--help" || arg == "-h") {
      o.help = true;
      continue;
    }
    if (arg == "--version") {
      o.version = true;
      continue;
    }
    if (arg == "--config") {  // read above
      if (auto path = need(); !path) return Error{path.error()};
      continue;
    }
    const OptionSpec* spec = FindFlag(arg);
    if (spec == nullptr) {
      return Error{"unknown option '" + std::string(arg) + "' (see --help)"};
    }
    Status stored;
    if (spec->kind == K::kSwitch) {
      if (inline_value) stored = Error{"takes no value"};
      spec->on(o);
    } else {
      auto given = need();
      if (!given) return Error{given.error()};
      stored = spec->kind == K::kText ? spec->text(o, *given) : NumberFromText(*spec, o, *given);
    }
    if (!stored) return Error{std::string(arg) + ": " + stored.error()};
    o.level_flag |= arg == "--level";
    flag_key |= arg == "--license-key";
    flag_key_file |= arg == "--license-key-file";
    if (arg == "--license-key-file") key_file_where = "--license-key-file";
  }
  if (o.help || o.version) return o;
  if (flag_key && flag_key_file) {
    return Error{"--license-key-file: give --license-key or --license-key-file, not both"};
  }
  if (!o.license_key_file.empty()) {
    auto key = ReadLicenseKeyFile(o.license_key_file);
    if (!key) return Error{key_file_where + ": " + key.error()};
    o.license_key = std::move(*key);
  }
  if (!o.admin_listen.empty() &&
      (o.admin_cert.empty() || o.admin_key.empty() || o.admin_ca.empty())) {
    return Error{"--admin-listen needs --admin-cert, --admin-key and --admin-ca"};
  }
  if (!o.admin_listen.empty() && !o.replay_file.empty()) {
    return Error{"--admin-listen and --replay cannot be combined"};
  }
  if (!o.record_file.empty() && !o.replay_file.empty()) {
    return Error{"--record and --replay cannot be combined"};
  }
  if (require_targets && o.replay_file.empty() && o.level != audit::Level::kNone &&
      o.comms.empty() && o.pids.empty()) {
    return Error{"no targets: give --comm NAME or --pid PID (or --replay FILE)"};
  }
  return o;
}

std::vector<std::string> OptionKeys() {
  std::vector<std::string> keys;
  for (const OptionSpec& spec : kOptions)
    if (!spec.key.empty()) keys.emplace_back(spec.key);
  return keys;
}

std::vector<OptionInfo> OptionTable() {
  std::vector<OptionInfo> table;
  for (const OptionSpec& spec : kOptions)
    table.push_back(
        {spec.flag, spec.key, spec.kind, spec.repeatable, spec.min, spec.max, spec.key_negates});
  return table;
}

namespace {

template <typename T>
std::string TomlList(const std::vector<T>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    if constexpr (std::is_same_v<T, std::string>)
      out += config::TomlString(items[i]);
    else
      out += std::to_string(items[i]);
  }
  return out + "]";
}

}  // namespace

std::string EffectiveConfigToml(const Options& o) {
  std::string level = o.level == audit::Level::kNone ? "" : std::string(audit::LevelName(o.level));
  std::string key = o.license_key.empty()
                        ? "\"\""
                        : "\"<masked: " + std::to_string(o.license_key.size()) + " characters>\"";
  auto b = [](bool v) -> std::string { return v ? "true" : "false"; };
  auto n = [](uint64_t v) { return std::to_string(v); };
  // One entry per key of kOptions (config_test checks that none is missing).
  const std::pair<const char*, std::string> ours[] = {
      // The file accepts one of the two: the other is written as a comment.
      {o.license_key_file.empty() ? "license_key" : "# license_key", key},
      {o.license_key_file.empty() ? "# license_key_file" : "license_key_file",
       config::TomlString(o.license_key_file)},
      {"format", config::TomlString(o.format)},
      {"comm", TomlList(o.comms)},
      {"pid", TomlList(o.pids)},
      {"ignore", TomlList(o.ignore)},
      {"default_ignore", b(!o.no_default_ignore)},
      {"audit_grpc", b(o.audit_grpc)},
      {"redact", TomlList(o.redact)},
      {"default_redact", b(!o.no_default_redact)},
      {"response_timeout", n(o.response_timeout_s)},
      {"max_line_bytes", n(o.max_line_bytes)},
      {"every_request_received", b(o.every_request_received)},
      {"client_ca", config::TomlString(o.client_ca)},
      {"user_map", config::TomlString(o.user_map)},
      {"token_ttl", n(o.token_ttl_s)},
      {"token_cache_size", n(o.token_cache_size)},
      {"capture", config::TomlString(o.capture)},
      {"local_socket", config::TomlString(o.local_socket ? "on" : "off")},
      {"local_socket_ignore", TomlList(o.local_socket_ignore)},
      {"bridge_window", n(o.bridge_window_s)},
      {"cap_bytes", n(o.cap_bytes)},
      {"ringbuf_bytes", n(o.ringbuf_bytes)},
      {"max_body_bytes", n(o.max_body_bytes)},
      {"max_header_bytes", n(o.max_header_bytes)},
      {"max_pending_requests", n(o.max_pending_requests)},
      {"max_connection_bytes", n(o.max_connection_bytes)},
      {"max_connections", n(o.max_connections)},
      {"poll_ms", n(o.poll_ms)},
      {"rescan_ms", n(o.rescan_ms)},
      {"idle_timeout", n(o.idle_timeout_s)},
      {"output_buffer", n(o.output_buffer_bytes)},
      {"exit_timeout", n(o.exit_timeout_s)},
      {"record", config::TomlString(o.record_file)},
      {"log_level", config::TomlString(o.log_level)},
      {"admin_listen", config::TomlString(o.admin_listen)},
      {"admin_cert", config::TomlString(o.admin_cert)},
      {"admin_key", config::TomlString(o.admin_key)},
      {"admin_ca", config::TomlString(o.admin_ca)},
      {"admin_subject", TomlList(o.admin_subjects)},
  };
  std::string out = "# effective configuration (file, then flags; defaults included)\n";
  if (!o.config_file.empty()) out += "# configuration file: " + o.config_file + "\n";
  out += "\n[audit_log_configuration]\nlevel = " + config::TomlString(level) +
         "\nsupport_dump_include_audit_logs = " + b(o.support_dump_include_audit_logs) +
         "\n\n[mke_audit_tap]\n";
  for (const auto& [name, value] : ours)  // unset (empty) names as comments: "" is no file name
    out += std::string(value == "\"\"" && name[0] != '#' ? "# " : "") + name + " = " + value + "\n";
  return out;
}

}  // namespace mat
