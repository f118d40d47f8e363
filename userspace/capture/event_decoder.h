// Typed, validated views of the raw tap records (include/mke_audit_tap/tap_events.h), as they
// come from the ring buffer or from a --record file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" {
#include "mke_audit_tap/tap_events.h"
}

namespace mat::capture {

static_assert(sizeof(tap_hdr) == 32, "tap_hdr layout is shared with BPF");
static_assert(TAP_DATA_HDR_BYTES == 56, "tap_data header layout is shared with BPF");
static_assert(sizeof(tap_sock) == 64, "tap_sock layout is shared with BPF");
static_assert(sizeof(tap_conn_end) == 48, "tap_conn_end layout is shared with BPF");
static_assert(TAP_CERT_HDR_BYTES == 40, "tap_cert header layout is shared with BPF");
static_assert(sizeof(tap_secret) == 144, "tap_secret layout is shared with BPF");
static_assert(sizeof(tap_local_sock) == 176, "tap_local_sock layout is shared with BPF");
static_assert(sizeof(tap_ssl_layout) == 32, "tap_ssl_layout layout is shared with BPF");

// One decoded record. Pointers refer into the caller's buffer and live as long as it does.
struct Event {
  uint32_t type = 0;  // enum tap_event_type
  const tap_hdr* hdr = nullptr;
  const tap_data* data = nullptr;         // TAP_EV_DATA, TAP_EV_CIPHER
  std::string_view payload;               // TAP_EV_DATA, TAP_EV_CIPHER: the delivered bytes
  const tap_sock* sock = nullptr;         // TAP_EV_SOCK
  const tap_conn_end* end = nullptr;      // TAP_EV_CONN_END
  const tap_cert* cert = nullptr;         // TAP_EV_PEER_CERT; its DER bytes are in payload
  const tap_secret* secret = nullptr;     // TAP_EV_SECRET
  const tap_local_sock* local = nullptr;  // TAP_EV_LOCAL_SOCK
};

enum class DecodeStatus { kOk, kTooShort, kUnknownType, kBadLength };
std::string_view DecodeStatusName(DecodeStatus status);

// Checks sizes and lengths before anything is read, so a corrupt recording cannot make the
// pipeline read outside the record.
DecodeStatus DecodeEvent(const void* bytes, size_t size, Event* out);

// Converts the kernel's CLOCK_MONOTONIC stamps to wall-clock ns.
struct ClockMap {
  int64_t mono_to_wall_ns = 0;
  uint64_t ToWall(uint64_t mono_ns) const {
    return mono_ns + static_cast<uint64_t>(mono_to_wall_ns);
  }
  static ClockMap Now();  // offset measured from the running system
};

}  // namespace mat::capture
