// The kernel tap: loads the BPF programs (bpf/tap.bpf.c through its skeleton), attaches the
// syscall tracepoints once and the TLS uprobes per target process, and hands every ring
// buffer record to a callback.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
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
}

namespace mat::tap {

struct TapOptions {
  uint32_t cap_bytes = TAP_DEFAULT_CAP;  // payload bytes delivered per SSL call
  uint32_t ringbuf_bytes = 8u << 20;     // power of two
  // Records wake the reader only once this much is waiting; otherwise it drains on a timer.
  uint32_t wakeup_bytes = 1u << 20;
};

using Counters = std::array<uint64_t, TAP_CNT_MAX>;
const char* CounterName(int index);

class BpfTap {
 public:
  using RecordHandler = std::function<void(const void* data, size_t size)>;

  // Opens, configures, loads and attaches the tracepoints. nullptr with *error on failure.
  static std::unique_ptr<BpfTap> Create(const TapOptions& options, RecordHandler handler,
                                        std::string* error);
  ~BpfTap();
  BpfTap(const BpfTap&) = delete;
  BpfTap& operator=(const BpfTap&) = delete;

  // Attaches the uprobes for one process: every OpenSSL library it maps, and crypto/tls when
  // the program is written in Go. Returns the number of TLS stacks probed; 0 with *error (the
  // reason, naming the program) when none could be.
  int AddTarget(const TargetProcess& target, std::string* error);
  void RemoveTarget(pid_t pid);
  bool HasTarget(pid_t pid, uint64_t start_time) const;
  std::vector<pid_t> TargetPids() const;
  // Uprobes attached for pid (0 when it is no target), and tracepoints attached once for all.
  size_t ProbeCount(pid_t pid) const;
  size_t TracepointCount() const { return tracepoint_links_.size(); }

  int epoll_fd() const;
  // Consumes the available records without blocking; returns how many, or -errno.
  int Consume();
  Counters ReadCounters() const;

 private:
  BpfTap() = default;
  struct Target {
    uint64_t start_time = 0;
    std::vector<bpf_link*> links;
  };
  struct AttachSpec {
    bpf_program* program = nullptr;
    bool retprobe = false;
    uint64_t offset = 0;
    std::string function;
    uint64_t cookie = 0;  // bpf_get_attach_cookie() in the program
  };
  // A file's analysis, kept whether it succeeded or not, so each file is read once.
  template <class Plan>
  struct Planned {
    std::optional<Plan> plan;
    std::string why;  // when !plan
  };
  static int OnRecord(void* ctx, void* data, size_t size);
  const SslProbePlan* PlanFor(const SslLibrary& library, std::string* error);
  const std::vector<ProbeSite>* CertPlanFor(const SslLibrary& library, std::string* error);
  const GoBinaryInfo* GoPlanFor(pid_t pid, std::string* error);
  std::vector<AttachSpec> SpecsOf(const std::vector<ProbeSite>& sites) const;
  // Attaches all of sites or none.
  static bool AttachSites(const std::vector<AttachSpec>& sites, pid_t pid, const std::string& path,
                          const std::string& what, std::vector<bpf_link*>* links,
                          std::string* error);

  tap_bpf* skel_ = nullptr;
  ring_buffer* ring_ = nullptr;
  RecordHandler handler_;
  std::vector<bpf_link*> tracepoint_links_;
  std::map<pid_t, Target> targets_;
  // Plans per file, bounded (file_cache.h); a pointer returned by the *PlanFor functions is
  // used before the next one is made.
  static constexpr size_t kMaxPlansPerKind = 128;
  FileCache<SslProbePlan> plans_{kMaxPlansPerKind};
  FileCache<Planned<std::vector<ProbeSite>>> cert_plans_{kMaxPlansPerKind};  // libcrypto files
  FileCache<Planned<GoBinaryInfo>> go_plans_{kMaxPlansPerKind};
};

}  // namespace mat::tap
