// Where audit lines go. stdout in production, a string in tests.
#pragma once

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

// Writes to a stdio FILE (stdout), one fwrite per line, flushed per line so a log driver sees
// each audit line as soon as it is complete.
class FileLineSink : public LineSink {
 public:
  explicit FileLineSink(std::FILE* file) : file_(file) {}
  void Write(std::string_view line) override;
  void Flush() override;

 private:
  std::FILE* file_;
};

class VectorLineSink : public LineSink {
 public:
  void Write(std::string_view line) override { lines.emplace_back(line); }
  std::vector<std::string> lines;
};

}  // namespace mat::output
