// The live auditor's stdout: the writer thread and its bounded queue (a stalled reader never
// blocks the pipeline's thread; lines beyond the cap are dropped, counted and announced), the
// loss notices and their throttle, Close's timeout with a blocked reader, EPIPE.
#include "output/async_writer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "output/loss_notice.h"

namespace mat::output {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kSec = 1'000'000'000ull;

// 2026-12-06T12:00:00Z
constexpr uint64_t kT0 = 1796558400ull * kSec;

TEST(LossNoticeTest, FormatIsOneSortedJsonLineWithoutAuditId) {
  std::map<std::string, uint64_t, std::less<>> counts{{"ringbuf_drops", 7},
                                                      {"output_buffer_full", 1234}};
  std::string line = FormatLossNotice(kT0, kT0 + kSec + 301000, counts);
  EXPECT_EQ(line,
            "{\"counts\":{\"output_buffer_full\":1234,\"ringbuf_drops\":7},\"level\":\"warning\","
            "\"msg\":\"mke-audit-tap/loss\",\"since\":\"2026-12-06T12:00:00.000000Z\","
            "\"time\":\"2026-12-06T12:00:01.000301Z\",\"total\":1241,"
            "\"type\":\"mke-audit-tap/loss\"}");
  auto j = nlohmann::json::parse(line);
  EXPECT_FALSE(j.contains("auditID"));
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(LossLedgerTest, CountsGrowthSinceTheLastNoticeByReason) {
  LossLedger ledger(kT0);
  EXPECT_FALSE(ledger.TakeNotice(kT0 + 5 * kSec));  // nothing lost: no notice
  ledger.SetTotal("a", 10);
  ledger.SetTotal("b", 0);
  auto n1 = ledger.TakeNotice(kT0 + 5 * kSec);
  ASSERT_TRUE(n1);
  auto j1 = nlohmann::json::parse(*n1);
  EXPECT_EQ(j1["counts"], nlohmann::json({{"a", 10}}));   // b did not grow: not named
  EXPECT_EQ(j1["since"], "2026-12-06T12:00:00.000000Z");  // the start
  ledger.SetTotal("a", 10);                               // no growth
  EXPECT_FALSE(ledger.pending());
  ledger.SetTotal("a", 15);
  ledger.Add("c", 2);
  auto n2 = ledger.TakeNotice(kT0 + 7 * kSec);
  ASSERT_TRUE(n2);
  auto j2 = nlohmann::json::parse(*n2);
  EXPECT_EQ(j2["counts"], nlohmann::json({{"a", 5}, {"c", 2}}));
  EXPECT_EQ(j2["total"], 7);
  EXPECT_EQ(j2["since"], "2026-12-06T12:00:05.000000Z");  // the previous notice
  // A source that starts again from 0 (a new TLS stage): all of its new count is new.
  ledger.SetTotal("a", 3);
  auto n3 = ledger.TakeNotice(kT0 + 9 * kSec);
  ASSERT_TRUE(n3);
  EXPECT_EQ(nlohmann::json::parse(*n3)["counts"], nlohmann::json({{"a", 3}}));
  EXPECT_EQ(ledger.lost().at("a"), 18u);
  EXPECT_EQ(ledger.lost().at("c"), 2u);
  EXPECT_EQ(ledger.notices(), 3u);
}

TEST(LossLedgerTest, AtMostOneNoticeAnInterval) {
  LossLedger ledger(kT0);
  ledger.Add("x", 1);
  ASSERT_TRUE(ledger.TakeNotice(kT0 + 100));  // the first one at once
  uint64_t announced = 1;
  int notices = 1;
  // Losses every 10 ms for 3.5 s: a notice only once a second.
  const uint64_t end = kT0 + 3 * kSec + kSec / 2;
  for (uint64_t t = kT0 + 10'000'000; t <= end; t += 10'000'000) {
    ledger.Add("x", 1);
    if (auto n = ledger.TakeNotice(t)) {
      ++notices;
      announced += nlohmann::json::parse(*n)["counts"]["x"].get<uint64_t>();
    }
  }
  EXPECT_EQ(notices, 4);  // at 0, 1.01 s, 2.02 s and 3.03 s
  ledger.Add("x", 1);
  EXPECT_FALSE(ledger.TakeNotice(end + 300));
  auto last = ledger.TakeNotice(end + 300, /*force=*/true);  // at exit
  ASSERT_TRUE(last);
  announced += nlohmann::json::parse(*last)["counts"]["x"].get<uint64_t>();
  EXPECT_EQ(announced, ledger.lost().at("x"));
}

// ---- the writer --------------------------------------------------------------------------

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    if (r >= 0) ::close(r);
    if (w >= 0) ::close(w);
  }
  // Reads until the writer's end is closed, or `for_ms` without data.
  std::string ReadAll(int for_ms = 2000) {
    std::string out;
    char buf[65536];
    for (;;) {
      pollfd p{r, POLLIN, 0};
      if (::poll(&p, 1, for_ms) <= 0) break;
      ssize_t n = ::read(r, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
};

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) {
      lines.push_back(text.substr(start) + "<cut>");
      break;
    }
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// Seconds of the day of a notice time ("2026-12-06T12:00:01.000301Z").
double DaySeconds(const std::string& time) {
  size_t t = time.find('T');
  return std::stod(time.substr(t + 1, 2)) * 3600 + std::stod(time.substr(t + 4, 2)) * 60 +
         std::stod(time.substr(t + 7, 9));
}

bool IsNotice(const std::string& line) { return line.find("\"mke-audit-tap/loss\"") != line.npos; }

std::string Line(int i) {
  std::string line = "{\"audit\":{\"auditID\":\"" + std::to_string(i) + "\"}";
  line.resize(200, ' ');
  return line + "}";
}

TEST(AsyncLineWriterTest, WritesEveryLineInOrder) {
  Pipe pipe;
  std::vector<std::string> got;
  std::thread reader([&] { got = Lines(pipe.ReadAll()); });
  {
    AsyncLineWriter out(pipe.w, {});
    for (int i = 0; i < 10000; ++i) {
      out.Write(Line(i));
      if (i % 100 == 99) out.Flush();
    }
    EXPECT_TRUE(out.Close(std::chrono::seconds(10)));
    EXPECT_EQ(out.lines_written(), 10000u);
    EXPECT_EQ(out.lines_lost(), 0u);
    EXPECT_EQ(out.notices_written(), 0u);
    EXPECT_EQ(out.queued_bytes(), 0u);
  }
  ::close(pipe.w);
  pipe.w = -1;
  reader.join();
  ASSERT_EQ(got.size(), 10000u);
  for (int i = 0; i < 10000; ++i) ASSERT_EQ(got[i], Line(i)) << i;
}

// A reader that stops reading: Write and Flush never block, memory stays under the cap, what does
// not fit is dropped and counted, and once the reader reads again a loss notice says how many.
TEST(AsyncLineWriterTest, StalledReaderNeverBlocksAndLossesAreAnnounced) {
  Pipe pipe;
  AsyncWriterOptions o;
  o.buffer_bytes = 256 * 1024;
  o.batch_bytes = 16 * 1024;
  AsyncLineWriter out(pipe.w, o);
  const int kLines = 20000;  // 4 MB: far more than the pipe (64 KiB) and the cap hold
  auto t0 = Clock::now();
  size_t peak = 0;
  for (int i = 0; i < kLines; ++i) {
    out.Write(Line(i));
    if (i % 50 == 49) out.Flush();
    peak = std::max(peak, out.queued_bytes());
  }
  out.Flush();
  auto took = Clock::now() - t0;
  EXPECT_LT(took, std::chrono::milliseconds(500)) << "Write/Flush blocked on the stalled reader";
  EXPECT_LE(peak, o.buffer_bytes);
  EXPECT_LE(out.peak_queued_bytes(), o.buffer_bytes);
  EXPECT_GT(out.lines_dropped_full(), 0u);
  EXPECT_EQ(out.losses().at("output_buffer_full"), out.lines_dropped_full());

  // The reader resumes.
  std::string text;
  std::thread reader([&] { text = pipe.ReadAll(1500); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // More lines after the recovery are written.
  for (int i = kLines; i < kLines + 100; ++i) out.Write(Line(i));
  out.Flush();
  reader.join();
  auto lines = Lines(text);
  uint64_t audit = 0, announced = 0;
  int notices = 0;
  for (const auto& line : lines) {
    if (IsNotice(line)) {
      ++notices;
      auto j = nlohmann::json::parse(line);
      EXPECT_FALSE(j.contains("auditID"));
      announced += j["counts"].value("output_buffer_full", uint64_t{0});
    } else {
      ASSERT_EQ(line.find("<cut>"), std::string::npos);
      ++audit;
    }
  }
  // One notice, or two: the first may be decided as the drops begin, while the writer still
  // goes (it reaches the reader with the lines it follows), the next one a second later.
  EXPECT_GE(notices, 1);
  EXPECT_LE(notices, 2);
  EXPECT_EQ(audit, out.lines_written());
  EXPECT_EQ(announced, out.lines_dropped_full());
  EXPECT_EQ(audit + announced, static_cast<uint64_t>(kLines + 100));
  // The lines after the recovery came whole, the last one last.
  std::string last_audit;
  for (const auto& line : lines)
    if (!IsNotice(line)) last_audit = line;
  EXPECT_EQ(last_audit, Line(kLines + 99));
  EXPECT_TRUE(out.Close(std::chrono::seconds(5)) || out.lines_dropped_full() > 0);
  EXPECT_EQ(out.lines_unwritten(), 0u);
}

// Close with a reader that never reads: it returns after the timeout, and counts what it could
// not write; the lines the pipe took are whole.
TEST(AsyncLineWriterTest, CloseIsBoundedWhenTheReaderIsStalled) {
  Pipe pipe;
  AsyncWriterOptions o;
  o.buffer_bytes = 4u << 20;
  AsyncLineWriter out(pipe.w, o);
  const int kLines = 5000;  // 1 MB, more than the pipe holds, less than the cap
  for (int i = 0; i < kLines; ++i) out.Write(Line(i));
  out.Flush();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the writer is blocked now
  auto t0 = Clock::now();
  EXPECT_FALSE(out.Close(std::chrono::milliseconds(300)));
  auto took = Clock::now() - t0;
  EXPECT_GE(took, std::chrono::milliseconds(300));
  EXPECT_LT(took, std::chrono::milliseconds(1500));
  EXPECT_EQ(out.lines_dropped_full(), 0u);
  EXPECT_GT(out.lines_unwritten(), 0u);
  EXPECT_EQ(out.lines_written() + out.lines_unwritten(), static_cast<uint64_t>(kLines));
  ::close(pipe.w);
  pipe.w = -1;
  auto lines = Lines(pipe.ReadAll(500));
  uint64_t whole = 0;
  for (const auto& line : lines)
    if (line.find("<cut>") == std::string::npos) ++whole;
  EXPECT_EQ(whole, out.lines_written());
  EXPECT_EQ(out.last_line_cut_short(), lines.back().find("<cut>") != std::string::npos);
  // Later writes are counted, never written.
  out.Write(Line(0));
  EXPECT_EQ(out.lines_written() + out.lines_unwritten(), static_cast<uint64_t>(kLines + 1));
}

// The reader closes the pipe: EPIPE (SIGPIPE ignored, as main does) stops the writer, calls
// on_fatal, and every later line is counted unwritten.
TEST(AsyncLineWriterTest, ClosedPipeIsFatal) {
  signal(SIGPIPE, SIG_IGN);
  Pipe pipe;
  std::atomic<int> fatal_calls{0};
  AsyncLineWriter out(pipe.w, {}, [&] { ++fatal_calls; });
  out.Write(Line(1));
  out.Flush();
  EXPECT_EQ(Lines(pipe.ReadAll(300)).size(), 1u);
  ::close(pipe.r);
  pipe.r = -1;
  for (int i = 0; i < 10; ++i) out.Write(Line(i));
  out.Flush();
  for (int i = 0; i < 200 && fatal_calls == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(fatal_calls.load(), 1);
  EXPECT_EQ(out.fatal_error(), EPIPE);
  out.Write(Line(99));
  out.Flush();
  EXPECT_FALSE(out.Close(std::chrono::seconds(1)));
  EXPECT_EQ(out.lines_written(), 1u);
  EXPECT_EQ(out.lines_unwritten(), 11u);
}

// Another write error (a full disk) loses its lines, counted and announced, and the writer goes
// on.
TEST(AsyncLineWriterTest, FailedWritesAreCountedNotFatal) {
  int fd = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  AsyncLineWriter out(fd, {});
  for (int i = 0; i < 5; ++i) out.Write(Line(i));
  out.Flush();
  EXPECT_FALSE(out.Close(std::chrono::seconds(2)));
  EXPECT_EQ(out.fatal_error(), 0);
  EXPECT_EQ(out.last_error(), ENOSPC);
  EXPECT_EQ(out.lines_write_failed(), 5u);
  EXPECT_EQ(out.losses().at("output_write_failed"), 5u);
  ::close(fd);
}

// The other stages' losses: announced at most once an interval while they go on, each notice
// with the counts since the previous one, and what is left in a last notice at Close.
TEST(AsyncLineWriterTest, NoticesAreThrottledAndAddUp) {
  Pipe pipe;
  std::string text;
  std::thread reader([&] { text = pipe.ReadAll(3000); });
  AsyncWriterOptions o;
  o.notice_interval_ns = 300'000'000;  // 0.3 s, so that the test is short
  AsyncLineWriter out(pipe.w, o);
  auto t0 = Clock::now();
  uint64_t total = 0;
  int i = 0;
  while (Clock::now() - t0 < std::chrono::milliseconds(1000)) {
    total += 3;
    out.SetLossTotals({{"ringbuf_drops", total}, {"stream_gaps", 0}});
    out.Write(Line(i++));
    out.Flush();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  total += 1;
  out.SetLossTotals({{"ringbuf_drops", total}});
  EXPECT_TRUE(out.Close(std::chrono::seconds(5)));
  ::close(pipe.w);
  pipe.w = -1;
  reader.join();
  std::vector<double> times;
  uint64_t announced = 0;
  uint64_t audit = 0;
  for (const auto& line : Lines(text)) {
    if (!IsNotice(line)) {
      ++audit;
      continue;
    }
    auto j = nlohmann::json::parse(line);
    EXPECT_FALSE(j["counts"].contains("stream_gaps"));  // nothing lost there: not named
    announced += j["counts"]["ringbuf_drops"].get<uint64_t>();
    EXPECT_EQ(j["total"], j["counts"]["ringbuf_drops"]);
    if (!times.empty()) {
      EXPECT_EQ(DaySeconds(j["since"]), times.back());  // the previous one
    }
    times.push_back(DaySeconds(j["time"]));
  }
  for (size_t k = 1; k + 1 < times.size(); ++k)  // the last one, at Close, may come sooner
    EXPECT_GE(times[k] - times[k - 1], 0.299) << k;
  EXPECT_EQ(audit, static_cast<uint64_t>(i));
  EXPECT_EQ(announced, total);
  // 1 s of losses with notices at most every 0.3 s: 4 at most, plus the last one at Close.
  EXPECT_GE(out.notices_written(), 3u);
  EXPECT_LE(out.notices_written(), 5u);
  EXPECT_EQ(times.size(), out.notices_written());
}

}  // namespace
}  // namespace mat::output
