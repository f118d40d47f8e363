// HPACK (RFC 7541) header block decoding for one direction of an HTTP/2 connection: the
// static and dynamic tables, integers, string literals and their Huffman code.
//
// Replaces nghttp2's inflater on the hot path: nghttp2 allocated a reference-counted buffer for
// every field it emitted and decoded strings through a general-purpose state machine, which was
// a third of the HTTP/2 pipeline's cost. This decoder works on a complete header block (HEADERS
// plus its CONTINUATIONs, gathered by the caller) and hands out views, valid during the call.
//
// Strictness is nghttp2's: an index out of range, a malformed integer or string, an EOS symbol
// in a Huffman string, padding longer than 7 bits or not all ones, a table size update that is
// not at the start of the block or above the limit: the block fails (Decode returns false) and
// the table may then be out of step with the encoder's, so the caller starts a fresh decoder
// (an empty table, whose misses fail blocks rather than yield wrong fields).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>

namespace mat::http {

class HpackDecoder {
 public:
  using FieldSink = std::function<void(std::string_view name, std::string_view value)>;

  // `limit`: the largest dynamic table size a table size update may set (at least the
  // protocol's default of 4096).
  explicit HpackDecoder(size_t limit = 4096) { Reset(limit); }

  // An empty table of `limit` bytes (at least 4096), accepting updates up to `limit`.
  void Reset(size_t limit);
  // Decodes one whole header block; `sink` gets every field in order. False on an error.
  bool Decode(const uint8_t* p, size_t n, const FieldSink& sink);

  // Why the last Decode failed: the block broke the protocol (a peer decoder rejects it too),
  // or it only went over this decoder's own limit.
  enum class Failure : uint8_t { kNone, kMalformed, kOverLimit };
  Failure failure() const { return failure_; }
  // The largest table size the decoding side allowed (its SETTINGS_HEADER_TABLE_SIZE; no limit
  // by default): a size update above it is malformed, one above `limit` but within it is over
  // this decoder's limit. Kept across Reset.
  void SetProtocolLimit(size_t n) { protocol_limit_ = n; }

  // Decodes a Huffman-coded string literal (appended to `out`). False when it is malformed.
  static bool HuffmanDecode(const uint8_t* p, size_t n, std::string& out);

 private:
  struct Entry {
    std::string name, value;
  };
  bool Field(size_t index, std::string_view* name, std::string_view* value) const;
  void Insert(std::string_view name, std::string_view value);
  void Evict(size_t max);

  std::deque<Entry> table_;  // newest first: dynamic index 62 is table_[0]
  size_t size_ = 0;
  size_t max_size_ = 4096;  // the current maximum: the limit, or what a size update set
  size_t limit_ = 4096;
  size_t protocol_limit_ = SIZE_MAX;
  Failure failure_ = Failure::kNone;
  std::string name_buf_, value_buf_;  // decoded literals of the field in progress
};

}  // namespace mat::http
