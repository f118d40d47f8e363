#include "capture/recorder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace mat::capture {
namespace {
constexpr char kMagic[8] = {'M', 'A', 'T', 'R', 'E', 'C', '0', '1'};
constexpr uint32_t kMaxRecord = sizeof(tap_data) + 4096;
}  // namespace

Recorder::~Recorder() { Close(); }

std::string Recorder::Open(const std::string& path, const ClockMap& clock) {
  Close();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return "cannot create " + path + ": " + std::strerror(errno);
  // The file may have existed with wider permissions: it holds plaintext, so narrow them.
  if (::fchmod(fd, 0600) != 0) {
    std::string err = "cannot chmod " + path + ": " + std::strerror(errno);
    ::close(fd);
    return err;
  }
  file_ = ::fdopen(fd, "wb");
  if (file_ == nullptr) {
    ::close(fd);
    return "cannot open " + path;
  }
  std::fwrite(kMagic, 1, sizeof(kMagic), file_);
  std::fwrite(&clock.mono_to_wall_ns, sizeof(clock.mono_to_wall_ns), 1, file_);
  return {};
}

void Recorder::Append(const void* bytes, uint32_t size) {
  if (file_ == nullptr) return;
  std::fwrite(&size, sizeof(size), 1, file_);
  std::fwrite(bytes, 1, size, file_);
}

void Recorder::Close() {
  if (file_ != nullptr) {
    std::fclose(file_);
    file_ = nullptr;
  }
}

std::string ReadRecording(const std::string& path, ClockMap* clock,
                          const std::function<void(const void*, uint32_t)>& on_record,
                          ReplayStats* stats) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return "cannot open " + path + ": " + std::strerror(errno);
  char magic[sizeof(kMagic)];
  if (std::fread(magic, 1, sizeof(magic), file) != sizeof(magic) ||
      std::memcmp(magic, kMagic, sizeof(kMagic)) != 0 ||
      std::fread(&clock->mono_to_wall_ns, sizeof(clock->mono_to_wall_ns), 1, file) != 1) {
    std::fclose(file);
    return path + " is not an mke-audit-tap recording";
  }
  std::vector<unsigned char> buf(kMaxRecord);
  for (;;) {
    uint32_t size = 0;
    if (std::fread(&size, sizeof(size), 1, file) != 1) break;
    if (size > kMaxRecord) {
      ++stats->bad_records;  // corrupt length: nothing after it can be trusted
      break;
    }
    // Records are read into an aligned buffer so the typed views are well aligned.
    if (std::fread(buf.data(), 1, size, file) != size) {
      ++stats->bad_records;
      break;
    }
    ++stats->records;
    on_record(buf.data(), size);
  }
  std::fclose(file);
  return {};
}

}  // namespace mat::capture
