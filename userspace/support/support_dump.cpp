#include "support/support_dump.h"

#include <fcntl.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "doctor/doctor.h"
#include "options.h"

extern char** environ;

namespace mat::support {

std::string FilterAuditLines(std::string_view logs, bool include_audit_lines, size_t* removed) {
  *removed = 0;
  if (include_audit_lines) return std::string(logs);
  std::string out;
  out.reserve(logs.size());
  while (!logs.empty()) {
    size_t end = logs.find('\n');
    std::string_view line = logs.substr(0, end == std::string_view::npos ? logs.size() : end + 1);
    logs.remove_prefix(line.size());
    if (line.find("auditID") != std::string_view::npos) {
      ++*removed;
      continue;
    }
    out += line;
  }
  return out;
}

std::string MaskSecrets(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    if (secret.empty()) continue;
    for (size_t at = text.find(secret); at != std::string::npos;
         at = text.find(secret, at + std::strlen("<masked>")))
      text.replace(at, secret.size(), "<masked>");
  }
  return text;
}

// ---- tar.gz ------------------------------------------------------------------------------
std::string TarHeader(const std::string& name, uint64_t size, uint64_t mtime) {
  std::string h(512, '\0');
  auto put = [&](size_t at, size_t width, const std::string& v) {
    std::memcpy(h.data() + at, v.data(), std::min(width, v.size()));
  };
  auto octal = [](uint64_t v, int digits) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%0*llo", digits, static_cast<unsigned long long>(v));
    return std::string(buf);
  };
  put(0, 99, name);
  put(100, 8, octal(0644, 7));
  put(108, 8, octal(0, 7));
  put(116, 8, octal(0, 7));
  put(124, 12, octal(size, 11));
  put(136, 12, octal(mtime, 11));
  put(148, 8, std::string(8, ' '));
  h[156] = '0';
  put(257, 6, std::string("ustar\0", 6));
  put(263, 2, "00");
  put(265, 32, "root");
  put(297, 32, "root");
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  put(148, 8, octal(sum, 6) + std::string("\0 ", 2));
  return h;
}

TarGzWriter::~TarGzWriter() {
  if (gz_) gzclose(static_cast<gzFile>(gz_));
}

Status TarGzWriter::Open(const std::string& path) {
  path_ = path;
  // O_EXCL: an existing file (or a link planted there) is never overwritten.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Error{"cannot create " + path + ": " + std::strerror(errno)};
  gz_ = gzdopen(fd, "wb9");
  if (!gz_) {
    ::close(fd);
    return Error{"cannot write " + path};
  }
  return {};
}

Status TarGzWriter::Write(const void* data, size_t size) {
  if (size == 0) return {};
  if (gzwrite(static_cast<gzFile>(gz_), data, static_cast<unsigned>(size)) !=
      static_cast<int>(size))
    return Error{"cannot write " + path_};
  return {};
}

Status TarGzWriter::Add(const std::string& name, std::string_view content, uint64_t mtime) {
  std::string header = TarHeader(name, content.size(), mtime);
  Status written = Write(header.data(), header.size());
  for (size_t at = 0; written && at < content.size(); at += 1u << 20)
    written = Write(content.data() + at, std::min<size_t>(1u << 20, content.size() - at));
  static const char zeros[512] = {};
  if (written && content.size() % 512) written = Write(zeros, 512 - content.size() % 512);
  return written;
}

Status TarGzWriter::Close() {
  static const char zeros[1024] = {};
  Status written = Write(zeros, sizeof(zeros));
  int rc = gzclose(static_cast<gzFile>(gz_));
  gz_ = nullptr;
  if (written && rc != Z_OK) return Error{"cannot write " + path_};
  return written;
}

namespace {

// A sysctl or kernel fact file without its trailing white space, "" when unreadable (the dump
// says what it could not read).
std::string ReadTrimmed(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::stringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// The last `max` bytes of a file, from a line start; an error when unreadable.
Result<std::string> ReadTail(const std::string& path, size_t max) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot read " + path + ": " + std::strerror(errno)};
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  std::streamoff from = size > static_cast<std::streamoff>(max) ? size - max : 0;
  in.seekg(from);
  std::string text(static_cast<size_t>(size - from), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (from > 0) {
    size_t nl = text.find('\n');
    text.erase(0, nl == std::string::npos ? text.size() : nl + 1);
  }
  return text;
}

// What a command wrote (both its outputs, at most max bytes), and whether it ran and exited 0:
// the output of a failed command is kept too (it says why).
struct CommandOutput {
  std::string text;
  Status status;
};

// Runs argv.
CommandOutput RunCommand(const std::vector<std::string>& args, size_t max) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return {"", Error{std::string("pipe: ") + std::strerror(errno)}};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return {"", Error{"cannot run " + args[0] + ": " + std::strerror(rc)}};
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max) out.erase(0, out.size() - max);
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    Error error{args[0] + " " + args[1] + " failed (status " + std::to_string(status) +
                "): " + out.substr(0, 500)};
    return {std::move(out), std::move(error)};
  }
  return {std::move(out), {}};
}

// GET path from the running auditor's admin API with a client bundle (cert.pem, key.pem,
// ca.pem in dir): the body of a 200, or why not.
Result<std::string> FetchAdmin(const Options& o, const std::string& bundle,
                               const std::string& path) {
  std::string host;
  uint16_t port = 0;
  if (!SplitListenAddress(o.admin_listen, &host, &port))
    return Error{"no admin listener configured (admin_listen)"};
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  namespace ssl = boost::asio::ssl;
  using boost::asio::ip::tcp;
  try {
    boost::asio::io_context io;
    ssl::context ctx(ssl::context::tls_client);
    ctx.load_verify_file(bundle + "/ca.pem");
    ctx.set_verify_mode(ssl::verify_peer);
    ctx.use_certificate_chain_file(bundle + "/cert.pem");
    ctx.use_private_key_file(bundle + "/key.pem", ssl::context::pem);
    ssl::stream<tcp::socket> stream(io, ctx);
    std::string request = "GET " + path +
                          " HTTP/1.1\r\nHost: mke-audit-tap\r\nConnection: close\r\n"
                          "User-Agent: mke-audit-tap-support-dump\r\n\r\n";
    std::string response;
    boost::system::error_code result = boost::asio::error::timed_out;
    tcp::endpoint endpoint(boost::asio::ip::make_address(host), port);
    stream.next_layer().async_connect(endpoint, [&](const boost::system::error_code& ec) {
      if (ec) return void(result = ec);
      stream.async_handshake(ssl::stream_base::client, [&](const boost::system::error_code& ec) {
        if (ec) return void(result = ec);
        boost::asio::async_write(
            stream, boost::asio::buffer(request), [&](const boost::system::error_code& ec, size_t) {
              if (ec) return void(result = ec);
              boost::asio::async_read(
                  stream, boost::asio::dynamic_buffer(response, 16u << 20),
                  [&](const boost::system::error_code& ec, size_t) { result = ec; });
            });
      });
    });
    io.run_for(std::chrono::seconds(10));
    if (result && result != boost::asio::error::eof && result != ssl::error::stream_truncated)
      return Error{"admin API at " + o.admin_listen + ": " + result.message()};
    size_t head_end = response.find("\r\n\r\n");
    if (head_end == std::string::npos || response.compare(0, 9, "HTTP/1.1 ") != 0)
      return Error{"admin API at " + o.admin_listen + ": no HTTP answer"};
    if (response.compare(9, 3, "200") != 0)
      return Error{"admin API at " + o.admin_listen + ": " +
                   response.substr(0, response.find('\r'))};
    return response.substr(head_end + 4);
  } catch (const std::exception& e) {
    return Error{"admin API with the bundle " + bundle + ": " + e.what()};
  }
}

std::string KernelFacts() {
  std::string out;
  struct utsname u {};
  if (::uname(&u) == 0)
    out += std::string("uname: ") + u.sysname + " " + u.nodename + " " + u.release + " " +
           u.version + " " + u.machine + "\n";
  struct stat st {};
  bool btf = ::stat("/sys/kernel/btf/vmlinux", &st) == 0;
  out += "btf (/sys/kernel/btf/vmlinux): " +
         (btf ? "present, " + std::to_string(st.st_size) + " bytes" : std::string("absent")) + "\n";
  for (const char* name :
       {"kernel/unprivileged_bpf_disabled", "net/core/bpf_jit_enable", "net/core/bpf_jit_harden",
        "kernel/perf_event_paranoid", "kernel/perf_event_max_stack", "kernel/kptr_restrict",
        "kernel/yama/ptrace_scope"}) {
    std::string value = ReadTrimmed(std::string("/proc/sys/") + name);
    std::string key = name;
    for (char& c : key)
      if (c == '/') c = '.';
    out += key + " = " + (value.empty() ? "(unreadable)" : value) + "\n";
  }
  std::string lockdown = ReadTrimmed("/sys/kernel/security/lockdown");
  out += "lockdown: " + (lockdown.empty() ? std::string("(unreadable)") : lockdown) + "\n";
  out += "euid: " + std::to_string(::geteuid()) + "\n";
  return out;
}

// The doctor's report (doctor.h): kernel, capabilities, and per target its TLS library, probe
// plan, the capture mode it gets and whether its probes attach (attached and detached at once),
// decided exactly as the auditor decides it.
std::string DoctorText(const Options& o) {
  std::string out;
  auto level = spdlog::get_level();  // the probes' own log lines are not the report
  spdlog::set_level(spdlog::level::off);
  auto lines = doctor::Diagnose(o, /*print=*/false);
  spdlog::set_level(level);
  for (const auto& line : lines) out += doctor::FormatLine(line) + "\n";
  return out + doctor::Summary(lines) + "\n";
}

std::string UtcStamp(std::time_t now, const char* format) {
  char buf[64];
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(buf, sizeof(buf), format, &tm);
  return buf;
}

constexpr size_t kMaxLogBytes = 16u << 20;

const char* kUsage =
    "Usage: mke-audit-tap support-dump [--output FILE] [--log-file FILE] [--container NAME]\n"
    "                                  [--bundle DIR] [auditor options: --config FILE ...]\n";

}  // namespace

int RunSupportDump(int argc, char** argv) {
  std::string output, log_file, container, bundle;
  if (const char* env = std::getenv("MKE_AUDIT_TAP_CONTAINER")) container = env;
  std::vector<char*> rest = {argv[0]};
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string* target = nullptr;
    for (auto [flag, field] :
         {std::pair{"--output", &output}, std::pair{"--log-file", &log_file},
          std::pair{"--container", &container}, std::pair{"--bundle", &bundle}}) {
      std::string f = flag;
      if (arg == f) {
        if (i + 1 >= argc) {
          std::fprintf(stderr, "mke-audit-tap support-dump: %s needs a value\n%s", flag, kUsage);
          return 2;
        }
        *field = argv[++i];
        target = field;
      } else if (arg.rfind(f + "=", 0) == 0) {
        *field = std::string(arg.substr(f.size() + 1));
        target = field;
      }
    }
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (!target) rest.push_back(argv[i]);
  }
  auto options =
      ParseOptions(static_cast<int>(rest.size()), rest.data(), /*require_targets=*/false);
  if (!options) {
    std::fprintf(stderr, "mke-audit-tap support-dump: %s\n", options.error().c_str());
    return 2;
  }
  std::time_t now = std::time(nullptr);
  std::string dir = "mke-audit-tap-support-dump-" + UtcStamp(now, "%Y%m%dT%H%M%SZ");
  if (output.empty()) output = dir + ".tar.gz";
  std::vector<std::string> secrets = {options->license_key};
  std::vector<std::pair<std::string, std::string>> files;
  std::string notes;

  files.emplace_back("version.txt", "mke-audit-tap " + std::string(kVersion) + "\ndump written " +
                                        UtcStamp(now, "%Y-%m-%dT%H:%M:%SZ") + "\n");
  files.emplace_back("config.toml", EffectiveConfigToml(*options));

  // The running auditor's live settings and counters, over its admin API.
  bool include_audit = options->support_dump_include_audit_logs;
  std::string include_from = "the configuration (file and flags)";
  if (!bundle.empty()) {
    std::string why;
    auto settings = FetchAdmin(*options, bundle, "/api/ucp/config/logging");
    if (settings) {
      files.emplace_back("settings.json", *settings);
      auto json = nlohmann::json::parse(*settings, nullptr, false);
      if (json.is_object() && json.contains("supportDumpIncludeAuditLogs") &&
          json["supportDumpIncludeAuditLogs"].is_boolean()) {
        include_audit = json["supportDumpIncludeAuditLogs"].get<bool>();
        include_from = "the running auditor's admin API";
      }
      auto metrics = FetchAdmin(*options, bundle, "/metrics");
      if (metrics)
        files.emplace_back("metrics.txt", *metrics);
      else
        why = metrics.error();
    } else {
      why = settings.error();
    }
    if (!why.empty()) notes += "counters: not included: " + why + "\n";
  } else {
    notes +=
        "counters: not included (give --bundle DIR, a client bundle of the admin API, to "
        "include the running auditor's /metrics and settings)\n";
  }
  files.emplace_back("doctor.txt", DoctorText(*options));
  files.emplace_back("kernel.txt", KernelFacts());

  // The auditor's recent logs.
  std::string logs, logs_from;
  std::string why;
  if (!log_file.empty()) {
    auto tail = ReadTail(log_file, kMaxLogBytes);
    if (tail)
      logs = std::move(*tail);
    else
      why = tail.error();
    logs_from = log_file + " (its last 16 MiB at most)";
  } else if (!container.empty()) {
    CommandOutput run = RunCommand({"docker", "logs", "--tail", "100000", container}, kMaxLogBytes);
    logs = std::move(run.text);
    why = run.status.error();
    logs_from = "docker logs of container " + container + " (last 100000 lines, 16 MiB at most)";
  } else {
    why = "no --log-file FILE, --container NAME or MKE_AUDIT_TAP_CONTAINER given";
  }
  if (!why.empty()) notes += "logs: " + why + "\n";
  if (!logs_from.empty()) {
    size_t removed = 0;
    files.emplace_back("logs.txt", FilterAuditLines(logs, include_audit, &removed));
    notes += "logs: from " + logs_from + "; " +
             (include_audit ? std::string("audit lines included")
                            : std::to_string(removed) + " line(s) containing auditID removed") +
             " (support_dump_include_audit_logs = " + (include_audit ? "true" : "false") +
             ", from " + include_from + ")\n";
  }

  std::string readme =
      "mke-audit-tap support dump\n\n"
      "version.txt   version and time of the dump\n"
      "config.toml   effective configuration (the license key masked; files named, not read)\n"
      "settings.json the running auditor's logging settings (admin API), when reached\n"
      "metrics.txt   the running auditor's counters (admin API /metrics), when reached\n"
      "doctor.txt    `mke-audit-tap doctor`: kernel, capabilities, and per target its TLS "
      "library,\n"
      "              probes, capture mode and whether its probes attach\n"
      "kernel.txt    kernel release, BTF, BPF and perf sysctls\n"
      "logs.txt      the auditor's recent logs\n\nnotes:\n" +
      notes;
  files.emplace_back("README.txt", readme);

  TarGzWriter tar;
  Status written = tar.Open(output);
  for (const auto& [name, content] : files) {
    if (!written) break;
    written = tar.Add(dir + "/" + name, MaskSecrets(content, secrets), static_cast<uint64_t>(now));
  }
  if (written) written = tar.Close();
  if (!written) {
    std::fprintf(stderr, "mke-audit-tap support-dump: %s\n", written.error().c_str());
    ::unlink(output.c_str());
    return 1;
  }
  std::fprintf(stderr, "mke-audit-tap support-dump: wrote %s\n%s", output.c_str(), notes.c_str());
  return 0;
}

}  // namespace mat::support
