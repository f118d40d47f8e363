// --record / --replay: the raw tap records, stored unchanged, so every userspace stage can run
// from a file without a kernel. The file holds plaintext payloads: it is created mode 0600.
//
// Format: "MATREC01" | int64 mono_to_wall_ns | { uint32 size | size bytes }*
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

#include "capture/event_decoder.h"
#include "util/result.h"

namespace mat::capture {

class Recorder {
 public:
  Recorder() = default;
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  // Creates the file with mode 0600, or replaces an existing regular file that we own and that
  // has no other hard link. Anything else at the path (a symbolic link, even a dangling one, a
  // FIFO, a device, a directory, another user's file) is refused: as root, following it would
  // overwrite or disclose a file the operator did not name.
  Status Open(const std::string& path, const ClockMap& clock);
  void Append(const void* bytes, uint32_t size);
  void Close();

 private:
  std::FILE* file_ = nullptr;
};

struct ReplayStats {
  uint64_t records = 0;
  uint64_t bad_records = 0;
  uint64_t bad_offset = 0;  // with bad_records: the file offset of the torn or corrupt record
};

// Reads a recording and calls `on_record` for each record in order. An error for an
// unreadable file or a bad header; a truncated tail is counted, not fatal.
Status ReadRecording(const std::string& path, ClockMap* clock,
                     const std::function<void(const void*, uint32_t)>& on_record,
                     ReplayStats* stats);

}  // namespace mat::capture
