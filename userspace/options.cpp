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

Status ConfigReadFirst(Options&, std::string_view) { return {}; }  // ParseOptions reads it first

// The group of options --help lists under one heading (kHelpSections below).
enum class HelpGroup {
  kAudit,
  kIdentity,
  kLocalSocket,
  kTargets,
  kCapture,
  kOutput,
  kRecord,
  kAdmin,
  kSupportDump,
  kDoctor,
  kOther
};

// One option: its flag, its key in the configuration file, its value's type, limits and check,
// and its --help entry. In a help text, {default} stands for the option's value in Options{} (as
// EffectiveConfigToml writes it), {min} and {max} for its limits: --help states no default and
// no limit that is not the one in force.
struct OptionSpec {
  using Kind = OptionInfo::Kind;
  std::string_view flag;  // "--cap-bytes"
  std::string_view arg;   // --help: the value's placeholder ("N", "FILE", "on|off"); none: kSwitch
  std::string_view key;   // its key in [mke_audit_tap] ("cap_bytes"); empty: flag only
  Kind kind;
  bool repeatable = false;    // the flag may be repeated; in the file the value is an array
  uint64_t min = 0, max = 0;  // kNumber
  Status (*text)(Options&, std::string_view) = nullptr;  // kText: check and store
  Status (*number)(Options&, uint64_t) = nullptr;        // kNumber, within [min, max]
  void (*on)(Options&) = nullptr;                        // kSwitch: the flag is given
  bool key_negates = false;  // kSwitch: key = false means the flag (default_ignore = false)
  HelpGroup group;
  std::string_view help;  // --help: the description, its lines as printed (column 34 on)
  std::string_view note;  // --help: text printed as is after the entry, if any
};

// --help's fixed text: what comes before the options, and the headings of their groups with
// the text printed after each group's options.
struct HelpSection {
  HelpGroup group;
  std::string_view heading;
  std::string_view after = {};
};

using K = OptionSpec::Kind;
using G = HelpGroup;
using O = Options;

// The options in --help's order (config_test checks it). --config is read before the other flags
// (ParseOptions): its check here only takes the value.
// clang-format off
const OptionSpec kOptions[] = {
    {.flag = "--level", .arg = "none|metadata|request", .kind = K::kText, .text = SetLevel,
     .group = G::kAudit,
     .help = "audit level (\"\" and none disable capture; default {default})"},
    {.flag = "--license-key", .arg = "KEY", .key = "license_key", .kind = K::kText,
     .text = SetLicenseKey, .group = G::kAudit,
     .help = "license key written into every line (user.extra.licenseKey);\n"
             "visible to every local user in /proc/PID/cmdline, so prefer:"},
    {.flag = "--license-key-file", .arg = "FILE", .key = "license_key_file", .kind = K::kText,
     .text = SetLicenseKeyFile, .group = G::kAudit,
     .help = "read the license key from FILE (its one line; a trailing\n"
             "newline is dropped; unreadable or empty stops the start)"},
    {.flag = "--config", .arg = "FILE", .kind = K::kText, .text = ConfigReadFirst,
     .group = G::kAudit,
     .help = "TOML configuration file: MKE's [audit_log_configuration]\n"
             "section (level, support_dump_include_audit_logs) and an\n"
             "[mke_audit_tap] section with any option below by its long\n"
             "name with '_' for '-', checked as the flag is (lists as\n"
             "arrays: comm, pid, ignore, redact; default_ignore/\n"
             "default_redact = false); other sections (a whole MKE config\n"
             "file) are skipped. Flags win. Reread on SIGHUP and when it\n"
             "changes (level, log level, ignore and redact lists); a broken\n"
             "new version is logged and the running configuration kept."},
    {.flag = "--format", .arg = "mke|k8s", .key = "format", .kind = K::kText, .text = SetFormat,
     .group = G::kAudit,
     .help = "mke: MKE's audit line (default); k8s: audit.k8s.io/v1 Event\n"
             "lines, as Kubernetes audit consumers (Falco k8saudit) read"},
    {.flag = "--ignore", .arg = "PATH", .key = "ignore", .kind = K::kText, .repeatable = true,
     .text = AddIgnore, .group = G::kAudit,
     .help = "also ignore PATH (repeatable; a trailing * matches any\n"
             "continuation; matched after an optional /vN.NN prefix)"},
    {.flag = "--no-default-ignore", .key = "default_ignore", .kind = K::kSwitch,
     .on = Enable<&O::no_default_ignore>, .key_negates = true, .group = G::kAudit,
     .help = "drop MKE's default ignore list (/_ping /ca /auth ...)"},
    {.flag = "--audit-grpc", .key = "audit_grpc", .kind = K::kSwitch, .on = Enable<&O::audit_grpc>,
     .group = G::kAudit,
     .help = "also audit gRPC calls (swarmkit's manager/node protocol on\n"
             "port 2377: heartbeats, task status; not user API calls, so\n"
             "skipped by default); their payload is never written"},
    {.flag = "--redact", .arg = "'METHOD PATH'", .key = "redact", .kind = K::kText,
     .repeatable = true, .text = AddRedact, .group = G::kAudit,
     .help = "also redact the payload of this call (repeatable; {id} matches\n"
             "one path segment, METHOD * any), e.g. 'POST /plugins/{id}/set'"},
    {.flag = "--no-default-redact", .key = "default_redact", .kind = K::kSwitch,
     .on = Enable<&O::no_default_redact>, .key_negates = true, .group = G::kAudit,
     .help = "drop the default redacted calls (secrets, swarm join/update,\n"
             "auth/login); Kubernetes secrets and sensitive fields and\n"
             "headers stay redacted"},
    {.flag = "--response-timeout", .arg = "S", .key = "response_timeout", .kind = K::kNumber,
     .max = 86400, .number = SetNumber<&O::response_timeout_s>, .group = G::kAudit,
     .help = "write a request still without response after S seconds at\n"
             "stage RequestReceived (default {default}; 0: only at connection end)"},
    {.flag = "--max-line-bytes", .arg = "N", .key = "max_line_bytes", .kind = K::kNumber,
     .max = 16u << 20, .number = SetNumber<&O::max_line_bytes>, .group = G::kAudit,
     .help = "no line longer than N bytes, newline not counted (default\n"
             "{default}: Docker's log drivers split a line that fills their\n"
             "16 KiB buffer with its newline; 0: no cap): a payload that\n"
             "does not fit is dropped, then a too-long URI cut, and the line\n"
             "says so in an annotation"},
    {.flag = "--every-request-received", .key = "every_request_received", .kind = K::kSwitch,
     .on = Enable<&O::every_request_received>, .group = G::kAudit,
     .help = "also write a RequestReceived line for every request when it\n"
             "is complete, as the Kubernetes audit does (same auditID)"},
    {.flag = "--client-ca", .arg = "FILE", .key = "client_ca", .kind = K::kText,
     .text = SetFile<&O::client_ca>, .group = G::kIdentity,
     .help = "PEM CA bundle (MKE's client CA) that client certificates must\n"
             "chain to: the tap sees a certificate before the server\n"
             "verifies it, so without this a certificate's CN is written as\n"
             "client-certificate-unverified, and with it one that does not\n"
             "chain names nobody (unresolved)"},
    {.flag = "--user-map", .arg = "FILE", .key = "user_map", .kind = K::kText,
     .text = SetFile<&O::user_map>, .group = G::kIdentity,
     .help = "JSON file mapping certificate CNs and login names to MKE\n"
             "account ids: {\"users\":[{\"match\":\"cn:NAME\"|\"login:NAME\",\n"
             "\"id\":\"ACCOUNT-ID\",\"name\":\"LOGIN\"}]}; reread when it changes\n"
             "(a broken version is logged and the previous map kept)"},
    {.flag = "--token-ttl", .arg = "S", .key = "token_ttl", .kind = K::kNumber, .min = 1,
     .max = 30 * 86400, .number = SetNumber<&O::token_ttl_s>, .group = G::kIdentity,
     .help = "remember a session token learned at a login for S seconds\n"
             "after its last use (default {default}, MKE's session lifetime)"},
    {.flag = "--token-cache-size", .arg = "N", .key = "token_cache_size", .kind = K::kNumber,
     .max = 1000000, .number = SetNumber<&O::token_cache_size>, .group = G::kIdentity,
     .help = "session tokens remembered at most (default {default}; the least\n"
             "recently used goes first; 0: learn none)"},
    {.flag = "--local-socket", .arg = "on|off", .key = "local_socket", .kind = K::kText,
     .text = SetLocalSocket, .group = G::kLocalSocket,
     .help = "audit the HTTP a dockerd target serves on its Unix sockets\n"
             "(-H unix://..., fd://), read from its accepted connections in\n"
             "the kernel (no probe per call; default {default}). The user is the\n"
             "connecting process's uid as the kernel recorded it (its host\n"
             "name; user.extra: pid, comm, container); sourceIPs: the socket"},
    {.flag = "--local-socket-ignore", .arg = "NAME", .key = "local_socket_ignore",
     .kind = K::kText, .repeatable = true, .text = AddLocalSocketIgnore, .group = G::kLocalSocket,
     .help = "do not write the calls of local peers whose command name,\n"
             "container name (or its swarm service, the part before the\n"
             "first '.') or container id (12+ hex digits) is NAME\n"
             "(repeatable; they are counted: /metrics, the exit summary)"},
    {.flag = "--comm", .arg = "NAME", .key = "comm", .kind = K::kText, .repeatable = true,
     .text = AddComm, .group = G::kTargets,
     .help = "every process whose command name is NAME"},
    {.flag = "--pid", .arg = "PID", .key = "pid", .kind = K::kNumber, .repeatable = true, .min = 1,
     .max = 4194304, .number = AddPid, .group = G::kTargets,
     .help = "process PID and all its descendants"},
    {.flag = "--capture", .arg = "auto|keys|plaintext", .key = "capture", .kind = K::kText,
     .text = SetCapture, .group = G::kCapture,
     .help = "how TLS plaintext is obtained (default {default}). keys: the TLS\n"
             "secrets once per handshake and the socket's encrypted bytes,\n"
             "decrypted here (no probe hit per request); plaintext: probes\n"
             "on every TLS read and write (costly); auto: keys where the\n"
             "process allows it, plaintext otherwise, with one log line why"},
    {.flag = "--bridge-window", .arg = "S", .key = "bridge_window", .kind = K::kNumber,
     .max = 30 * 86400, .number = SetNumber<&O::bridge_window_s>, .group = G::kCapture,
     .help = "keys/auto: connections opened before the auditor started are\n"
             "captured by per-call probes for at most S seconds (default\n"
             "{default}; 0: not at all); the probes go once all are closed"},
    {.flag = "--cap-bytes", .arg = "N", .key = "cap_bytes", .kind = K::kNumber, .min = 4096,
     .max = 1u << 20, .number = SetNumber<&O::cap_bytes>, .group = G::kCapture,
     .help = "plaintext bytes delivered per TLS call (default {default},\n"
             "{min}..{max}); the rest is counted as truncated"},
    {.flag = "--ringbuf-bytes", .arg = "N", .key = "ringbuf_bytes", .kind = K::kNumber,
     .min = 1u << 16, .max = 1u << 30, .number = SetRingbufBytes, .group = G::kCapture,
     .help = "kernel ring buffer size, a power of two (default {default})"},
    {.flag = "--max-body-bytes", .arg = "N", .key = "max_body_bytes", .kind = K::kNumber,
     .max = 16u << 20, .number = SetNumber<&O::max_body_bytes>, .group = G::kCapture,
     .help = "request/response body bytes kept per message (default {default})"},
    {.flag = "--max-header-bytes", .arg = "N", .key = "max_header_bytes", .kind = K::kNumber,
     .min = 1024, .max = 16u << 20, .number = SetNumber<&O::max_header_bytes>,
     .group = G::kCapture,
     .help = "header bytes kept per message (default {default}, Go's\n"
             "net/http limit; at most {max}): a larger HTTP/1.1 header\n"
             "block is audited by its request line only, a larger HTTP/2\n"
             "header list is cut; both marked incomplete"},
    {.flag = "--max-pending-requests", .arg = "N", .key = "max_pending_requests",
     .kind = K::kNumber, .min = 1, .max = 65536, .number = SetNumber<&O::max_pending_requests>,
     .group = G::kCapture,
     .help = "requests per connection waiting for their responses, HTTP/2\n"
             "streams followed per connection (default {default})"},
    {.flag = "--max-connection-bytes", .arg = "N", .key = "max_connection_bytes",
     .kind = K::kNumber, .min = 65536, .max = 1u << 30,
     .number = SetNumber<&O::max_connection_bytes>, .group = G::kCapture,
     .help = "header and body bytes kept per connection (default {default})"},
    {.flag = "--max-connections", .arg = "N", .key = "max_connections", .kind = K::kNumber,
     .min = 16, .max = 4194304, .number = SetNumber<&O::max_connections>, .group = G::kCapture,
     .help = "connections followed at once (default {default}); beyond, the one\n"
             "idle longest is ended first",
     .note = R"(  Beyond each, the oldest requests are audited at once, incomplete (over
  --max-pending-requests, an HTTP/2 connection's new stream, unless an answered one can end
  first); every cap hit is counted (summary, /metrics)
)"},
    {.flag = "--poll-ms", .arg = "N", .key = "poll_ms", .kind = K::kNumber, .min = 1, .max = 1000,
     .number = SetNumber<&O::poll_ms>, .group = G::kCapture,
     .help = "how often the kernel ring buffer is drained, ms (default {default};\n"
             "it is drained at once when an eighth of it is full)"},
    {.flag = "--rescan-ms", .arg = "N", .key = "rescan_ms", .kind = K::kNumber, .min = 50,
     .max = 3600000, .number = SetNumber<&O::rescan_ms>, .group = G::kCapture,
     .help = "how often to look for new target processes (default {default};\n"
             "a safety net: targets are found at their exec or fork)"},
    {.flag = "--idle-timeout", .arg = "S", .key = "idle_timeout", .kind = K::kNumber, .min = 1,
     .max = 30 * 86400, .number = SetNumber<&O::idle_timeout_s>, .group = G::kCapture,
     .help = "end connections idle this long, seconds (default {default})"},
    {.flag = "--output-buffer", .arg = "N", .key = "output_buffer", .kind = K::kNumber,
     .min = 1u << 16, .max = 1ull << 40, .number = SetNumber<&O::output_buffer_bytes>,
     .group = G::kOutput,
     .help = "audit lines held for a slow or stalled stdout, bytes at most\n"
             "(default {default}); beyond, lines are dropped and counted,\n"
             "and a loss notice line says so once stdout flows again"},
    {.flag = "--exit-timeout", .arg = "S", .key = "exit_timeout", .kind = K::kNumber, .max = 3600,
     .number = SetNumber<&O::exit_timeout_s>, .group = G::kOutput,
     .help = "at SIGTERM/SIGINT, write what is held for at most S seconds\n"
             "(default {default}), then exit saying on stderr how many lines could\n"
             "not be written"},
    {.flag = "--record", .arg = "FILE", .key = "record", .kind = K::kText,
     .text = SetFile<&O::record_file>, .group = G::kRecord,
     .help = "also write the raw tap records to FILE (mode 0600; it holds\n"
             "PLAINTEXT, including credentials: protect it); a symbolic\n"
             "link, FIFO, device or another user's file there is refused"},
    {.flag = "--replay", .arg = "FILE", .kind = K::kText, .text = SetFile<&O::replay_file>,
     .group = G::kRecord,
     .help = "run the pipeline from a recording instead of the kernel\n"
             "(needs no privileges)"},
    {.flag = "--admin-listen", .arg = "ADDR:PORT", .key = "admin_listen", .kind = K::kText,
     .text = SetAdminListen, .group = G::kAdmin,
     .help = "serve GET/PUT /api/ucp/config/logging (MKE's API), /metrics\n"
             "(Prometheus text) and a settings page at / ([v6]:PORT for IPv6)"},
    {.flag = "--admin-cert", .arg = "FILE", .key = "admin_cert", .kind = K::kText,
     .text = SetFile<&O::admin_cert>, .group = G::kAdmin,
     .help = "the server's certificate chain (PEM)"},
    {.flag = "--admin-key", .arg = "FILE", .key = "admin_key", .kind = K::kText,
     .text = SetFile<&O::admin_key>, .group = G::kAdmin,
     .help = "the server's private key (PEM)"},
    {.flag = "--admin-ca", .arg = "FILE", .key = "admin_ca", .kind = K::kText,
     .text = SetFile<&O::admin_ca>, .group = G::kAdmin,
     .help = "PEM CA bundle that client certificates must chain to"},
    {.flag = "--admin-subject", .arg = "CN", .key = "admin_subject", .kind = K::kText,
     .repeatable = true, .text = AddAdminSubject, .group = G::kAdmin,
     .help = "a client certificate CN allowed to change settings (PUT);\n"
             "repeatable; others may only read"},
    {.flag = "--log-level", .arg = "LEVEL", .key = "log_level", .kind = K::kText,
     .text = SetLogLevel, .group = G::kOther,
     .help = "trace|debug|info|warn|error, any case (default {default}), to\n"
             "stderr"},
    {.flag = "--help", .kind = K::kSwitch, .on = Enable<&O::help>, .group = G::kOther,
     .help = "this text"},
    {.flag = "--version", .kind = K::kSwitch, .on = Enable<&O::version>, .group = G::kOther,
     .help = "the version"},
};

const std::string_view kHelpIntro = R"(Usage: mke-audit-tap --level LEVEL (--comm NAME | --pid PID)... [options]
       mke-audit-tap --replay FILE [--level LEVEL] [options]
       mke-audit-tap support-dump [--output FILE] [--log-file FILE] [--container NAME]
                                  [--bundle DIR] [options, e.g. --config FILE]
       mke-audit-tap doctor [--comm NAME | --pid PID]... [--config FILE] [--capture MODE]

Passive MKE audit logging: captures the HTTPS API calls made to the target processes (through
uprobes on their TLS library) and writes one MKE-format audit line per API request to stdout.
Operational messages go to stderr; a line containing "ready" is written once probes are attached.
)";

const HelpSection kHelpSections[] = {
    {G::kAudit, "Audit:"},
    {G::kIdentity,
     "Identity (who made the request; the annotation mke-audit-tap/user-identified-by "
     "says how):"},
    {G::kLocalSocket,
     "Local socket (dockerd's Unix socket API, where MKE's own audit sees "
     "nothing):"},
    {G::kTargets, "Targets (repeatable, at least one unless --replay):"},
    {G::kCapture, "Capture:"},
    {G::kOutput, "Output (stdout; a writer thread, so a slow reader never stalls the capture):",
     R"(  Every loss (kernel, TLS, HTTP, output) is announced on stdout by a loss notice, a JSON line
  without auditID: {"counts":{REASON:N,...},"level":"warning","msg":"mke-audit-tap/loss",
  "since":TIME,"time":TIME,"total":N,"type":"mke-audit-tap/loss"}, at most one a second.
  A reader that closes stdout (EPIPE) ends the auditor with an error and exit status 1.
)"},
    {G::kRecord, "Record and replay:"},
    {G::kAdmin,
     "Admin API (HTTPS; every request needs a client certificate that chains to "
     "--admin-ca):"},
    {G::kSupportDump,
     "Support dump (mke-audit-tap support-dump, with the auditor's options or its "
     "--config):",
     R"(  writes a tar.gz (--output FILE, default ./mke-audit-tap-support-dump-TIME.tar.gz) with the
  version, the effective configuration (license key masked), the targets found and what would
  be probed, kernel facts (uname, BTF, BPF and perf sysctls), the running auditor's settings and
  /metrics when --bundle DIR (a client bundle: cert.pem, key.pem, ca.pem) reaches its admin
  API, and its recent logs: --log-file FILE (its last 16 MiB), or docker logs of the container
  --container NAME (or $MKE_AUDIT_TAP_CONTAINER). Every log line containing "auditID" is removed
  unless support_dump_include_audit_logs is true (the running auditor's, else the file's); the
  license key is masked everywhere.
)"},
    {G::kDoctor,
     "Doctor (mke-audit-tap doctor, with the targets, --config or --capture; --help "
     "for more):",
     R"(  checks the kernel (BTF, uprobes, ring buffer, the BPF programs and tracepoints, attached and
  detached at once), the capabilities, and per target its TLS library, probe plan, capture mode
  and a real attach (detached at once); one line per item (ok, warn, FAIL: what will not work
  and why); exit 0 when nothing failed, 1 otherwise.
)"},
    {G::kOther, "Other:"},
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

// Each key of [mke_audit_tap] and its value in o, as TOML; an unset license key or key file as
// a comment ("# license_key"). One entry per key of kOptions (config_test checks that none is
// missing).
std::vector<std::pair<std::string, std::string>> FileValues(const Options& o) {
  std::string key = o.license_key.empty()
                        ? "\"\""
                        : "\"<masked: " + std::to_string(o.license_key.size()) + " characters>\"";
  auto b = [](bool v) -> std::string { return v ? "true" : "false"; };
  auto n = [](uint64_t v) { return std::to_string(v); };
  return {
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
}

}  // namespace

std::string UsageText() {
  const Options defaults;
  const auto values = FileValues(defaults);
  // {default}: the value in force without options, as the configuration file would say it.
  auto default_of = [&](const OptionSpec& spec) -> std::string {
    if (spec.flag == "--level") {  // its key is MKE's, in [audit_log_configuration]
      std::string_view name = audit::LevelName(defaults.level);
      return name.empty() ? "none" : std::string(name);
    }
    for (const auto& [name, value] : values)
      if (name == spec.key)
        return value.size() >= 2 && value.front() == '"' ? value.substr(1, value.size() - 2)
                                                         : value;
    return "{default}";  // an option without a key states no default (config_test checks)
  };
  auto replace = [](std::string& text, std::string_view from, const std::string& to) {
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
      text.replace(at, from.size(), to);
  };
  constexpr size_t kColumn = 33;  // where descriptions start
  std::string out(kHelpIntro);
  for (const HelpSection& section : kHelpSections) {
    out += "\n" + std::string(section.heading) + "\n";
    for (const OptionSpec& spec : kOptions) {
      if (spec.group != section.group) continue;
      std::string entry = "  " + std::string(spec.flag);
      if (!spec.arg.empty()) entry += " " + std::string(spec.arg);
      entry += entry.size() + 2 <= kColumn ? std::string(kColumn - entry.size(), ' ')
                                           : "\n" + std::string(kColumn, ' ');
      std::string help(spec.help);
      replace(help, "{default}", default_of(spec));
      replace(help, "{min}", std::to_string(spec.min));
      replace(help, "{max}", std::to_string(spec.max));
      replace(help, "\n", "\n" + std::string(kColumn, ' '));
      out += entry + help + "\n";
      out += spec.note;
    }
    out += section.after;
  }
  return out;
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
    const OptionSpec* spec = FindFlag(arg == "-h" ? "--help" : arg);
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
    table.push_back({spec.flag, spec.key, spec.kind, spec.repeatable, spec.min, spec.max,
                     spec.key_negates, spec.arg, spec.help});
  return table;
}

std::string EffectiveConfigToml(const Options& o) {
  std::string level = o.level == audit::Level::kNone ? "" : std::string(audit::LevelName(o.level));
  auto b = [](bool v) -> std::string { return v ? "true" : "false"; };
  const auto ours = FileValues(o);
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
