// The kernel tap: loads the BPF programs (bpf/tap.bpf.c through its skeleton), attaches the
// socket BTF tracepoints once, the TLS uprobes per target process and the syscall tracepoints
// while any target is in plaintext capture, and hands every ring buffer record to a callback.
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tap/file_cache.h"
#include "tap/go_binary.h"
#include "tap/ssl_probes.h"
#include "tap/targets.h"

struct tap_bpf;
struct bpf_link;
struct bpf_program;
struct ring_buffer;

extern "C" {
#include "mke_audit_tap/tap_events.h"
#include "util/defaults.h"
}

static_assert(TAP_DEFAULT_CAP == mat::defaults::kCapBytes, "one default payload cap");

namespace mat::tap {

// How a target's TLS plaintext is obtained.
enum class CaptureMode {
  // Per-call uprobes on SSL_read/SSL_write and Go's (*Conn).Read/Write deliver the plaintext
  // (TAP_EV_DATA); the syscall tracepoints are attached while any target is in this mode.
  kPlaintext,
  // No probe per call: the target's TCP socket bytes (TAP_EV_CIPHER, TAP_EV_SOCK,
  // TAP_EV_SOCK_CLOSE) from the socket BTF tracepoints, and its handshake secrets
  // (TAP_EV_SECRET) from probes that fire once per handshake: OpenSSL's SSL_do_handshake (read
  // with the calibrated layout), Go's (*Config).writeKeyLog. The certificate and connection-end
  // probes stay.
  kKeys,
  // Both at once: for the bridge window of a process whose connections predate the auditor.
  // DropPlaintextProbes() turns it into kKeys.
  kBoth,
};
const char* CaptureModeName(CaptureMode mode);

struct TargetOptions {
  CaptureMode mode = CaptureMode::kPlaintext;
  // kKeys/kBoth, OpenSSL: the layout calibrated on the process's libssl (one per process). The
  // secrets are read only at the SSL_do_handshake of that library: ssl_layout_library names it
  // (any path to the file, e.g. /proc/PID/map_files/...; matched by device and inode); empty
  // when the layout applies to every libssl the process maps (the usual single one).
  std::optional<tap_ssl_layout> ssl_layout;
  std::string ssl_layout_library;
  // Also the bytes of the AF_UNIX stream connections the process accepts (dockerd's local API):
  // TAP_EV_LOCAL_SOCK, TAP_EV_DATA and TAP_EV_CONN_END records keyed by the socket's cookie,
  // from the socket tracepoints that are attached anyway: no probe per call in any mode.
  bool local_socket = false;
};

struct TapOptions {
  uint32_t cap_bytes = defaults::kCapBytes;  // payload bytes delivered per SSL call
  uint32_t cipher_cap_bytes = 256u << 10;    // socket bytes delivered per socket call (keys)
  uint32_t ringbuf_bytes = defaults::kRingbufBytes;  // power of two
  // Records wake the reader only once this much is waiting; otherwise it drains on a timer.
  uint32_t wakeup_bytes = 1u << 20;
};

using Counters = std::array<uint64_t, TAP_CNT_MAX>;
const char* CounterName(int index);

// Whether the running kernel has the BTF tracepoints the keys capture copies socket bytes from
// (sock_send_length, sock_recv_length: Linux 6.3 and later), or why not.
// MKE_AUDIT_TAP_TEST_NO_SOCK_TRACEPOINTS=1 (tests only) makes a kernel that has them look like
// one that does not.
Status SocketTracepoints();

class BpfTap {
 public:
  using RecordHandler = std::function<void(const void* data, size_t size)>;

  // Opens, configures, loads and attaches the socket BTF tracepoints, or says why it cannot.
  static Result<std::unique_ptr<BpfTap>> Create(const TapOptions& options, RecordHandler handler);
  ~BpfTap();
  BpfTap(const BpfTap&) = delete;
  BpfTap& operator=(const BpfTap&) = delete;

  // Attaches the uprobes for one process: every OpenSSL library it maps, and crypto/tls when
  // the program is written in Go. Returns the number of TLS stacks probed (at least 1), or the
  // reason, naming the program, when none could be.
  Result<int> AddTarget(const TargetProcess& target);
  // The same in the given capture mode. kKeys/kBoth count an OpenSSL library as probed only with
  // options.ssl_layout (and, if named, on that library), and a Go program only when it has
  // (*Config).writeKeyLog; an error when nothing could be.
  Result<int> AddTarget(const TargetProcess& target, const TargetOptions& options);
  // Keys capture of pid's socket bytes only: the targets map entry, no uprobe (for tests, and
  // for a process whose secrets come from elsewhere). An error when the map is full.
  Status AddSocketOnlyTarget(const TargetProcess& target);
  // Only the local (AF_UNIX) connections the process accepts (see TargetOptions::local_socket):
  // a dockerd whose TLS could not be probed, or that serves no TLS. An error when the map is
  // full.
  Status AddLocalOnlyTarget(const TargetProcess& target);
  // A kBoth target becomes kKeys: its per-call probes are detached (and the syscall tracepoints,
  // once no target is left in plaintext capture). Nothing for other targets.
  void DropPlaintextProbes(pid_t pid);
  std::optional<CaptureMode> ModeOf(pid_t pid) const;
  void RemoveTarget(pid_t pid);
  // The same for a process that is gone (or no target any more): its probes are detached on a
  // thread of their own, since each costs the kernel a grace period (tens of ms) and a restart
  // of a server must not keep the processes that replace it waiting.
  void RetireTarget(pid_t pid);
  // Detaches the syscall tracepoints once no target is in plaintext capture and attaching has
  // been quiet for a while (called from the rescan).
  void SettleTracepoints();
  bool HasTarget(pid_t pid, uint64_t start_time) const;
  std::vector<pid_t> TargetPids() const;
  // Uprobes attached for pid (0 when it is no target), and tracepoints attached for all (the
  // socket BTF tracepoints always; the syscall ones while a target is in plaintext capture).
  size_t ProbeCount(pid_t pid) const;
  size_t TracepointCount() const {
    return sock_links_.size() + syscall_links_.size() + (local_close_link_ ? 1 : 0);
  }
  // Why this kernel cannot copy socket bytes, so no process can have the keys capture (the
  // sock_send_length/sock_recv_length tracepoints came with Linux 6.3); empty when it can.
  const std::string& keys_unavailable() const { return keys_unavailable_; }
  size_t SyscallTracepointCount() const { return syscall_links_.size(); }

  int epoll_fd() const;
  // Consumes the available records without blocking; returns how many, or -errno. With a
  // budget, stops after about budget_ns of work and returns -EAGAIN when records may be left
  // (so that process events are not kept waiting behind a long drain).
  int Consume(uint64_t budget_ns = 0);
  Counters ReadCounters() const;

  // ---- attach at exec (bpf/tap.bpf.c proc_fork, proc_exec) ----------------------------------
  // The kernel reports (TAP_EV_PROC, on a ring of its own that wakes the reader at once) an
  // exec whose comm is one of comms, and a fork or exec of a watched process; a forked child of
  // a target inherits its parent's capture in the kernel until AdoptOrForget. An error when
  // the tracepoints cannot be attached.
  // exec_bits: what the kernel makes, before userspace has looked, of a process that execs a
  // --comm's program or that descends from one of pids (enum tap_target_mode bits, see
  // KernelModeFor; 0: it is only reported).
  Status WatchProcesses(const std::vector<std::string>& comms, uint8_t exec_bits = 0,
                        const std::vector<pid_t>& pids = {});
  // The target mode bits the kernel gives a process at its exec for a --capture setting: the
  // keys capture's where this kernel has it, else the per-call capture's.
  uint8_t KernelModeFor(const std::string& capture) const;
  // Makes the probe plans of a TLS library pair (a file path each) ahead of the first process
  // that maps them, and attaches the library's probes (for every process that maps the files,
  // filtered in the kernel on the targets map) ahead of the targets, for as long as the tap
  // lives: the handshake, connection-end and certificate probes, and with per_call the
  // SSL_read/SSL_write ones too (plaintext capture).
  void WarmPlans(const std::string& libssl, const std::string& libcrypto, bool per_call = false);
  // The calibrated layout of a libssl file, for its probes (see WarmPlans).
  void SetLibraryLayout(const std::string& libssl, const tap_ssl_layout& layout);
  // Probes attached per library file (pid -1), and how many of those fire on every SSL call.
  size_t SharedProbeCount() const;
  size_t SharedPerCallProbeCount() const;
  void Watch(pid_t pid);
  void Unwatch(pid_t pid);
  int proc_epoll_fd() const;
  // The process events waiting, oldest first (consumed).
  std::vector<tap_proc> TakeProcEvents();
  // Removes the kernel's capture entries of pid when it is no target here (a child that
  // inherited them at fork and that is not audited after all).
  void ForgetKernelTarget(pid_t pid);
  // Forgets the inherited entries of processes that are gone (a lost event, an early exit).
  void PruneKernelTargets();

 private:
  BpfTap() = default;
  struct Target {
    uint64_t start_time = 0;
    CaptureMode mode = CaptureMode::kPlaintext;
    std::vector<bpf_link*> links;           // Go: handshake, certificate, connection end, secrets
    std::vector<bpf_link*> per_call_links;  // Go Read/Write
    std::vector<FileKey> files;             // OpenSSL library files whose shared probes it uses
    std::vector<FileKey> per_call_files;    // ... and whose shared per-call probes
    bool local = false;                     // TAP_TARGET_LOCAL too
  };
  // The probes of one OpenSSL library file (libssl, libcrypto, or a program with OpenSSL in
  // it), attached once for every process that maps it (pid -1): the BPF programs filter on the
  // targets map, so a forked child of a target (which inherits its entry in the kernel) or a
  // process the kernel made a target at its exec is covered from its first instruction, with
  // no attach of its own. They stay while a target uses them, and kLingerNs after (a restarted
  // server needs them again at once), or for the tap's life once pinned (WarmPlans).
  struct SharedFile {
    uint32_t number = 0;  // cookie file number (TAP_COOKIE_FILE_SHIFT), from 1
    std::string name;
    std::vector<bpf_link*> links;           // handshake, connection end, certificates
    std::vector<bpf_link*> per_call_links;  // SSL_read/SSL_write, while a target needs them
    std::vector<pid_t> users, per_call_users;
    bool pinned = false, per_call_pinned = false;
    uint64_t idle_since_ns = 0;  // when the last user left
  };
  static constexpr uint64_t kLingerNs = 30000000000ull;
  // The file's shared probes (non-per-call ones attached if need be; with per_call those too)
  // for pid (0: none, pinned instead); an error when they cannot be attached.
  Result<SharedFile*> UseShared(const SslLibrary& library, const std::vector<ProbeSite>& sites,
                                bool per_call, pid_t pid, FileKey* key);
  // pid stops using the shared probes of files (per-call ones only with per_call_only).
  void ReleaseShared(pid_t pid, const std::vector<FileKey>& files, bool per_call_only);
  // Detaches the shared probes no target has used for kLingerNs.
  void SettleShared();
  // The target's own links (destroyed, or reaped) and its uses of shared probes go; with
  // kernel, its map entries in the kernel too.
  void DropTarget(pid_t pid, bool kernel, bool reap = false);
  struct AttachSpec {
    bpf_program* program = nullptr;
    bool retprobe = false;
    uint64_t offset = 0;
    std::string function;
    uint64_t cookie = 0;  // bpf_get_attach_cookie() in the program
  };
  static int OnRecord(void* ctx, void* data, size_t size);
  static int OnProcRecord(void* ctx, void* data, size_t size);
  Result<const SslProbePlan*> PlanFor(const SslLibrary& library);
  Result<const std::vector<ProbeSite>*> CertPlanFor(const SslLibrary& library);
  Result<const GoBinaryInfo*> GoPlanFor(pid_t pid);
  // The specs of sites; per_call picks the per-call sites (true) or the others (false).
  // secrets_here: cookie 1 on SSL_do_handshake's return (its secrets are read there).
  std::vector<AttachSpec> SpecsOf(const std::vector<ProbeSite>& sites, bool per_call,
                                  bool secrets_here = false) const;
  // Attaches or detaches the syscall tracepoints as some target is or none is in plaintext
  // capture. An error when they are needed and cannot be attached.
  Status UpdateSyscallTracepoints();
  Status SetTargetMode(pid_t pid, uint8_t bits);
  // Attaches all of sites or none.
  Status AttachSites(const std::vector<AttachSpec>& sites, pid_t pid, const std::string& path,
                     const std::string& what, std::vector<bpf_link*>* links);

  tap_bpf* skel_ = nullptr;
  ring_buffer* ring_ = nullptr;
  RecordHandler handler_;
  bpf_link* local_close_link_ = nullptr;  // sys_enter_close, once a target has local capture
  std::vector<bpf_link*> sock_links_;     // tp_btf: socket bytes and TCP_CLOSE, always
  std::string keys_unavailable_;
  std::vector<bpf_link*> syscall_links_;  // syscall tracepoints, while plaintext targets exist
  std::vector<bpf_link*> proc_links_;     // sched_process_fork/exec
  ring_buffer* proc_ring_ = nullptr;
  // Links detached off the event loop (RetireTarget).
  void Reap(std::vector<bpf_link*> links);
  std::thread reaper_;
  std::mutex reap_mutex_;
  std::condition_variable reap_cv_;
  std::vector<bpf_link*> doomed_;
  bool reaper_stop_ = false;
  std::atomic<uint64_t> last_attach_ns_{0};  // CLOCK_MONOTONIC of the latest uprobe attach
  static constexpr uint64_t kReapQuietNs = 10000000000ull;
  uint64_t consume_deadline_ns_ = 0;  // 0: no budget
  uint32_t consumed_ = 0;
  std::vector<tap_proc> proc_events_;
  std::map<pid_t, Target> targets_;
  std::map<FileKey, SharedFile> shared_;
  uint32_t next_file_number_ = 1;
  // Plans per file, bounded (file_cache.h); a pointer returned by the *PlanFor functions is
  // used before the next one is made.
  static constexpr size_t kMaxPlansPerKind = 128;
  FileCache<SslProbePlan> plans_{kMaxPlansPerKind};
  // A file's analysis, kept whether it succeeded or not, so each file is read once.
  FileCache<Result<std::vector<ProbeSite>>> cert_plans_{kMaxPlansPerKind};  // libcrypto files
  FileCache<Result<GoBinaryInfo>> go_plans_{kMaxPlansPerKind};
};

}  // namespace mat::tap
