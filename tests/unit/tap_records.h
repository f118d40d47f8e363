// Builds tap records the way bpf/tap.bpf.c writes them, for tests of the userspace stages.
#pragma once

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "capture/event_decoder.h"

namespace mat::testing {

using Record = std::vector<unsigned char>;

template <typename T>
Record AsRecord(const T& value, size_t size = sizeof(T)) {
  const auto* p = reinterpret_cast<const unsigned char*>(&value);
  return Record(p, p + size);
}

inline Record DataRecord(uint32_t tgid, uint64_t ssl, int32_t fd, tap_direction dir, uint64_t pos,
                         std::string_view bytes, uint64_t ts_ns = 1000, uint32_t call_len = 0,
                         uint32_t offset = 0) {
  static tap_data d;  // large: keep it off the stack
  std::memset(&d, 0, sizeof(d));
  d.hdr = {TAP_EV_DATA, tgid, tgid, fd, ts_ns, ssl};
  d.pos = pos;
  d.len = static_cast<uint32_t>(bytes.size());
  d.call_len = call_len ? call_len : d.len;
  d.offset = offset;
  d.dir = static_cast<uint8_t>(dir);
  std::memcpy(d.data, bytes.data(), bytes.size());
  return AsRecord(d, TAP_DATA_HDR_BYTES + bytes.size());
}

inline Record SockRecord(uint32_t tgid, int32_t fd, tap_sock_role role, const char* ip,
                         uint16_t port, uint64_t ts_ns = 500, uint32_t tid = 1) {
  tap_sock s{};
  s.hdr = {TAP_EV_SOCK, tgid, tid, fd, ts_ns, 0};
  s.role = role;
  s.family = AF_INET;
  s.port = port;
  inet_pton(AF_INET, ip, s.addr);
  return AsRecord(s);
}

inline Record ConnEndRecord(uint32_t tgid, uint64_t ssl, int32_t fd, uint64_t read_pos,
                            uint64_t write_pos, uint64_t ts_ns = 9000) {
  tap_conn_end e{};
  e.hdr = {TAP_EV_CONN_END, tgid, tgid, fd, ts_ns, ssl};
  e.read_pos = read_pos;
  e.write_pos = write_pos;
  return AsRecord(e);
}

inline Record FdCloseRecord(uint32_t tgid, int32_t fd, uint64_t ts_ns = 9500) {
  tap_hdr h{TAP_EV_FD_CLOSE, tgid, tgid, fd, ts_ns, 0};
  return AsRecord(h);
}

}  // namespace mat::testing
