#include "capture/recorder.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace mat::capture {
namespace {
constexpr char kMagic[8] = {'M', 'A', 'T', 'R', 'E', 'C', '0', '1'};
constexpr uint32_t kMaxRecord = sizeof(tap_data) + 4096;
}  // namespace

Recorder::~Recorder() { Close(); }

namespace {

// Opens path for writing without following a symbolic link and without blocking on a FIFO:
// a new file is created exclusively (mode 0600); an existing one only if it is a regular file
// with no other hard link, owned by us. The file descriptor, or why not.
Result<int> OpenRecordingFile(const std::string& path) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    if (errno != EEXIST) return Error{"cannot create " + path + ": " + std::strerror(errno)};
    // It exists. O_NONBLOCK: opening a FIFO must not wait for a reader.
    fd = ::open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) continue;  // removed in between: create it again
    if (fd < 0)
      return Error{errno == ELOOP   ? "refusing " + path + ": it is a symbolic link"
                   : errno == ENXIO ? "refusing " + path + ": not a regular file (a FIFO or socket)"
                                    : "cannot open " + path + ": " + std::strerror(errno)};
    struct stat st {};
    std::string why;
    if (::fstat(fd, &st) != 0)
      why = std::string("cannot stat it: ") + std::strerror(errno);
    else if (!S_ISREG(st.st_mode))
      why = "not a regular file";
    else if (st.st_nlink != 1)
      why = "it has another hard link";
    else if (st.st_uid != ::geteuid())
      why = "owned by uid " + std::to_string(st.st_uid);
    if (why.empty() && ::fcntl(fd, F_SETFL, 0) != 0)
      why = std::string("fcntl: ") + std::strerror(errno);
    if (why.empty() && ::ftruncate(fd, 0) != 0)
      why = std::string("cannot truncate it: ") + std::strerror(errno);
    if (!why.empty()) {
      ::close(fd);
      return Error{"refusing " + path + ": " + why};
    }
    return fd;
  }
  return Error{"cannot create " + path + ": it keeps appearing and disappearing"};
}

}  // namespace

Status Recorder::Open(const std::string& path, const ClockMap& clock) {
  Close();
  auto opened = OpenRecordingFile(path);
  if (!opened) return Error{opened.error()};
  const int fd = *opened;
  // An existing file may have had wider permissions: it holds plaintext, so narrow them.
  if (::fchmod(fd, 0600) != 0) {
    Error error{"cannot chmod " + path + ": " + std::strerror(errno)};
    ::close(fd);
    return error;
  }
  file_ = ::fdopen(fd, "wb");
  if (file_ == nullptr) {
    ::close(fd);
    return Error{"cannot open " + path};
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

Status ReadRecording(const std::string& path, ClockMap* clock,
                     const std::function<void(const void*, uint32_t)>& on_record,
                     ReplayStats* stats) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return Error{"cannot open " + path + ": " + std::strerror(errno)};
  char magic[sizeof(kMagic)];
  if (std::fread(magic, 1, sizeof(magic), file) != sizeof(magic) ||
      std::memcmp(magic, kMagic, sizeof(kMagic)) != 0 ||
      std::fread(&clock->mono_to_wall_ns, sizeof(clock->mono_to_wall_ns), 1, file) != 1) {
    std::fclose(file);
    return Error{path + " is not an mke-audit-tap recording"};
  }
  // Read in large blocks; each record is copied to an aligned buffer so the typed views of
  // its fields are well aligned (in the file, records follow 4-byte sizes).
  std::vector<unsigned char> block(1 << 20);
  size_t have = 0, at = 0;
  bool eof = false;
  auto fill = [&](size_t need) {
    if (have - at >= need || eof) return have - at >= need;
    std::memmove(block.data(), block.data() + at, have - at);
    have -= at;
    at = 0;
    if (block.size() < need) block.resize(need);
    while (have < need && !eof) {
      const size_t n = std::fread(block.data() + have, 1, block.size() - have, file);
      if (n == 0) eof = true;
      have += n;
    }
    return have - at >= need;
  };
  std::vector<uint64_t> aligned((kMaxRecord + 7) / 8);
  uint64_t offset = sizeof(kMagic) + sizeof(clock->mono_to_wall_ns);  // of the next record
  auto bad = [&] {
    ++stats->bad_records;
    stats->bad_offset = offset;
  };
  for (;;) {
    if (!fill(sizeof(uint32_t))) {
      if (have != at) bad();  // a torn size
      break;
    }
    uint32_t size = 0;
    std::memcpy(&size, block.data() + at, sizeof(size));
    if (size > kMaxRecord) {
      bad();  // corrupt length: nothing after it can be trusted
      break;
    }
    if (!fill(sizeof(size) + size)) {
      bad();
      break;
    }
    std::memcpy(aligned.data(), block.data() + at + sizeof(size), size);
    at += sizeof(size) + size;
    offset += sizeof(size) + size;
    ++stats->records;
    on_record(aligned.data(), size);
  }
  std::fclose(file);
  return {};
}

}  // namespace mat::capture
