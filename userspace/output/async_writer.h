// The live auditor's stdout: a writer thread behind a bounded queue, so that a slow or blocked
// reader never stalls the draining of the kernel's ring buffer (nor, through it, the audited
// servers: the kernel would drop records instead).
//
// The pipeline's thread gathers lines into a batch (Write) and hands it over at each Flush (after
// each drain of the ring buffer) or every batch_bytes; the writer thread writes each hand-over
// with one write(2)/writev(2), several at once when it is behind. Lines beyond buffer_bytes
// (queued and not yet written, the open batch included) are dropped and counted
// (output_buffer_full). Losses of every stage, given by SetLossTotals, and the writer's own, are
// announced in-band by a loss notice line (output/loss_notice.h) at most once a second, and
// when the output flows again after a stall.
//
// A write error ends nothing by itself: its lines are counted (output_write_failed) and the next
// batch is tried, except EPIPE (the reader is gone, SIGPIPE must be ignored): every later line is
// lost, so the writer stops and calls on_fatal. Close() writes what is queued for at most a
// timeout, then interrupts a blocked write (a signal to the writer thread) and counts the rest.
#pragma once

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "output/line_sink.h"
#include "output/loss_notice.h"
#include "util/defaults.h"

namespace mat::output {

struct AsyncWriterOptions {
  size_t buffer_bytes =
      defaults::kOutputBufferBytes;  // decided lines held for a slow reader, at most
  size_t batch_bytes = 256 * 1024;   // a batch is handed over at this size, or at Flush
  uint64_t notice_interval_ns = 1'000'000'000ull;
  bool notices = true;  // loss notices on this output
};

class AsyncLineWriter : public LineSink {
 public:
  // Writes to `fd` (blocking or not). on_fatal is called once, from the writer thread, when the
  // output is gone for good (EPIPE); the caller should then exit (see fatal_error()).
  AsyncLineWriter(int fd, AsyncWriterOptions options, std::function<void()> on_fatal = nullptr);
  ~AsyncLineWriter() override;  // Close(0) if not closed
  AsyncLineWriter(const AsyncLineWriter&) = delete;
  AsyncLineWriter& operator=(const AsyncLineWriter&) = delete;

  // The pipeline's thread only.
  void Write(std::string_view line) override;
  void Flush() override;

  // The cumulative loss counts of the other stages, by reason (any thread).
  void SetLossTotals(const std::vector<std::pair<std::string, uint64_t>>& totals);

  // Hands over the open batch, then lets the writer thread write everything queued, and a last
  // loss notice, for at most `timeout`; then interrupts it. True when all was written. Lines
  // still queued then are counted in lines_unwritten(). Further writes are dropped.
  bool Close(std::chrono::milliseconds timeout);

  // Audit lines (loss notices not included).
  uint64_t lines_written() const { return lines_written_.load(std::memory_order_relaxed); }
  uint64_t lines_dropped_full() const { return dropped_full_.load(std::memory_order_relaxed); }
  uint64_t lines_write_failed() const { return write_failed_.load(std::memory_order_relaxed); }
  // Decided lines never written: still queued at Close, or after a fatal error.
  uint64_t lines_unwritten() const { return unwritten_.load(std::memory_order_relaxed); }
  uint64_t lines_lost() const {
    return lines_dropped_full() + lines_write_failed() + lines_unwritten();
  }
  uint64_t notices_written() const { return notices_written_.load(std::memory_order_relaxed); }
  // Bytes handed over and not yet written (the open batch not included), and their peak.
  size_t queued_bytes() const { return queued_bytes_.load(std::memory_order_relaxed); }
  size_t peak_queued_bytes() const { return peak_queued_.load(std::memory_order_relaxed); }
  // errno of the last failed write, 0 if none; the fatal one (EPIPE) once the writer stopped.
  int last_error() const { return last_error_.load(std::memory_order_relaxed); }
  int fatal_error() const { return fatal_error_.load(std::memory_order_relaxed); }
  // After Close: the last line written was cut short (an interrupted or failed write).
  bool last_line_cut_short() const { return cut_short_; }
  // Everything counted lost since the start, by reason (as announced or to be).
  std::map<std::string, uint64_t, std::less<>> losses() const;

 private:
  struct Batch {
    std::string bytes;
    uint64_t lines = 0;
  };
  void Run();
  void HandOver();  // the open batch to the queue; mu_ not held
  // Writes `batches` (after `notice`, when not empty) with as few writev calls as possible.
  // Returns the bytes of the batches written (the notice's not included); *error is errno of
  // the failure, 0 if all was written, EINTR when abandoned.
  size_t WriteOut(const std::string& notice, const std::vector<Batch>& batches, int* error);
  void Account(const std::vector<Batch>& batches, size_t written, int error);

  const int fd_;
  const AsyncWriterOptions options_;
  std::function<void()> on_fatal_;

  // The pipeline thread's open batch.
  Batch open_;

  mutable std::mutex mu_;
  std::condition_variable cv_;       // the writer waits for batches, notices, close
  std::condition_variable done_cv_;  // Close waits for the writer
  std::deque<Batch> queue_;
  std::vector<std::string> spare_;  // written batches' storage, reused
  LossLedger ledger_;
  bool closing_ = false;
  bool done_ = false;

  std::atomic<bool> abandon_{false};
  std::atomic<size_t> queued_bytes_{0};
  std::atomic<size_t> peak_queued_{0};
  std::atomic<uint64_t> lines_written_{0};
  std::atomic<uint64_t> dropped_full_{0};
  std::atomic<uint64_t> write_failed_{0};
  std::atomic<uint64_t> unwritten_{0};
  std::atomic<uint64_t> notices_written_{0};
  std::atomic<int> last_error_{0};
  std::atomic<int> fatal_error_{0};
  bool closed_ = false;
  bool cut_short_ = false;  // the writer thread's: the bytes written end inside a line
  std::thread thread_;
  pthread_t thread_handle_{};
};

}  // namespace mat::output
