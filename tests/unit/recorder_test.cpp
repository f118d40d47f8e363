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

namespace mat::capture {
namespace {

namespace fs = std::filesystem;

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
  std::string error = recorder.Open(link, ClockMap{});
  EXPECT_NE(error, "");
  EXPECT_NE(error.find("symbolic link"), std::string::npos) << error;
  recorder.Close();
  EXPECT_EQ(Read(victim), "precious");
  // A dangling link is refused too: following it would create a file elsewhere.
  const std::string dangling = Path("dangling");
  fs::create_symlink(Path("elsewhere"), dangling);
  EXPECT_NE(recorder.Open(dangling, ClockMap{}), "");
  EXPECT_FALSE(fs::exists(Path("elsewhere")));
}

TEST_F(RecorderTest, NonRegularAndHardLinkedFilesAreRefused) {
  const std::string fifo = Path("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  Recorder recorder;
  std::string error = recorder.Open(fifo, ClockMap{});  // must not block either
  EXPECT_NE(error.find("not a regular file"), std::string::npos) << error;
  error = recorder.Open(dir_.string(), ClockMap{});
  EXPECT_NE(error, "");

  const std::string victim = Path("victim");
  Write(victim, "precious");
  const std::string hard = Path("hard");
  fs::create_hard_link(victim, hard);
  error = recorder.Open(hard, ClockMap{});
  EXPECT_NE(error.find("hard link"), std::string::npos) << error;
  EXPECT_EQ(Read(victim), "precious");

  // Root writing plaintext into a file another user owns would hand it to that user.
  if (::geteuid() == 0) {
    const std::string theirs = Path("theirs");
    Write(theirs, "theirs");
    ASSERT_EQ(::chown(theirs.c_str(), 65534, 65534), 0);
    error = recorder.Open(theirs, ClockMap{});
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
  ASSERT_EQ(recorder.Open(path, clock), "");
  const char record[] = "record";
  recorder.Append(record, sizeof(record));
  recorder.Close();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  ClockMap read_clock;
  ReplayStats stats;
  std::vector<std::string> records;
  EXPECT_EQ(ReadRecording(
                path, &read_clock,
                [&](const void* data, uint32_t size) {
                  records.emplace_back(static_cast<const char*>(data), size);
                },
                &stats),
            "");
  EXPECT_EQ(read_clock.mono_to_wall_ns, 42);
  ASSERT_EQ(records.size(), 1u);  // the old content is gone
  EXPECT_EQ(records[0], std::string(record, sizeof(record)));
  EXPECT_EQ(stats.bad_records, 0u);

  const std::string fresh = Path("fresh");
  ASSERT_EQ(recorder.Open(fresh, clock), "");
  recorder.Close();
  ASSERT_EQ(::stat(fresh.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

}  // namespace
}  // namespace mat::capture
