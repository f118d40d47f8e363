// --replay streams the recording through the pipeline: it never holds the whole file, so a
// recording larger than memory replays (issue 16: it used to be loaded whole first).
#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "daemon/replay.h"
#include "mke_audit_tap/tap_events.h"

namespace mat {
namespace {

size_t HeapInUse() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

// A recording of 64 MiB is written into a FIFO while --replay reads it: the writer measures
// this process's heap as it goes. Loaded whole, the replay would hold all 64 MiB before its
// first record; streamed, it holds its read block and what the pipeline keeps.
TEST(ReplayStream, ARecordingIsNeverHeldWhole) {
  const std::string fifo = (std::filesystem::temp_directory_path() /
                            ("mat-replay-stream-" + std::to_string(::getpid()) + ".rec"))
                               .string();
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::signal(SIGPIPE, SIG_IGN);  // a reader that stops early fails the writes, not the test
  constexpr size_t kRecordBytes = 4000, kTotalBytes = 64u << 20;
  const size_t heap_before = HeapInUse();
  size_t peak_growth = 0, written = 0;
  std::thread writer([&] {
    std::FILE* out = std::fopen(fifo.c_str(), "wb");  // waits for the reader
    if (out == nullptr) return;
    const char magic[8] = {'M', 'A', 'T', 'R', 'E', 'C', '0', '1'};
    const int64_t mono_to_wall_ns = 1'700'000'000'000'000'000;
    std::fwrite(magic, 1, sizeof(magic), out);
    std::fwrite(&mono_to_wall_ns, sizeof(mono_to_wall_ns), 1, out);
    // Records of a type no stage knows: each is counted and dropped, none is kept.
    std::string record(kRecordBytes, 'x');
    tap_hdr hdr{};
    hdr.type = 0xee;
    std::memcpy(record.data(), &hdr, sizeof(hdr));
    const uint32_t size = kRecordBytes;
    for (size_t n = 0; written < kTotalBytes; ++n) {
      if (std::fwrite(&size, sizeof(size), 1, out) != 1 ||
          std::fwrite(record.data(), 1, record.size(), out) != record.size())
        break;
      written += sizeof(size) + record.size();
      if (n % 64 == 0) {
        const size_t heap = HeapInUse();
        peak_growth = std::max(peak_growth, heap > heap_before ? heap - heap_before : 0);
      }
    }
    std::fclose(out);
  });
  Options o;
  o.replay_file = fifo;
  o.level = audit::Level::kRequest;
  std::FILE* devnull = std::fopen("/dev/null", "w");
  ASSERT_NE(devnull, nullptr);
  int rc = 0;
  {
    output::FileLineSink sink(devnull);
    rc = daemon::RunReplay(o, sink);
  }
  writer.join();
  std::fclose(devnull);
  ::unlink(fifo.c_str());
  EXPECT_EQ(rc, 0);
  EXPECT_GE(written, kTotalBytes);
  EXPECT_LT(peak_growth, size_t{16} << 20) << "heap grew by " << (peak_growth >> 20) << " MiB";
}

}  // namespace
}  // namespace mat
