// Loss is never silent: every drop, by reason, announced in-band on stdout by a loss notice line.
//
// The notice is one JSON line without "auditID" (so no consumer takes it for an audit line),
// keys sorted byte-wise as in the audit lines, times UTC with six fractional digits:
//   {"counts":{"output_buffer_full":1234,"ringbuf_full":7},"level":"warning",
//    "msg":"mke-audit-tap/loss","since":"2026-12-06T12:00:00.000000Z",
//    "time":"2026-12-06T12:00:01.000301Z","total":1241,"type":"mke-audit-tap/loss"}
// `counts` holds what was lost since `since` (the previous notice, or the auditor's start) by
// reason, only reasons whose count grew; `total` is their sum. At most one notice a second
// (min_interval) while losses go on; one more at exit for what is left.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace mat::output {

inline constexpr char kLossNoticeType[] = "mke-audit-tap/loss";

// The notice line for `counts` (reason -> count, each > 0), lost between since_ns and now_ns
// (wall clock, ns).
std::string FormatLossNotice(uint64_t since_ns, uint64_t now_ns,
                             const std::map<std::string, uint64_t, std::less<>>& counts);

// What was lost and not announced yet, by reason, and the throttle of the notices. Not
// thread-safe: the caller locks.
class LossLedger {
 public:
  explicit LossLedger(uint64_t start_wall_ns, uint64_t min_interval_ns = 1'000'000'000ull)
      : since_ns_(start_wall_ns), min_interval_ns_(min_interval_ns) {}

  // The cumulative count of `reason` as its source keeps it: what it grew by since the last
  // call is pending. A count lower than the last one means its source started again from 0 (a
  // new TLS stage after a detach): all of it is new.
  void SetTotal(std::string_view reason, uint64_t total);
  // `n` more losses of `reason` (a source that counts events, not totals).
  void Add(std::string_view reason, uint64_t n);

  bool pending() const { return !pending_.empty(); }
  // When the next notice may be written (wall ns): the last one + min_interval.
  uint64_t next_due_ns() const { return noticed_ ? since_ns_ + min_interval_ns_ : 0; }
  // The notice for what is pending, if any and if due at now_ns (or `force`, at exit); what it
  // announces is no longer pending.
  std::optional<std::string> TakeNotice(uint64_t now_ns, bool force = false);

  // Everything counted since the start, by reason (announced or not).
  const std::map<std::string, uint64_t, std::less<>>& lost() const { return lost_; }
  uint64_t notices() const { return notices_; }

 private:
  std::map<std::string, uint64_t, std::less<>> last_total_;
  std::map<std::string, uint64_t, std::less<>> pending_;
  std::map<std::string, uint64_t, std::less<>> lost_;
  uint64_t since_ns_;
  uint64_t min_interval_ns_;
  bool noticed_ = false;
  uint64_t notices_ = 0;
};

}  // namespace mat::output
