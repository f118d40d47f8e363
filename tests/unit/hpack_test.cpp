// HpackDecoder against nghttp2's inflater, the reference it replaced: header lists encoded by
// nghttp2's deflater (Huffman strings, indexing, evictions, table size updates) must decode to
// the same fields; corrupted blocks must never crash and never yield fields nghttp2 rejects
// the block for.
#include "http/hpack.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <random>
#include <string>
#include <utility>
#include <vector>

namespace mat::http {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

std::string Deflate(nghttp2_hd_deflater* deflater, const Fields& fields, uint8_t flags) {
  std::vector<nghttp2_nv> nva;
  for (const auto& [name, value] : fields) {
    nva.push_back(nghttp2_nv{const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(name.data())),
                             const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(value.data())),
                             name.size(), value.size(), flags});
  }
  std::string out(nghttp2_hd_deflate_bound(deflater, nva.data(), nva.size()), '\0');
  const ssize_t n = nghttp2_hd_deflate_hd(deflater, reinterpret_cast<uint8_t*>(out.data()),
                                          out.size(), nva.data(), nva.size());
  EXPECT_GE(n, 0);
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

// nghttp2's answer: the fields, or nullopt when it rejects the block.
std::optional<Fields> Reference(nghttp2_hd_inflater* inflater, const std::string& block) {
  Fields fields;
  const auto* in = reinterpret_cast<const uint8_t*>(block.data());
  size_t left = block.size();
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    const ssize_t rv = nghttp2_hd_inflate_hd2(inflater, &nv, &flags, in, left, 1);
    if (rv < 0) return std::nullopt;
    in += rv;
    left -= static_cast<size_t>(rv);
    if ((flags & NGHTTP2_HD_INFLATE_EMIT) != 0) {
      fields.emplace_back(std::string(reinterpret_cast<const char*>(nv.name), nv.namelen),
                          std::string(reinterpret_cast<const char*>(nv.value), nv.valuelen));
    }
    if ((flags & NGHTTP2_HD_INFLATE_FINAL) != 0) {
      nghttp2_hd_inflate_end_headers(inflater);
      return fields;
    }
    if ((flags & NGHTTP2_HD_INFLATE_EMIT) == 0 && left == 0) return std::nullopt;
  }
}

std::optional<Fields> Ours(HpackDecoder& decoder, const std::string& block) {
  Fields fields;
  const bool ok = decoder.Decode(
      reinterpret_cast<const uint8_t*>(block.data()), block.size(),
      [&](std::string_view name, std::string_view value) { fields.emplace_back(name, value); });
  if (!ok) return std::nullopt;
  return fields;
}

std::string RandomText(std::mt19937& rng, size_t max_len) {
  std::uniform_int_distribution<size_t> len(0, max_len);
  std::uniform_int_distribution<int> kind(0, 99);
  std::uniform_int_distribution<int> printable(0x20, 0x7e);
  std::uniform_int_distribution<int> any(0, 255);
  std::string s(len(rng), ' ');
  // Mostly printable, so that nghttp2 Huffman-codes it, with every byte value now and then.
  for (char& c : s) c = static_cast<char>(kind(rng) < 93 ? printable(rng) : any(rng));
  return s;
}

TEST(HpackTest, DecodesWhatNghttp2EncodesAsNghttp2Does) {
  std::mt19937 rng(7);
  nghttp2_hd_deflater* deflater = nullptr;
  nghttp2_hd_inflater* inflater = nullptr;
  ASSERT_EQ(nghttp2_hd_deflate_new(&deflater, 4096), 0);
  ASSERT_EQ(nghttp2_hd_inflate_new(&inflater), 0);
  ASSERT_EQ(nghttp2_hd_inflate_change_table_size(inflater, 65536), 0);
  HpackDecoder decoder(65536);
  const std::vector<std::string> names = {":method", ":path",     ":authority", "user-agent",
                                          "accept",  "x-request", "date",       "audit-id"};
  size_t huffman_blocks = 0;
  for (int round = 0; round < 3000; ++round) {
    if (round % 97 == 0) {
      std::uniform_int_distribution<size_t> size(0, 8192);
      ASSERT_EQ(nghttp2_hd_deflate_change_table_size(deflater, size(rng)), 0);
    }
    Fields fields;
    std::uniform_int_distribution<int> count(1, 12);
    std::uniform_int_distribution<size_t> pick(0, names.size() - 1);
    for (int i = count(rng); i > 0; --i) {
      const bool custom = std::uniform_int_distribution<int>(0, 4)(rng) == 0;
      fields.emplace_back(custom ? "x-" + RandomText(rng, 12) : names[pick(rng)],
                          RandomText(rng, round % 50 == 0 ? 3000 : 60));
    }
    const uint8_t flags = round % 5 == 0 ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE;
    const std::string block = Deflate(deflater, fields, flags);
    for (unsigned char b : block) huffman_blocks += (b & 0x80) != 0;  // (a rough sign of use)
    const auto expected = Reference(inflater, block);
    ASSERT_TRUE(expected.has_value()) << round;
    const auto got = Ours(decoder, block);
    ASSERT_TRUE(got.has_value()) << round;
    ASSERT_EQ(*got, *expected) << round;
    ASSERT_EQ(*got, fields) << round;
  }
  EXPECT_GT(huffman_blocks, 0u);
  nghttp2_hd_deflate_del(deflater);
  nghttp2_hd_inflate_del(inflater);
}

TEST(HpackTest, HuffmanStringsOfEveryByte) {
  // nghttp2 Huffman-codes a value when that is shorter; a value of common letters carrying
  // one byte of each value gets every symbol's code through the decoder.
  nghttp2_hd_deflater* deflater = nullptr;
  ASSERT_EQ(nghttp2_hd_deflate_new(&deflater, 4096), 0);
  HpackDecoder decoder;
  for (int b = 0; b < 256; ++b) {
    const std::string value = std::string(40, 'e') + static_cast<char>(b) + std::string(40, 't');
    const std::string block = Deflate(deflater, {{"x", value}}, NGHTTP2_NV_FLAG_NO_INDEX);
    ASSERT_LT(block.size(), value.size()) << b << ": not Huffman-coded";
    const auto got = Ours(decoder, block);
    ASSERT_TRUE(got.has_value()) << b;
    ASSERT_EQ(got->size(), 1u);
    EXPECT_EQ((*got)[0].second, value) << b;
  }
  nghttp2_hd_deflate_del(deflater);
}

TEST(HpackTest, MalformedHuffmanIsRejected) {
  std::string out;
  // 'a' (00011) then 3 bits of padding that are not all ones.
  const uint8_t bad_padding[] = {0x18};
  EXPECT_FALSE(HpackDecoder::HuffmanDecode(bad_padding, 1, out));
  // 'a' then ones: valid.
  const uint8_t good[] = {0x1f};
  out.clear();
  EXPECT_TRUE(HpackDecoder::HuffmanDecode(good, 1, out));
  EXPECT_EQ(out, "a");
  // A whole byte of padding (8 ones) is too long.
  const uint8_t long_padding[] = {0x1f, 0xff};
  out.clear();
  EXPECT_FALSE(HpackDecoder::HuffmanDecode(long_padding, 2, out));
  // EOS (30 ones) inside the string.
  const uint8_t eos[] = {0xff, 0xff, 0xff, 0xfc};
  out.clear();
  EXPECT_FALSE(HpackDecoder::HuffmanDecode(eos, 4, out));
}

TEST(HpackTest, TableSizeUpdateRules) {
  HpackDecoder decoder(8192);
  auto decode = [&](std::string block) { return Ours(decoder, block).has_value(); };
  EXPECT_TRUE(decode("\x3f\xe1\x1f"));                   // update to 4096 (5-bit prefix: 31 + 4065)
  EXPECT_FALSE(decode("\x82\x3f\xe1\x1f"));              // not at the start of the block
  EXPECT_FALSE(decode(std::string("\x3f\xe1\x7f", 3)));  // 31 + 16353: over the limit of 8192
  EXPECT_FALSE(decode("\xbe"));                          // index 62: the dynamic table is empty
  EXPECT_FALSE(decode(std::string("\x80", 1)));          // index 0
}

// A size update above the peer's SETTINGS_HEADER_TABLE_SIZE breaks the protocol (the server
// answers COMPRESSION_ERROR); one within it but over our own limit is our limit only.
TEST(HpackTest, SizeUpdateFailureSaysWhose) {
  HpackDecoder decoder(8192);
  decoder.SetProtocolLimit(65536);
  auto failure = [&](std::string block) {
    Ours(decoder, block);
    return decoder.failure();
  };
  EXPECT_EQ(failure("\x3f\xe1\x1f"), HpackDecoder::Failure::kNone);           // 4096
  EXPECT_EQ(failure("\x3f\xc1\xd4\x03"), HpackDecoder::Failure::kOverLimit);  // 60000
  EXPECT_EQ(failure("\x3f\xe3\xff\x03"), HpackDecoder::Failure::kMalformed);  // 65538
  EXPECT_EQ(failure("\x82\x3f\xe1\x1f"), HpackDecoder::Failure::kMalformed);  // after a field
  EXPECT_EQ(failure("\xbe"), HpackDecoder::Failure::kMalformed);  // index 62 in an empty table
  decoder.SetProtocolLimit(4096);                                 // kept across Reset
  decoder.Reset(8192);
  EXPECT_EQ(failure("\x3f\xc1\xd4\x03"), HpackDecoder::Failure::kMalformed);
  EXPECT_EQ(failure("\x82"), HpackDecoder::Failure::kNone);
}

TEST(HpackTest, CorruptedBlocksNeverYieldWhatNghttp2Rejects) {
  std::mt19937 rng(11);
  nghttp2_hd_deflater* deflater = nullptr;
  ASSERT_EQ(nghttp2_hd_deflate_new(&deflater, 4096), 0);
  int both_ok = 0, both_failed = 0;
  for (int round = 0; round < 4000; ++round) {
    nghttp2_hd_inflater* inflater = nullptr;
    ASSERT_EQ(nghttp2_hd_inflate_new(&inflater), 0);
    HpackDecoder decoder;
    std::string block = Deflate(
        deflater,
        {{":method", "GET"}, {":path", "/" + RandomText(rng, 30)}, {"x", RandomText(rng, 30)}},
        NGHTTP2_NV_FLAG_NO_INDEX);
    std::uniform_int_distribution<size_t> at(0, block.size() - 1);
    for (int flips = std::uniform_int_distribution<int>(1, 3)(rng); flips > 0; --flips)
      block[at(rng)] = static_cast<char>(rng());
    const auto expected = Reference(inflater, block);
    const auto got = Ours(decoder, block);
    if (!expected) {
      EXPECT_FALSE(got.has_value()) << round;
      ++both_failed;
    } else if (got) {
      EXPECT_EQ(*got, *expected) << round;
      ++both_ok;
    }
    nghttp2_hd_inflate_del(inflater);
  }
  EXPECT_GT(both_ok, 100);
  EXPECT_GT(both_failed, 100);
  nghttp2_hd_deflate_del(deflater);
}

}  // namespace
}  // namespace mat::http
