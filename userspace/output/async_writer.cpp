#include "output/async_writer.h"

#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mat::output {
namespace {

// Sent to the writer thread to interrupt a write that blocks past Close's timeout. Installed
// without SA_RESTART, so the write returns (with what it wrote, or EINTR).
int InterruptSignal() { return SIGRTMIN; }

void OnInterrupt(int) {}

void InstallInterruptHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = OnInterrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    ::sigaction(InterruptSignal(), &sa, nullptr);
  });
}

uint64_t WallNs() {
  timespec t{};
  clock_gettime(CLOCK_REALTIME, &t);
  return uint64_t(t.tv_sec) * 1000000000ull + uint64_t(t.tv_nsec);
}

constexpr char kBufferFull[] = "output_buffer_full";
constexpr char kWriteFailed[] = "output_write_failed";
constexpr size_t kMaxSpare = 4;
constexpr size_t kMaxBatchesPerWrite = 64;

}  // namespace

AsyncLineWriter::AsyncLineWriter(int fd, AsyncWriterOptions options, std::function<void()> on_fatal)
    : fd_(fd),
      options_(options),
      on_fatal_(std::move(on_fatal)),
      ledger_(WallNs(), options.notice_interval_ns) {
  InstallInterruptHandler();
  open_.bytes.reserve(options_.batch_bytes + 16 * 1024);
  thread_ = std::thread([this] { Run(); });
  thread_handle_ = thread_.native_handle();
}

AsyncLineWriter::~AsyncLineWriter() { Close(std::chrono::seconds(1)); }

void AsyncLineWriter::Write(std::string_view line) {
  if (closed_ || fatal_error_.load(std::memory_order_relaxed) != 0) {
    unwritten_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const size_t need = line.size() + 1;
  if (queued_bytes_.load(std::memory_order_relaxed) + open_.bytes.size() + need >
      options_.buffer_bytes) {
    dropped_full_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  open_.bytes.append(line);
  open_.bytes.push_back('\n');
  ++open_.lines;
  if (open_.bytes.size() >= options_.batch_bytes) HandOver();
}

void AsyncLineWriter::Flush() { HandOver(); }

void AsyncLineWriter::HandOver() {
  if (open_.lines == 0) return;
  std::string next;
  {
    std::lock_guard lock(mu_);
    if (done_) {  // the writer stopped (fatal error, or closed): nobody will write these
      unwritten_.fetch_add(open_.lines, std::memory_order_relaxed);
      open_.bytes.clear();
      open_.lines = 0;
      return;
    }
    size_t queued =
        queued_bytes_.fetch_add(open_.bytes.size(), std::memory_order_relaxed) + open_.bytes.size();
    if (queued > peak_queued_.load(std::memory_order_relaxed))
      peak_queued_.store(queued, std::memory_order_relaxed);
    queue_.push_back(std::move(open_));
    if (!spare_.empty()) {
      next = std::move(spare_.back());
      spare_.pop_back();
    }
  }
  cv_.notify_one();
  open_ = Batch{};
  open_.bytes = std::move(next);
  open_.bytes.clear();
  if (open_.bytes.capacity() == 0) open_.bytes.reserve(options_.batch_bytes + 16 * 1024);
}

void AsyncLineWriter::SetLossTotals(const std::vector<std::pair<std::string, uint64_t>>& totals) {
  bool pending;
  {
    std::lock_guard lock(mu_);
    for (const auto& [reason, total] : totals) ledger_.SetTotal(reason, total);
    pending = ledger_.pending();
  }
  if (pending) cv_.notify_one();
}

std::map<std::string, uint64_t, std::less<>> AsyncLineWriter::losses() const {
  std::lock_guard lock(mu_);
  auto lost = ledger_.lost();
  // What the ledger has not pulled yet.
  auto add_output = [&](const char* reason, uint64_t total) {
    auto it = lost.find(reason);
    uint64_t known = it == lost.end() ? 0 : it->second;
    if (total >= known) lost[reason] = total;  // named even at 0
  };
  add_output(kBufferFull, lines_dropped_full());
  add_output(kWriteFailed, lines_write_failed());
  return lost;
}

bool AsyncLineWriter::Close(std::chrono::milliseconds timeout) {
  if (closed_) return lines_lost() == 0 && fatal_error() == 0;
  HandOver();
  closed_ = true;
  std::unique_lock lock(mu_);
  closing_ = true;
  cv_.notify_all();
  if (!done_cv_.wait_for(lock, timeout, [this] { return done_; })) {
    abandon_.store(true);
    cv_.notify_all();
    // The signal may come just before the writer enters write(2): send it until it is out.
    while (!done_cv_.wait_for(lock, std::chrono::milliseconds(10), [this] { return done_; }))
      pthread_kill(thread_handle_, InterruptSignal());
  }
  lock.unlock();
  thread_.join();
  return lines_lost() == 0 && fatal_error() == 0;
}

void AsyncLineWriter::Run() {
  sigset_t interrupt;
  sigemptyset(&interrupt);
  sigaddset(&interrupt, InterruptSignal());
  pthread_sigmask(SIG_UNBLOCK, &interrupt, nullptr);

  std::vector<Batch> batches;
  std::string notice;
  std::unique_lock lock(mu_);
  for (;;) {
    ledger_.SetTotal(kBufferFull, lines_dropped_full());
    ledger_.SetTotal(kWriteFailed, lines_write_failed());
    const bool abandon = abandon_.load();
    notice.clear();
    if (options_.notices && !abandon) {
      // The last one, at close, goes out once everything queued is written.
      if (auto line = ledger_.TakeNotice(WallNs(), closing_ && queue_.empty())) {
        notice = std::move(*line);
        notice.push_back('\n');
      }
    }
    batches.clear();
    while (!abandon && !queue_.empty() && batches.size() < kMaxBatchesPerWrite) {
      batches.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    if (batches.empty() && notice.empty()) {
      if (closing_ || abandon) break;
      if (options_.notices && ledger_.pending()) {
        uint64_t now = WallNs(), due = ledger_.next_due_ns();
        cv_.wait_for(lock, std::chrono::nanoseconds(due > now ? due - now : 0));
      } else {
        cv_.wait(lock);
      }
      continue;
    }
    lock.unlock();
    int error = 0;
    size_t written = WriteOut(notice, batches, &error);
    lock.lock();
    Account(batches, written, error);
    size_t bytes = 0;
    for (Batch& b : batches) {
      bytes += b.bytes.size();
      if (spare_.size() < kMaxSpare) spare_.push_back(std::move(b.bytes));
    }
    queued_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    if (fatal_error_.load() != 0) break;
  }
  // Whatever is still queued will not be written.
  for (const Batch& b : queue_) {
    unwritten_.fetch_add(b.lines, std::memory_order_relaxed);
    queued_bytes_.fetch_sub(b.bytes.size(), std::memory_order_relaxed);
  }
  queue_.clear();
  done_ = true;
  done_cv_.notify_all();
  const bool fatal = fatal_error_.load() != 0;
  lock.unlock();
  if (fatal && on_fatal_) on_fatal_();
}

size_t AsyncLineWriter::WriteOut(const std::string& notice, const std::vector<Batch>& batches,
                                 int* error) {
  std::vector<iovec> iov;
  iov.reserve(batches.size() + 2);
  // A line cut short by an earlier failed write is ended first, so that the next line stays whole.
  static const char kNewline = '\n';
  size_t prefix = 0;
  if (cut_short_) {
    iov.push_back({const_cast<char*>(&kNewline), 1});
    prefix += 1;
  }
  if (!notice.empty()) {
    iov.push_back({const_cast<char*>(notice.data()), notice.size()});
    prefix += notice.size();
  }
  for (const Batch& b : batches)
    if (!b.bytes.empty()) iov.push_back({const_cast<char*>(b.bytes.data()), b.bytes.size()});
  size_t total = 0, i = 0;
  *error = 0;
  while (i < iov.size()) {
    if (abandon_.load()) {
      *error = EINTR;
      break;
    }
    int count = static_cast<int>(std::min<size_t>(iov.size() - i, IOV_MAX));
    ssize_t n = ::writev(fd_, &iov[i], count);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {  // someone made the descriptor non-blocking
        pollfd p{fd_, POLLOUT, 0};
        ::poll(&p, 1, 100);
        continue;
      }
      *error = errno;
      break;
    }
    if (n == 0) {
      *error = EIO;
      break;
    }
    total += static_cast<size_t>(n);
    size_t left = static_cast<size_t>(n);
    while (left > 0 && i < iov.size()) {
      if (left >= iov[i].iov_len) {
        left -= iov[i].iov_len;
        ++i;
      } else {
        iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + left;
        iov[i].iov_len -= left;
        left = 0;
      }
    }
  }
  if (cut_short_ && total >= 1) cut_short_ = false;
  if (!notice.empty() && total >= prefix) notices_written_.fetch_add(1, std::memory_order_relaxed);
  return total > prefix ? total - prefix : 0;
}

void AsyncLineWriter::Account(const std::vector<Batch>& batches, size_t written, int error) {
  if (error != 0 && error != EINTR) last_error_.store(error, std::memory_order_relaxed);
  size_t left = written;
  uint64_t lost = 0;
  for (const Batch& b : batches) {
    if (left >= b.bytes.size()) {
      lines_written_.fetch_add(b.lines, std::memory_order_relaxed);
      left -= b.bytes.size();
      continue;
    }
    // Lines wholly written count as written; the rest (a line cut short included) are lost.
    uint64_t whole = static_cast<uint64_t>(std::count(b.bytes.data(), b.bytes.data() + left, '\n'));
    if (left > 0 && b.bytes[left - 1] != '\n') cut_short_ = true;
    lines_written_.fetch_add(whole, std::memory_order_relaxed);
    lost += b.lines - whole;
    left = 0;
  }
  if (lost == 0 && error != EPIPE) return;
  if (error == EPIPE) {
    fatal_error_.store(EPIPE);
    unwritten_.fetch_add(lost, std::memory_order_relaxed);
  } else if (error == EINTR) {  // abandoned at Close
    unwritten_.fetch_add(lost, std::memory_order_relaxed);
  } else {
    write_failed_.fetch_add(lost, std::memory_order_relaxed);
  }
}

}  // namespace mat::output
