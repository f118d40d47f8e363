// Builds a large recording for the replay benchmark from small ones taken from real servers:
// each input's records are written `copies` times, copy k with its connection ids and fds moved
// out of every other copy's way and its timestamps shifted past the previous copy, so every
// copy is a new set of connections that the pipeline tracks and ends on its own.
//
//   rec_multiply OUT COPIES IN [IN ...]
//
// Inputs are interleaved copy by copy (in1 copy 0, in2 copy 0, in1 copy 1, ...), so a mixed
// corpus keeps its mix throughout.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "capture/recorder.h"
#include "mke_audit_tap/tap_events.h"

namespace {

struct Input {
  std::vector<std::vector<unsigned char>> records;
  uint64_t first_ts = ~0ull;
  uint64_t last_ts = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s OUT COPIES IN [IN ...]\n", argv[0]);
    return 2;
  }
  const long copies = std::strtol(argv[2], nullptr, 10);
  if (copies <= 0 || copies > 65535) {
    std::fprintf(stderr, "COPIES must be 1..65535\n");
    return 2;
  }
  mat::capture::ClockMap clock;
  std::vector<Input> inputs;
  for (int i = 3; i < argc; ++i) {
    Input in;
    mat::capture::ReplayStats stats;
    mat::Status read = mat::capture::ReadRecording(
        argv[i], &clock,
        [&](const void* data, uint32_t size) {
          auto p = static_cast<const unsigned char*>(data);
          in.records.emplace_back(p, p + size);
          if (size >= sizeof(tap_hdr)) {
            uint64_t ts = reinterpret_cast<const tap_hdr*>(data)->ts_ns;
            if (ts < in.first_ts) in.first_ts = ts;
            if (ts > in.last_ts) in.last_ts = ts;
          }
        },
        &stats);
    if (!read) {
      std::fprintf(stderr, "%s\n", read.error().c_str());
      return 1;
    }
    if (!in.records.empty()) inputs.push_back(std::move(in));
  }
  mat::capture::Recorder out;
  if (mat::Status opened = out.Open(argv[1], clock); !opened) {
    std::fprintf(stderr, "%s\n", opened.error().c_str());
    return 1;
  }
  uint64_t base = 0;
  for (const Input& in : inputs)
    if (in.first_ts < ~0ull && (base == 0 || in.first_ts < base)) base = in.first_ts;
  uint64_t shift = 0;
  for (long k = 0; k < copies; ++k) {
    for (size_t i = 0; i < inputs.size(); ++i) {
      const Input& in = inputs[i];
      const uint64_t span = in.last_ts - in.first_ts + 1000;
      // Copy k of input i: its own connection ids (SSL* pointers stay below 2^47) and fds.
      const uint64_t tag = (uint64_t(k) * inputs.size() + i) << 47;
      for (const auto& r : in.records) {
        std::vector<unsigned char> copy = r;
        if (copy.size() >= sizeof(tap_hdr)) {
          auto* hdr = reinterpret_cast<tap_hdr*>(copy.data());
          if (hdr->conn != 0) hdr->conn ^= tag;
          if (hdr->fd >= 0)
            hdr->fd =
                int32_t((uint32_t(hdr->fd) + uint32_t(k * inputs.size() + i) * 4096u) & 0x7fffffff);
          hdr->ts_ns = base + shift + (hdr->ts_ns - in.first_ts);
        }
        out.Append(copy.data(), uint32_t(copy.size()));
      }
      shift += span;
    }
  }
  out.Close();
  return 0;
}
