// Where audit lines go. stdout in production, a string in tests.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace mat::output {

class LineSink {
 public:
  virtual ~LineSink() = default;
  // Writes one line (a newline is appended). Must not interleave with other writers.
  virtual void Write(std::string_view line) = 0;
  virtual void Flush() {}
};

// Writes to a file descriptor (stdout) in batches: lines are gathered in a buffer and written
// with one write(2) per Flush() or per kBatchBytes, so the cost of the system call is shared
// by every line of a batch. The live auditor flushes after each drain of the ring buffer (at
// least every --poll-ms) and at exit, so a line waits at most that long; a line is always
// written whole, with its newline, in one batch.
// A write that fails (EPIPE, EIO, a full disk) loses the lines it carried: they are counted
// in lines_lost(), never in lines_written().
class FileLineSink : public LineSink {
 public:
  static constexpr size_t kBatchBytes = 256 * 1024;

  explicit FileLineSink(std::FILE* file);
  ~FileLineSink() override;
  void Write(std::string_view line) override;
  void Flush() override;

  uint64_t lines_written() const { return lines_written_; }
  uint64_t lines_lost() const { return lines_lost_; }
  // The error of the last failed write (errno), 0 if none.
  int last_error() const { return last_error_; }

 private:
  int fd_;
  std::string buffer_;
  uint64_t pending_lines_ = 0;
  uint64_t lines_written_ = 0;
  uint64_t lines_lost_ = 0;
  int last_error_ = 0;
};

class VectorLineSink : public LineSink {
 public:
  void Write(std::string_view line) override { lines.emplace_back(line); }
  std::vector<std::string> lines;
};

}  // namespace mat::output
