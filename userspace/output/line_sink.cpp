#include "output/line_sink.h"

#include <string>

namespace mat::output {

void FileLineSink::Write(std::string_view line) {
  // One buffer, one fwrite: stdio locks the FILE for the call, so concurrent writers cannot
  // interleave inside a line, and the log driver sees the line and its newline together.
  std::string buffer;
  buffer.reserve(line.size() + 1);
  buffer.append(line);
  buffer.push_back('\n');
  const size_t written = std::fwrite(buffer.data(), 1, buffer.size(), file_);
  static_cast<void>(written);  // nowhere to report a failing stdout; the next line retries
  std::fflush(file_);
}

void FileLineSink::Flush() { std::fflush(file_); }

}  // namespace mat::output
