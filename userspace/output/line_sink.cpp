#include "output/line_sink.h"

#include <unistd.h>

#include <cerrno>
#include <string>

namespace mat::output {

FileLineSink::FileLineSink(std::FILE* file) : fd_(::fileno(file)) {
  // Whatever stdio may hold for this stream goes first.
  std::fflush(file);
  buffer_.reserve(kBatchBytes + 16 * 1024);
}

FileLineSink::~FileLineSink() { Flush(); }

void FileLineSink::Write(std::string_view line) {
  buffer_.append(line);
  buffer_.push_back('\n');
  ++pending_lines_;
  if (buffer_.size() >= kBatchBytes) Flush();
}

void FileLineSink::Flush() {
  size_t done = 0;
  while (done < buffer_.size()) {
    const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    last_error_ = n < 0 ? errno : EIO;
    break;
  }
  if (done == buffer_.size()) {
    lines_written_ += pending_lines_;
  } else {
    // Lines wholly written count as written; the rest (a line cut short included) are lost.
    uint64_t whole = 0;
    for (size_t i = 0; i < done; ++i) whole += buffer_[i] == '\n';
    lines_written_ += whole;
    lines_lost_ += pending_lines_ - whole;
  }
  buffer_.clear();
  pending_lines_ = 0;
}

}  // namespace mat::output
