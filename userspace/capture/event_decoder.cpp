#include "capture/event_decoder.h"

#include <time.h>

namespace mat::capture {

std::string_view DecodeStatusName(DecodeStatus status) {
  switch (status) {
    case DecodeStatus::kOk:
      return "ok";
    case DecodeStatus::kTooShort:
      return "record too short";
    case DecodeStatus::kUnknownType:
      return "unknown record type";
    case DecodeStatus::kBadLength:
      return "payload length out of range";
  }
  return "?";
}

DecodeStatus DecodeEvent(const void* bytes, size_t size, Event* out) {
  *out = Event{};
  if (size < sizeof(tap_hdr)) return DecodeStatus::kTooShort;
  const auto* hdr = static_cast<const tap_hdr*>(bytes);
  out->type = hdr->type;
  out->hdr = hdr;
  switch (hdr->type) {
    case TAP_EV_DATA:
    case TAP_EV_CIPHER: {
      if (size < TAP_DATA_HDR_BYTES) return DecodeStatus::kTooShort;
      const auto* data = static_cast<const tap_data*>(bytes);
      if (data->len > TAP_CHUNK_BYTES || TAP_DATA_HDR_BYTES + data->len > size ||
          data->dir > TAP_DIR_WRITE || uint64_t{data->offset} + data->len > data->call_len)
        return DecodeStatus::kBadLength;
      out->data = data;
      out->payload = std::string_view(reinterpret_cast<const char*>(data->data), data->len);
      return DecodeStatus::kOk;
    }
    case TAP_EV_SOCK:
      if (size < sizeof(tap_sock)) return DecodeStatus::kTooShort;
      out->sock = static_cast<const tap_sock*>(bytes);
      return DecodeStatus::kOk;
    case TAP_EV_FD_CLOSE:
      return DecodeStatus::kOk;
    case TAP_EV_LOCAL_SOCK: {
      if (size < sizeof(tap_local_sock)) return DecodeStatus::kTooShort;
      const auto* local = static_cast<const tap_local_sock*>(bytes);
      if (local->path_len > TAP_UNIX_PATH_MAX) return DecodeStatus::kBadLength;
      out->local = local;
      return DecodeStatus::kOk;
    }
    case TAP_EV_CONN_END:
      if (size < sizeof(tap_conn_end)) return DecodeStatus::kTooShort;
      out->end = static_cast<const tap_conn_end*>(bytes);
      return DecodeStatus::kOk;
    case TAP_EV_FULL_HANDSHAKE:
    case TAP_EV_SOCK_CLOSE:
      return DecodeStatus::kOk;
    case TAP_EV_SECRET: {
      if (size < sizeof(tap_secret)) return DecodeStatus::kTooShort;
      const auto* secret = static_cast<const tap_secret*>(bytes);
      if (secret->len > TAP_SECRET_MAX) return DecodeStatus::kBadLength;
      out->secret = secret;
      return DecodeStatus::kOk;
    }
    case TAP_EV_PEER_CERT: {
      if (size < TAP_CERT_HDR_BYTES) return DecodeStatus::kTooShort;
      const auto* cert = static_cast<const tap_cert*>(bytes);
      if (cert->captured > TAP_CERT_MAX || cert->captured > cert->len ||
          TAP_CERT_HDR_BYTES + cert->captured > size)
        return DecodeStatus::kBadLength;
      out->cert = cert;
      out->payload = std::string_view(reinterpret_cast<const char*>(cert->data), cert->captured);
      return DecodeStatus::kOk;
    }
    default:
      return DecodeStatus::kUnknownType;
  }
}

ClockMap ClockMap::Now() {
  // Bracket the realtime read between two monotonic reads to halve the error.
  timespec m1{}, r{}, m2{};
  clock_gettime(CLOCK_MONOTONIC, &m1);
  clock_gettime(CLOCK_REALTIME, &r);
  clock_gettime(CLOCK_MONOTONIC, &m2);
  auto ns = [](const timespec& t) { return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec; };
  ClockMap map;
  map.mono_to_wall_ns = ns(r) - (ns(m1) + ns(m2)) / 2;
  return map;
}

}  // namespace mat::capture
