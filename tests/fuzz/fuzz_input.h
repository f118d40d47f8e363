// The input format of http2_fuzz and http1_fuzz, shared by the fuzzers and the seed generators.
//
//   byte 0: configuration
//     bit 0  at_start: the connection is followed from its first byte
//     bit 1  prepend the client preface to the request stream (so the fuzzer need not find it)
//     bit 2  small limits (bodies 16 bytes, header lists 512 bytes, 4 streams) and every
//            report kind enabled (report_started for every request, report_received)
//   then records, each starting with a control byte c:
//     c & 0x80          direction: set = response (server->client), clear = request
//     (c >> 5) & 3 == 0 data: the next (c & 0x1f) + 1 bytes
//     (c >> 5) & 3 == 1 data: the next ((c & 0x1f) << 8 | next byte) + 1 bytes
//     (c >> 5) & 3 == 2 gap: the next byte is `missing` (0: unknown amount)
//     (c >> 5) & 3 == 3 (c & 0x1f) == 0: Expire(now); otherwise: all remaining bytes as data
//   Each record advances the clock by one. OnClose ends every input.
//   http1_fuzz reads some of these its own way (amplification, gap sizes, close): see its top.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mat::fuzz {

inline constexpr uint8_t kConfigAtStart = 0x1;
inline constexpr uint8_t kConfigPreface = 0x2;
inline constexpr uint8_t kConfigSmall = 0x4;
inline constexpr uint8_t kControlResponse = 0x80;

// Encodes `bytes` of one direction as data records.
inline std::string DataRecords(bool response, std::string_view bytes) {
  std::string out;
  const uint8_t dir = response ? kControlResponse : 0;
  while (!bytes.empty()) {
    const size_t n = bytes.size() < 8192 ? bytes.size() : 8192;
    const size_t v = n - 1;
    out.push_back(static_cast<char>(dir | 0x20 | (v >> 8)));
    out.push_back(static_cast<char>(v & 0xff));
    out.append(bytes.substr(0, n));
    bytes.remove_prefix(n);
  }
  return out;
}

inline std::string GapRecord(bool response, uint8_t missing) {
  std::string out;
  out.push_back(static_cast<char>((response ? kControlResponse : 0) | 0x40));
  out.push_back(static_cast<char>(missing));
  return out;
}

inline std::string ExpireRecord() { return std::string(1, static_cast<char>(0x60)); }

}  // namespace mat::fuzz
