// The defaults that a component's options and the operator's Options (options.h) share: each
// is written here once, and both read it (issue 16: an option's default in one place). The
// values an operator can change are documented in --help, which prints them from Options{}.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mat::defaults {

// HTTP (http/http1.h, http/http2.h, http/stitcher.h; --max-body-bytes and the rest).
inline constexpr size_t kMaxBodyBytes = 64 * 1024;       // body bytes kept per message
inline constexpr size_t kMaxHeaderBytes = 1u << 20;      // Go's net/http default header limit
inline constexpr size_t kMaxPendingRequests = 256;       // per connection
inline constexpr size_t kMaxConnectionBytes = 8u << 20;  // per connection, heads and bodies
inline constexpr size_t kMaxTotalBytes = 64u << 20;      // all connections' waiting bodies

// Connections (and TLS streams, client certificates) followed at once: TAP_MAX_CONNS.
inline constexpr size_t kMaxConnections = 65536;

// Output: Docker's log drivers split a line that fills their 16 KiB buffer with its newline.
inline constexpr size_t kMaxLineBytes = 16383;
inline constexpr size_t kOutputBufferBytes = 64u << 20;  // lines held for a slow reader

// Session tokens learned at logins: MKE's session lifetime, and how many.
inline constexpr uint32_t kTokenTtlSeconds = 3600;
inline constexpr size_t kTokenCacheSize = 10000;

// Payload bytes delivered per SSL call: TAP_DEFAULT_CAP of the BPF side (tap_events.h), which
// tap/bpf_tap.h checks equal.
inline constexpr uint32_t kCapBytes = 64 * 1024;

// The BPF ring buffer (a power of two).
inline constexpr uint32_t kRingbufBytes = 8u << 20;

}  // namespace mat::defaults
