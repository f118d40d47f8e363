// Reads a whole input file named by the operator (configuration, user map, CA bundle) with a
// size limit, refusing anything but a regular file: a FIFO would block the auditor, /dev/zero
// would fill its memory. Header-only: the libraries that need it share no other code.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "util/result.h"

namespace mat {

// Reads `path`: its text, or why not ("not a regular file", "larger than N bytes", the system's
// error), without the path: the caller names it.
inline Result<std::string> ReadSmallFile(const std::string& path, size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Error{std::string("cannot read it: ") + std::strerror(errno)};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error{"not a regular file"};
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    return Error{"larger than " + std::to_string(max_bytes) + " bytes"};
  }
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      return Error{"cannot read it: " + why};
    }
    if (n == 0) break;
    if (text.size() + static_cast<size_t>(n) > max_bytes) {  // grew while being read
      ::close(fd);
      return Error{"larger than " + std::to_string(max_bytes) + " bytes"};
    }
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

}  // namespace mat
