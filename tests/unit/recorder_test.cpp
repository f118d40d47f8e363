// --record runs as root: its file must never be a way to overwrite another file. A symbolic
// link, a FIFO or device, a file with other hard links or another owner at the path is refused;
// a missing file is created mode 0600, an existing regular file of ours is replaced.
#include "capture/recorder.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.h"

namespace mat::capture {
namespace {

namespace fs = std::filesystem;
using mat::testing::ErrorOf;

class RecorderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("mat-recorder-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  static void Write(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
  }

  fs::path dir_;
};

TEST_F(RecorderTest, APlantedSymlinkIsRefusedAndItsTargetUntouched) {
  const std::string victim = Path("victim");
  Write(victim, "precious");
  const std::string link = Path("rec");
  fs::create_symlink(victim, link);
  Recorder recorder;
  std::string error = ErrorOf(recorder.Open(link, ClockMap{}));
  EXPECT_NE(error, "");
  EXPECT_NE(error.find("symbolic link"), std::string::npos) << error;
  recorder.Close();
  EXPECT_EQ(Read(victim), "precious");
  // A dangling link is refused too: following it would create a file elsewhere.
  const std::string dangling = Path("dangling");
  fs::create_symlink(Path("elsewhere"), dangling);
  EXPECT_NE(ErrorOf(recorder.Open(dangling, ClockMap{})), "");
  EXPECT_FALSE(fs::exists(Path("elsewhere")));
}

TEST_F(RecorderTest, NonRegularAndHardLinkedFilesAreRefused) {
  const std::string fifo = Path("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  Recorder recorder;
  std::string error = ErrorOf(recorder.Open(fifo, ClockMap{}));  // must not block either
  EXPECT_NE(error.find("not a regular file"), std::string::npos) << error;
  error = ErrorOf(recorder.Open(dir_.string(), ClockMap{}));
  EXPECT_NE(error, "");

  const std::string victim = Path("victim");
  Write(victim, "precious");
  const std::string hard = Path("hard");
  fs::create_hard_link(victim, hard);
  error = ErrorOf(recorder.Open(hard, ClockMap{}));
  EXPECT_NE(error.find("hard link"), std::string::npos) << error;
  EXPECT_EQ(Read(victim), "precious");

  // Root writing plaintext into a file another user owns would hand it to that user.
  if (::geteuid() == 0) {
    const std::string theirs = Path("theirs");
    Write(theirs, "theirs");
    ASSERT_EQ(::chown(theirs.c_str(), 65534, 65534), 0);
    error = ErrorOf(recorder.Open(theirs, ClockMap{}));
    EXPECT_NE(error.find("owned by"), std::string::npos) << error;
    EXPECT_EQ(Read(theirs), "theirs");
  }
}

TEST_F(RecorderTest, CreatesMode0600AndReplacesAFileOfItsOwn) {
  const std::string path = Path("rec");
  Write(path, std::string(1000, 'x'));
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  Recorder recorder;
  ClockMap clock;
  clock.mono_to_wall_ns = 42;
  ASSERT_EQ(ErrorOf(recorder.Open(path, clock)), "");
  const char record[] = "record";
  recorder.Append(record, sizeof(record));
  recorder.Close();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  ClockMap read_clock;
  ReplayStats stats;
  std::vector<std::string> records;
  EXPECT_EQ(ErrorOf(ReadRecording(
                path, &read_clock,
                [&](const void* data, uint32_t size) {
                  records.emplace_back(static_cast<const char*>(data), size);
                },
                &stats)),
            "");
  EXPECT_EQ(read_clock.mono_to_wall_ns, 42);
  ASSERT_EQ(records.size(), 1u);  // the old content is gone
  EXPECT_EQ(records[0], std::string(record, sizeof(record)));
  EXPECT_EQ(stats.bad_records, 0u);

  const std::string fresh = Path("fresh");
  ASSERT_EQ(ErrorOf(recorder.Open(fresh, clock)), "");
  recorder.Close();
  ASSERT_EQ(::stat(fresh.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// Records are read in large blocks: records that straddle a block's end, records of every
// size up to the largest one and a torn tail come out exactly as written, 8-byte aligned.
TEST_F(RecorderTest, ReadsRecordsAcrossBlocksAlignedAndStopsAtATornTail) {
  const std::string path = Path("many");
  Recorder recorder;
  ASSERT_EQ(ErrorOf(recorder.Open(path, ClockMap{})), "");
  std::vector<std::string> written;
  const size_t largest = sizeof(tap_data) + 4096;
  size_t total = 0;
  for (uint32_t i = 0; total < 3 * (1u << 20); ++i) {
    const size_t size = i % 7 == 0 ? largest : (i * 7919u) % largest;
    std::string record(size, '\0');
    for (size_t k = 0; k < size; ++k) record[k] = static_cast<char>((i * 31 + k) & 0xff);
    recorder.Append(record.data(), static_cast<uint32_t>(record.size()));
    written.push_back(std::move(record));
    total += size + 4;
  }
  recorder.Close();

  auto read = [&](ReplayStats* stats) {
    std::vector<std::string> records;
    ClockMap clock;
    EXPECT_EQ(ErrorOf(ReadRecording(
                  path, &clock,
                  [&](const void* data, uint32_t size) {
                    EXPECT_EQ(reinterpret_cast<uintptr_t>(data) % 8, 0u);
                    records.emplace_back(static_cast<const char*>(data), size);
                  },
                  stats)),
              "");
    return records;
  };
  ReplayStats stats;
  EXPECT_TRUE(read(&stats) == written);
  EXPECT_EQ(stats.records, written.size());
  EXPECT_EQ(stats.bad_records, 0u);

  // A torn size, then a torn record: every whole record before them, one bad record.
  { std::ofstream(path, std::ios::app | std::ios::binary).write("\x10\x00", 2); }
  stats = {};
  EXPECT_TRUE(read(&stats) == written);
  EXPECT_EQ(stats.bad_records, 1u);
  EXPECT_EQ(stats.bad_offset, total + 16);  // where the torn size starts, after the header
  fs::resize_file(path, fs::file_size(path) - 2 - 10);
  stats = {};
  std::vector<std::string> records = read(&stats);
  ASSERT_EQ(records.size(), written.size() - 1);
  EXPECT_TRUE(std::equal(records.begin(), records.end(), written.begin()));
  EXPECT_EQ(stats.bad_records, 1u);
  EXPECT_EQ(stats.bad_offset, total + 16 - 4 - written.back().size());
  // A corrupt length (over the largest record) stops the replay there, at its offset.
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(16);
    f.write("\xff\xff\xff\x7f", 4);
  }
  stats = {};
  EXPECT_TRUE(read(&stats).empty());
  EXPECT_EQ(stats.bad_records, 1u);
  EXPECT_EQ(stats.bad_offset, 16u);
}

}  // namespace
}  // namespace mat::capture
