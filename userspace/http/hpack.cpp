#include "http/hpack.h"

#include <algorithm>
#include <array>

namespace mat::http {

namespace {

// RFC 7541 Appendix A.
constexpr std::string_view kStatic[][2] = {
    {":authority", ""},
    {":method", "GET"},
    {":method", "POST"},
    {":path", "/"},
    {":path", "/index.html"},
    {":scheme", "http"},
    {":scheme", "https"},
    {":status", "200"},
    {":status", "204"},
    {":status", "206"},
    {":status", "304"},
    {":status", "400"},
    {":status", "404"},
    {":status", "500"},
    {"accept-charset", ""},
    {"accept-encoding", "gzip, deflate"},
    {"accept-language", ""},
    {"accept-ranges", ""},
    {"accept", ""},
    {"access-control-allow-origin", ""},
    {"age", ""},
    {"allow", ""},
    {"authorization", ""},
    {"cache-control", ""},
    {"content-disposition", ""},
    {"content-encoding", ""},
    {"content-language", ""},
    {"content-length", ""},
    {"content-location", ""},
    {"content-range", ""},
    {"content-type", ""},
    {"cookie", ""},
    {"date", ""},
    {"etag", ""},
    {"expect", ""},
    {"expires", ""},
    {"from", ""},
    {"host", ""},
    {"if-match", ""},
    {"if-modified-since", ""},
    {"if-none-match", ""},
    {"if-range", ""},
    {"if-unmodified-since", ""},
    {"last-modified", ""},
    {"link", ""},
    {"location", ""},
    {"max-forwards", ""},
    {"proxy-authenticate", ""},
    {"proxy-authorization", ""},
    {"range", ""},
    {"referer", ""},
    {"refresh", ""},
    {"retry-after", ""},
    {"server", ""},
    {"set-cookie", ""},
    {"strict-transport-security", ""},
    {"transfer-encoding", ""},
    {"user-agent", ""},
    {"vary", ""},
    {"via", ""},
    {"www-authenticate", ""},
};
constexpr size_t kStaticCount = std::size(kStatic);  // 61
static_assert(kStaticCount == 61);

constexpr size_t kEntryOverhead = 32;  // RFC 7541 4.1
constexpr size_t kEos = 256;

// The bit length of each symbol's code (RFC 7541 Appendix B; 256 is EOS). The code is
// canonical: codes are handed out in order of length, then of symbol, so the lengths alone
// define it (checked below: the codes fill the code space exactly).
constexpr uint8_t kCodeLength[257] = {
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6,  10, 10, 12, 13, 6,  8,  11, 10, 10, 8,  11, 8,  6,  6,  6,
    5,  5,  5,  6,  6,  6,  6,  6,  6,  6,  7,  8,  15, 6,  12, 10, 13, 6,  7,  7,  7,  7,  7,  7,
    7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  7,  8,  7,  8,  13, 19, 13, 14, 6,
    15, 5,  6,  5,  6,  5,  6,  6,  6,  5,  7,  7,  6,  6,  6,  5,  6,  7,  6,  5,  5,  6,  7,  7,
    7,  7,  7,  15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21,
    23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24,
    21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30};

constexpr int kMinLength = 5;
constexpr int kMaxLength = 30;

// Canonical decoding tables: for each length L, the codes of that length are the consecutive
// values first[L] .. first[L] + count[L] - 1, for the symbols sorted[offset[L] ...].
struct Huffman {
  // (first[L] + count[L]) << (32 - L): the left-aligned bound of length L's codes (2^32 for
  // the last length, so 64 bits).
  uint64_t limit[kMaxLength + 1] = {};
  uint32_t first[kMaxLength + 1] = {};
  uint16_t offset[kMaxLength + 1] = {};
  uint16_t sorted[257] = {};
  bool complete = false;  // the lengths fill the code space exactly (Kraft sum 1)

  constexpr Huffman() {
    uint16_t count[kMaxLength + 1] = {};
    for (uint8_t length : kCodeLength) ++count[length];
    uint32_t code = 0;
    uint16_t index = 0;
    uint64_t kraft = 0;  // in units of 2^-30
    for (int length = 1; length <= kMaxLength; ++length) {
      code <<= 1;
      first[length] = code;
      offset[length] = index;
      for (uint16_t symbol = 0; symbol < 257; ++symbol) {
        if (kCodeLength[symbol] == length) sorted[index++] = symbol;
      }
      code += count[length];
      limit[length] = uint64_t{code} << (32 - length);
      kraft += uint64_t{count[length]} << (kMaxLength - length);
    }
    complete = kraft == (uint64_t{1} << kMaxLength);
  }
};
constexpr Huffman kHuffman;

// The symbols whose codes are at most 8 bits long (the letters, digits and common punctuation
// of header values), found from the next 8 bits alone: kFast[b] is the symbol whose code is a
// prefix of b, with its length, or length 0 when the code is longer than 8 bits.
struct FastEntry {
  uint8_t symbol = 0;
  uint8_t length = 0;
};
struct FastTable {
  FastEntry entry[256];
  constexpr FastTable() : entry() {
    for (int length = kMinLength; length <= 8; ++length) {
      const uint32_t count =
          static_cast<uint32_t>((kHuffman.limit[length] >> (32 - length)) - kHuffman.first[length]);
      for (uint32_t k = 0; k < count; ++k) {
        const uint32_t code = kHuffman.first[length] + k;
        const uint16_t symbol = kHuffman.sorted[kHuffman.offset[length] + k];
        for (uint32_t fill = 0; fill < (1u << (8 - length)); ++fill) {
          FastEntry& e = entry[(code << (8 - length)) | fill];
          e.symbol = static_cast<uint8_t>(symbol);
          e.length = static_cast<uint8_t>(length);
        }
      }
    }
  }
};
constexpr FastTable kFast;
static_assert(kHuffman.complete, "the Huffman code lengths must fill the code space");
// Spot checks against RFC 7541 Appendix B: '0' is 00000, 'a' 00011, ' ' 010100, EOS 30 ones.
static_assert(kHuffman.first[5] == 0 && kHuffman.sorted[kHuffman.offset[5]] == '0');
static_assert(kHuffman.sorted[kHuffman.offset[5] + 3] == 'a');
static_assert(kHuffman.first[6] == 0x14 && kHuffman.sorted[kHuffman.offset[6]] == ' ');
static_assert(kHuffman.first[30] + 3 == 0x3fffffff && kHuffman.sorted[256] == kEos);

// An integer with an `prefix`-bit prefix at p[*i] (RFC 7541 5.1). False when malformed or
// larger than 2^28 (no table, string or index of ours is that large).
bool ReadInt(const uint8_t* p, size_t n, size_t* i, int prefix, size_t* value) {
  if (*i >= n) return false;
  const unsigned max = (1u << prefix) - 1;
  size_t v = p[(*i)++] & max;
  if (v < max) {
    *value = v;
    return true;
  }
  for (int shift = 0; shift <= 21; shift += 7) {
    if (*i >= n) return false;
    const uint8_t b = p[(*i)++];
    v += size_t{b & 0x7fu} << shift;
    if ((b & 0x80) == 0) {
      *value = v;
      return true;
    }
  }
  return false;
}

// A string literal at p[*i] into `out` (or a view of the input when not Huffman-coded).
bool ReadString(const uint8_t* p, size_t n, size_t* i, std::string& out, std::string_view* text) {
  if (*i >= n) return false;
  const bool huffman = (p[*i] & 0x80) != 0;
  size_t length = 0;
  if (!ReadInt(p, n, i, 7, &length) || length > n - *i) return false;
  const uint8_t* s = p + *i;
  *i += length;
  if (!huffman) {
    *text = std::string_view(reinterpret_cast<const char*>(s), length);
    return true;
  }
  out.clear();
  if (!HpackDecoder::HuffmanDecode(s, length, out)) return false;
  *text = out;
  return true;
}

}  // namespace

bool HpackDecoder::HuffmanDecode(const uint8_t* p, size_t n, std::string& out) {
  // At most 8/5 symbols a byte: written into room made once, then cut to size.
  const size_t start = out.size();
  out.resize(start + n * 8 / 5 + 1);
  char* w = out.data() + start;
  uint64_t bits = 0;  // the next `have` bits of the input, right-aligned
  int have = 0;
  size_t i = 0;
  for (;;) {
    while (have <= 56 && i < n) {
      bits = (bits << 8) | p[i++];
      have += 8;
    }
    if (have == 0 ||
        (i == n && have < 8 && (bits & ((uint64_t{1} << have) - 1)) == (uint64_t{1} << have) - 1)) {
      // The end, or fewer than 8 bits left that are the start of EOS (all ones): padding.
      out.resize(static_cast<size_t>(w - out.data()));
      return true;
    }
    if (have >= 8) {
      const FastEntry& e = kFast.entry[(bits >> (have - 8)) & 0xff];
      if (e.length != 0) {
        *w++ = static_cast<char>(e.symbol);
        have -= e.length;
        bits &= (uint64_t{1} << have) - 1;
        continue;
      }
    }
    // The next 32 bits, left-aligned, padded with ones past the end of the input.
    uint32_t peek;
    if (have >= 32) {
      peek = static_cast<uint32_t>(bits >> (have - 32));
    } else {
      peek = static_cast<uint32_t>((bits << (32 - have)) | ((uint64_t{1} << (32 - have)) - 1));
    }
    int length = kMinLength;
    while (length <= kMaxLength && peek >= kHuffman.limit[length]) ++length;
    if (length > kMaxLength || length > have) return false;  // into the padding, or no code
    const uint16_t symbol =
        kHuffman
            .sorted[kHuffman.offset[length] + ((peek >> (32 - length)) - kHuffman.first[length])];
    if (symbol == kEos) return false;
    *w++ = static_cast<char>(symbol);
    have -= length;
    bits &= (have == 64 ? ~uint64_t{0} : (uint64_t{1} << have) - 1);
  }
}

void HpackDecoder::Reset(size_t limit) {
  table_.clear();
  size_ = 0;
  // The table may be as large as the limit from the start: a peer's SETTINGS may have allowed
  // the encoder that much without a size update in the blocks. Keeping older entries longer
  // than the encoder does never moves the indices of the entries it still has (the newest).
  limit_ = std::max<size_t>(limit, 4096);
  max_size_ = limit_;
}

bool HpackDecoder::Field(size_t index, std::string_view* name, std::string_view* value) const {
  if (index == 0) return false;
  if (index <= kStaticCount) {
    *name = kStatic[index - 1][0];
    *value = kStatic[index - 1][1];
    return true;
  }
  const size_t k = index - kStaticCount - 1;
  if (k >= table_.size()) return false;
  *name = table_[k].name;
  *value = table_[k].value;
  return true;
}

void HpackDecoder::Evict(size_t max) {
  while (size_ > max && !table_.empty()) {
    size_ -= table_.back().name.size() + table_.back().value.size() + kEntryOverhead;
    table_.pop_back();
  }
}

void HpackDecoder::Insert(std::string_view name, std::string_view value) {
  const size_t size = name.size() + value.size() + kEntryOverhead;
  if (size > max_size_) {  // RFC 7541 4.4: an entry larger than the table empties it
    Evict(0);
    return;
  }
  // The new entry may refer to an entry about to be evicted: copy before evicting.
  Entry entry{std::string(name), std::string(value)};
  Evict(max_size_ - size);
  table_.push_front(std::move(entry));
  size_ += size;
}

bool HpackDecoder::Decode(const uint8_t* p, size_t n, const FieldSink& sink) {
  failure_ = Failure::kMalformed;  // unless it succeeds or goes over our own limit
  size_t i = 0;
  bool fields_seen = false;
  while (i < n) {
    const uint8_t b = p[i];
    std::string_view name, value;
    if ((b & 0x80) != 0) {  // indexed field
      size_t index = 0;
      if (!ReadInt(p, n, &i, 7, &index) || !Field(index, &name, &value)) return false;
      sink(name, value);
      fields_seen = true;
      continue;
    }
    if ((b & 0xe0) == 0x20) {  // dynamic table size update: only before the first field
      size_t size = 0;
      if (fields_seen || !ReadInt(p, n, &i, 5, &size) || size > protocol_limit_) return false;
      if (size > limit_) {
        failure_ = Failure::kOverLimit;
        return false;
      }
      max_size_ = size;
      Evict(max_size_);
      continue;
    }
    const bool indexing = (b & 0xc0) == 0x40;
    size_t index = 0;
    if (!ReadInt(p, n, &i, indexing ? 6 : 4, &index)) return false;
    if (index == 0) {
      if (!ReadString(p, n, &i, name_buf_, &name)) return false;
    } else {
      std::string_view unused;
      if (!Field(index, &name, &unused)) return false;
      if (indexing && index > kStaticCount) {
        // The insertion below may evict the entry the name comes from: keep a copy.
        name_buf_.assign(name);
        name = name_buf_;
      }
    }
    if (!ReadString(p, n, &i, value_buf_, &value)) return false;
    if (indexing) Insert(name, value);
    sink(name, value);
    fields_seen = true;
  }
  failure_ = Failure::kNone;
  return true;
}

}  // namespace mat::http
