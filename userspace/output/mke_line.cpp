#include "output/mke_line.h"

#include <openssl/rand.h>
#include <pthread.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "output/go_json.h"

namespace mat::output {

using internal::AppendAnnotations;
using internal::AppendEscaped;
using internal::AppendLiteral;
using internal::AppendRequestObject;
using internal::ExtraAnnotations;
using internal::LineView;
using internal::MemberWriter;

namespace {

constexpr char kHex[] = "0123456789abcdef";
// "00" "01" ... "ff"
constexpr std::array<char, 512> kHexPairs = [] {
  std::array<char, 512> pairs{};
  for (int i = 0; i < 256; ++i) {
    pairs[2 * i] = kHex[i >> 4];
    pairs[2 * i + 1] = kHex[i & 0xF];
  }
  return pairs;
}();
constexpr uint64_t kNsPerSecond = 1'000'000'000ULL;

// Go's utf8.DecodeRuneInString, reduced to what the encoder needs: the length of the valid
// sequence starting at s[0] (a non-ASCII byte), its code point in *rune, or 0 when s[0] does not
// start a valid sequence (invalid lead byte, bad continuation, overlong, surrogate, > U+10FFFF,
// truncated).
size_t DecodeUtf8(std::string_view s, char32_t* rune) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  size_t size = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the accepted range of the second byte
  char32_t value = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    size = 2;
    value = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    size = 3;
    value = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // no overlongs
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    size = 4;
    value = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;  // no overlongs
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() < size) return 0;
  for (size_t i = 1; i < size; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    const unsigned char min = i == 1 ? lo : 0x80;
    const unsigned char max = i == 1 ? hi : 0xBF;
    if (b < min || b > max) return 0;
    value = (value << 6) | (b & 0x3F);
  }
  *rune = value;
  return size;
}

// Go: strconv.AppendFloat(f, 'f' or 'e', -1, 64), 'e' when |f| < 1e-6 or |f| >= 1e21, with
// "e-07" cleaned up to "e-7".
void AppendGoFloat(std::string& out, double value) {
  if (!std::isfinite(value)) {
    out += "null";
    return;
  }
  const double abs = std::fabs(value);
  const bool exponent = abs != 0 && (abs < 1e-6 || abs >= 1e21);
  char buf[64];
  const auto result =
      std::to_chars(buf, buf + sizeof buf, value,
                    exponent ? std::chars_format::scientific : std::chars_format::fixed);
  std::string text(buf, result.ptr);
  const size_t n = text.size();
  if (exponent && n >= 4 && text[n - 4] == 'e' && text[n - 3] == '-' && text[n - 2] == '0') {
    text.erase(n - 2, 1);
  }
  out += text;
}

void AppendGoJson(std::string& out, const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, item] : value.items()) {
        if (!first) out.push_back(',');
        first = false;
        AppendGoJsonString(out, key);
        out.push_back(':');
        AppendGoJson(out, item);
      }
      out.push_back('}');
      return;
    }
    case nlohmann::json::value_t::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : value) {
        if (!first) out.push_back(',');
        first = false;
        AppendGoJson(out, item);
      }
      out.push_back(']');
      return;
    }
    case nlohmann::json::value_t::string:
      AppendGoJsonString(out, value.get_ref<const std::string&>());
      return;
    case nlohmann::json::value_t::boolean:
      out += value.get<bool>() ? "true" : "false";
      return;
    case nlohmann::json::value_t::number_integer:
      out += std::to_string(value.get<int64_t>());
      return;
    case nlohmann::json::value_t::number_unsigned:
      out += std::to_string(value.get<uint64_t>());
      return;
    case nlohmann::json::value_t::number_float:
      AppendGoFloat(out, value.get<double>());
      return;
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::binary:
    case nlohmann::json::value_t::discarded:
      out += "null";
      return;
  }
  out += "null";
}

// kPlain[b]: byte b is copied as is by AppendGoJsonString without a closer look: printable ASCII
// (and DEL) other than " \ & < >. Everything else is escaped, or (>= 0x80) UTF-8 to validate.
constexpr std::array<bool, 256> kPlain = [] {
  std::array<bool, 256> plain{};
  for (int b = 0x20; b < 0x80; ++b) plain[b] = true;
  for (const char c : {'"', '\\', '&', '<', '>'}) plain[static_cast<unsigned char>(c)] = false;
  return plain;
}();

constexpr uint64_t kOnes = 0x0101010101010101ULL;
constexpr uint64_t kHighBits = 0x8080808080808080ULL;

// Nonzero when some byte of `w` is zero.
constexpr uint64_t HasZeroByte(uint64_t w) { return (w - kOnes) & ~w & kHighBits; }

// Nonzero when some byte of the 8-byte word `w` is not kPlain: >= 0x80, < 0x20, or one of
// " & (0x22 0x26: equal to 0x26 once bit 0x04 is set), < > (0x3C 0x3E: equal to 0x3E once bit
// 0x02 is set), \ (0x5C). Byte order does not matter: only "any" is asked.
constexpr uint64_t HasNonPlainByte(uint64_t w) {
  return (w & kHighBits) | ((w - kOnes * 0x20) & ~w & kHighBits) |
         HasZeroByte((w | kOnes * 0x04) ^ (kOnes * 0x26)) |
         HasZeroByte((w | kOnes * 0x02) ^ (kOnes * 0x3E)) | HasZeroByte(w ^ (kOnes * 0x5C));
}

static_assert([] {
  for (unsigned b = 0; b < 256; ++b) {
    if ((HasNonPlainByte(kOnes * b) != 0) == kPlain[b]) return false;
    // One odd byte among plain ones ('a') is found at every position.
    for (unsigned shift = 0; shift < 64; shift += 8) {
      const uint64_t w = (kOnes * 'a' & ~(uint64_t{0xFF} << shift)) | (uint64_t{b} << shift);
      if ((HasNonPlainByte(w) != 0) == kPlain[b]) return false;
    }
  }
  return true;
}());

// The first byte at or after `p` that is not kPlain, or `end`. Forced inline: with two callers
// (AppendEscaped, EscapedPrefix) GCC would call it out of line, 5% more instructions a line.
[[gnu::always_inline]] inline const char* SkipPlain(const char* p, const char* end) {
  while (end - p >= 8) {
    uint64_t w;
    std::memcpy(&w, p, sizeof w);
    if (HasNonPlainByte(w) != 0) break;
    p += 8;
  }
  while (p != end && kPlain[static_cast<unsigned char>(*p)]) ++p;
  return p;
}

// "00" "01" ... "99"
constexpr std::array<char, 200> kTwoDigits = [] {
  std::array<char, 200> digits{};
  for (int i = 0; i < 100; ++i) {
    digits[2 * i] = static_cast<char>('0' + i / 10);
    digits[2 * i + 1] = static_cast<char>('0' + i % 10);
  }
  return digits;
}();

char* PutTwoDigits(char* p, unsigned value) {  // value < 100
  std::memcpy(p, &kTwoDigits[2 * value], 2);
  return p + 2;
}

constexpr size_t kSecondsLength = 19;  // "2019-01-30T17:21:45"
constexpr size_t kMicrosLength = 27;   // "2019-01-30T17:21:45.316157Z"

// Writes "YYYY-MM-DDTHH:MM:SS" (UTC) for `seconds` since the epoch. The proleptic Gregorian
// civil-from-days conversion of H. Hinnant (the same result as gmtime_r); every uint64_t
// nanosecond time lies before the year 2555, so the year has four digits.
void PutDateTime(char* p, uint64_t seconds) {
  const uint64_t days = seconds / 86'400;
  const auto second_of_day = static_cast<unsigned>(seconds % 86'400);
  const uint64_t z = days + 719'468;  // days since 0000-03-01
  const uint64_t era = z / 146'097;
  const auto day_of_era = static_cast<unsigned>(z - era * 146'097);
  const unsigned year_of_era =
      (day_of_era - day_of_era / 1'460 + day_of_era / 36'524 - day_of_era / 146'096) / 365;
  const unsigned day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const unsigned mp = (5 * day_of_year + 2) / 153;  // March = 0
  const unsigned day = day_of_year - (153 * mp + 2) / 5 + 1;
  const unsigned month = mp < 10 ? mp + 3 : mp - 9;
  const auto year = static_cast<unsigned>(year_of_era + era * 400 + (month <= 2 ? 1 : 0));
  p = PutTwoDigits(p, year / 100 % 100);
  p = PutTwoDigits(p, year % 100);
  *p++ = '-';
  p = PutTwoDigits(p, month);
  *p++ = '-';
  p = PutTwoDigits(p, day);
  *p++ = 'T';
  p = PutTwoDigits(p, second_of_day / 3'600);
  *p++ = ':';
  p = PutTwoDigits(p, second_of_day / 60 % 60);
  *p++ = ':';
  PutTwoDigits(p, second_of_day % 60);
}

// The text of the last second formatted; lines come in time order, so nearly every call hits.
struct SecondText {
  uint64_t second = UINT64_MAX;  // no uint64_t ns time has this many seconds
  char text[kSecondsLength] = {};
};
// One cache for the records' times, one for "now" (the envelope), which in a replay differ.
constinit thread_local SecondText tl_record_second;
constinit thread_local SecondText tl_now_second;

const char* SecondsText(SecondText& cache, uint64_t wall_ns) {
  const uint64_t second = wall_ns / kNsPerSecond;
  if (cache.second != second) {
    PutDateTime(cache.text, second);
    cache.second = second;
  }
  return cache.text;
}

// Writes kMicrosLength bytes: "2019-01-30T17:21:45.316157Z".
void PutMicros(char* p, uint64_t wall_ns) {
  std::memcpy(p, SecondsText(tl_record_second, wall_ns), kSecondsLength);
  p += kSecondsLength;
  const auto micros = static_cast<unsigned>(wall_ns % kNsPerSecond / 1'000);
  *p++ = '.';
  p = PutTwoDigits(p, micros / 10'000);
  p = PutTwoDigits(p, micros / 100 % 100);
  p = PutTwoDigits(p, micros % 100);
  *p = 'Z';
}

void DropPoolAfterFork();

// Random bytes for audit ids, a page at a time: xoshiro256** seeded from RAND_bytes for each
// page. Audit ids must be unique and unguessable enough not to collide, not secret; OpenSSL's
// DRBG for every byte had cost ~30 instructions a byte, a fifth of a line's cost.
struct RandomPool {
  static constexpr size_t kSize = 4096;
  unsigned char bytes[kSize] = {};
  size_t used = kSize;  // empty: refill before use

  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  void Refill() {
    // A forked child must not hand out the ids its parent has already drawn (it is the forking
    // thread's pool that the child inherits; other threads do not exist there).
    static const int at_fork = pthread_atfork(nullptr, nullptr, &DropPoolAfterFork);
    (void)at_fork;
    uint64_t s[4] = {};
    if (RAND_bytes(reinterpret_cast<unsigned char*>(s), static_cast<int>(sizeof s)) != 1) {
      // OpenSSL's generator failed (it practically never does); an audit line still needs an id.
      std::random_device device;
      for (uint64_t& word : s) word = (uint64_t{device()} << 32) ^ device();
    }
    if ((s[0] | s[1] | s[2] | s[3]) == 0) s[0] = 1;  // the one state xoshiro cannot leave
    for (size_t i = 0; i < kSize; i += sizeof(uint64_t)) {
      const uint64_t value = Rotl(s[1] * 5, 7) * 9;
      const uint64_t t = s[1] << 17;
      s[2] ^= s[0];
      s[3] ^= s[1];
      s[1] ^= s[2];
      s[0] ^= s[3];
      s[2] ^= t;
      s[3] = Rotl(s[3], 45);
      std::memcpy(bytes + i, &value, sizeof value);
    }
    used = 0;
  }
};
static_assert(RandomPool::kSize % 16 == 0 && RandomPool::kSize % sizeof(uint64_t) == 0);
constinit thread_local RandomPool tl_random_pool;

void DropPoolAfterFork() { tl_random_pool.used = RandomPool::kSize; }

// out.append(first, last) would take the iterator-range overload, which is much slower.
void AppendRange(std::string& out, const char* first, const char* last) {
  out.append(first, static_cast<size_t>(last - first));
}

// Writes the JSON value of a time: "\"2019-01-30T17:21:45.316157Z\"" or, when not `known`,
// "null". Returns its length.
constexpr size_t kTimeValueMax = kMicrosLength + 2;
size_t PutTimeValue(char* p, uint64_t wall_ns, bool known) {
  if (!known) {
    std::memcpy(p, "null", 4);
    return 4;
  }
  p[0] = '"';
  PutMicros(p + 1, wall_ns);
  p[kMicrosLength + 1] = '"';
  return kTimeValueMax;
}

}  // namespace

namespace internal {

void AppendEscaped(std::string& out, std::string_view text) {
  const char* const end = text.data() + text.size();
  const char* run = text.data();  // the first byte not yet copied
  const char* p = run;
  while ((p = SkipPlain(p, end)) != end) {
    const auto b = static_cast<unsigned char>(*p);
    if (b < 0x80) {  // a control character or " \ & < >
      AppendRange(out, run, p);
      char escape[6] = {'\\', static_cast<char>(b), '0', '0', '0', '0'};
      size_t length = 2;
      switch (b) {
        case '"':
        case '\\':
          break;
        case '\n':
          escape[1] = 'n';
          break;
        case '\r':
          escape[1] = 'r';
          break;
        case '\t':
          escape[1] = 't';
          break;
        default:  // the other control characters and & < >
          escape[1] = 'u';
          escape[4] = kHex[b >> 4];
          escape[5] = kHex[b & 0xF];
          length = 6;
      }
      out.append(escape, length);
      run = ++p;
      continue;
    }
    char32_t rune = 0;
    const size_t size = DecodeUtf8(std::string_view(p, static_cast<size_t>(end - p)), &rune);
    if (size == 0) {
      AppendRange(out, run, p);
      AppendLiteral(out, "\\ufffd");
      run = ++p;
    } else if (rune == 0x2028 || rune == 0x2029) {
      AppendRange(out, run, p);
      AppendLiteral(out, rune == 0x2028 ? "\\u2028" : "\\u2029");
      p += size;
      run = p;
    } else {
      p += size;
    }
  }
  AppendRange(out, run, end);
}

}  // namespace internal

void AppendGoJsonString(std::string& out, std::string_view text) {
  out.push_back('"');
  AppendEscaped(out, text);
  out.push_back('"');
}

std::string GoJsonDump(const nlohmann::json& value) {
  std::string out;
  AppendGoJson(out, value);
  return out;
}

std::string NewAuditId() {
  RandomPool& pool = tl_random_pool;
  if (pool.used == RandomPool::kSize) pool.Refill();
  unsigned char bytes[16];
  std::memcpy(bytes, pool.bytes + pool.used, sizeof bytes);
  pool.used += sizeof bytes;
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0F) | 0x40);  // version 4
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3F) | 0x80);  // RFC 4122 variant
  char id[36];
  char* p = id;
  for (size_t i = 0; i < sizeof bytes; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *p++ = '-';
    std::memcpy(p, &kHexPairs[2 * bytes[i]], 2);
    p += 2;
  }
  return std::string(id, sizeof id);
}

std::string FormatMicros(uint64_t wall_ns) {
  std::string text(kMicrosLength, '\0');
  PutMicros(text.data(), wall_ns);
  return text;
}

std::string FormatSeconds(uint64_t wall_ns) {
  std::string text(kSecondsLength + 1, 'Z');
  std::memcpy(text.data(), SecondsText(tl_now_second, wall_ns), kSecondsLength);
  return text;
}

namespace {

// {"extra":{"licenseKey":[..],"username":[login]},"uid":..,"username":..}. Consecutive lines
// mostly have the same user (a keep-alive connection's requests), so the encoded object of the
// last one is kept (per thread) and reused while its four strings are unchanged.
void AppendUser(std::string& out, const UserFacts& user) {
  if (!user.peer_pid.empty() || !user.peer_comm.empty() || !user.peer_container.empty()) {
    // A local socket's peer: extra keys in byte-wise order, each value a one-string list.
    char separator = '{';
    auto put = [&](std::string_view key, std::string_view value) {
      if (value.empty() && key != "licenseKey" && key != "username") return;
      out.push_back(separator);
      separator = ',';
      out.push_back('"');
      out.append(key);
      AppendLiteral(out, R"(":[")");
      AppendEscaped(out, value);
      AppendLiteral(out, R"("])");
    };
    AppendLiteral(out, R"({"extra":)");
    put("comm", user.peer_comm);
    put("container", user.peer_container);
    put("licenseKey", user.license_key);
    put("pid", user.peer_pid);
    put("username", user.login);
    AppendLiteral(out, R"(},"uid":")");
    AppendEscaped(out, user.uid);
    AppendLiteral(out, R"(","username":")");
    AppendEscaped(out, user.username);
    AppendLiteral(out, R"("})");
    return;
  }
  struct Last {
    std::string license_key, login, uid, username, encoded;
    bool valid = false;
  };
  static thread_local Last last;
  if (!last.valid || last.license_key != user.license_key || last.login != user.login ||
      last.uid != user.uid || last.username != user.username) {
    last.encoded.clear();
    AppendLiteral(last.encoded, R"({"extra":{"licenseKey":[")");
    AppendEscaped(last.encoded, user.license_key);
    AppendLiteral(last.encoded, R"("],"username":[")");
    AppendEscaped(last.encoded, user.login);
    AppendLiteral(last.encoded, R"("]},"uid":")");
    AppendEscaped(last.encoded, user.uid);
    AppendLiteral(last.encoded, R"(","username":")");
    AppendEscaped(last.encoded, user.username);
    AppendLiteral(last.encoded, R"("})");
    last.license_key = user.license_key;
    last.login = user.login;
    last.uid = user.uid;
    last.username = user.username;
    last.valid = true;
  }
  out.append(last.encoded);
}

// Writes the MKE line of `record` as `view` says. Written straight into one string; the keys
// appear in byte-wise sorted order by construction (the tests check that against a JSON tree
// dumped with GoJsonDump).
void WriteMkeLine(std::string& out, const audit::AuditRecord& record, const UserFacts& user,
                  const std::string& audit_id, uint64_t now_ns, const LineView& view) {
  const audit::ObjectRef& ref = record.object_ref;
  // The fixed text of the longest line shape is 627 bytes; the variable parts rarely need escaping.
  size_t size = 640 + audit_id.size() + record.kind.size() + view.request_uri.size() +
                record.verb.size() + ref.api_group.size() + ref.api_version.size() +
                ref.namespace_.size() + ref.resource.size() + ref.subresource.size() +
                ref.uid.size() + user.uid.size() + user.username.size() + user.login.size() +
                user.license_key.size();
  for (const std::string& ip : record.source_ips) size += ip.size() + 3;
  const bool annotations = internal::HasAnnotations(record, *view.extras);
  if (annotations) {
    size += 16;
    for (const auto& [key, value] : record.annotations) size += key.size() + value.size() + 6;
    for (const internal::Annotation& extra : view.extras->items()) {
      size += extra.key.size() + extra.value.size() + 6;
    }
  }
  if (view.request_object) size += 20 + record.request_object->text.size();
  out.reserve(out.size() + size);

  // Each literal carries the quotes around the string values next to it.
  const std::span<const internal::Annotation> extras = view.extras->items();
  if (annotations && record.annotations.empty() && extras.size() == 1 &&
      extras[0].key == internal::kIncompleteKey && extras[0].value == "true") {
    // The common case: only a capture loss to report.
    AppendLiteral(out,
                  R"({"audit":{"annotations":{"mke-audit-tap/incomplete":"true"},"auditID":")");
  } else if (annotations) {
    AppendLiteral(out, R"({"audit":{"annotations":)");
    AppendAnnotations(out, record.annotations, extras);
    AppendLiteral(out, R"(,"auditID":")");
  } else {
    AppendLiteral(out, R"({"audit":{"auditID":")");
  }
  AppendEscaped(out, audit_id);
  AppendLiteral(out, R"(","kind":")");
  AppendEscaped(out, record.kind);
  AppendLiteral(out, R"(","level":")");
  out.append(audit::LevelName(record.level));  // the tool's own ASCII words need no escaping
  AppendLiteral(out, R"(","metadata":{"creationTimestamp":null})");
  if (!ref.empty()) {
    AppendLiteral(out, R"(,"objectRef":)");
    MemberWriter members(out, '{');
    members.Put(R"("apiGroup":")", ref.api_group);
    members.Put(R"("apiVersion":")", ref.api_version);
    members.Put(R"("namespace":")", ref.namespace_);
    members.Put(R"("resource":")", ref.resource);
    members.Put(R"("subresource":")", ref.subresource);
    members.Put(R"("uid":")", ref.uid);
    out.push_back('}');
  }
  if (view.request_object) {
    AppendLiteral(out, R"(,"requestObject":)");
    AppendRequestObject(out, *record.request_object);
  }
  char time_value[kTimeValueMax];
  AppendLiteral(out, R"(,"requestReceivedTimestamp":)");
  out.append(time_value,
             PutTimeValue(time_value, record.request_received_ns, record.request_received_ns != 0));
  AppendLiteral(out, R"(,"requestURI":")");
  AppendEscaped(out, view.request_uri);
  if (record.response_code) {
    AppendLiteral(out, R"(","responseStatus":{"code":)");
    internal::AppendInt(out, *record.response_code);
    AppendLiteral(out, R"(},"sourceIPs":[)");
  } else {
    AppendLiteral(out, R"(","sourceIPs":[)");
  }
  for (size_t i = 0; i < record.source_ips.size(); ++i) {
    out.append(i == 0 ? "\"" : ",\"", i == 0 ? 1 : 2);
    AppendEscaped(out, record.source_ips[i]);
    out.push_back('"');
  }
  AppendLiteral(out, R"(],"stage":")");
  out.append(audit::StageName(record.stage));
  // "timestamp" repeats "stageTimestamp"; both are null at RequestReceived.
  const bool stage_known = record.stage != audit::Stage::kRequestReceived && record.stage_ns != 0;
  const size_t time_length = PutTimeValue(time_value, record.stage_ns, stage_known);
  AppendLiteral(out, R"(","stageTimestamp":)");
  out.append(time_value, time_length);
  AppendLiteral(out, R"(,"timestamp":)");
  out.append(time_value, time_length);
  AppendLiteral(out, R"(,"user":)");
  AppendUser(out, user);
  AppendLiteral(out, R"(,"verb":")");
  AppendEscaped(out, record.verb);
  AppendLiteral(out, R"("},"level":"info","msg":"audit","time":")");
  out.append(SecondsText(tl_now_second, now_ns), kSecondsLength);
  AppendLiteral(out, R"(Z"})");
}

// The cut-down fields of FitLine's last step.
constexpr size_t kFieldBudget = 64;        // encoded bytes of each string field
constexpr size_t kAnnotationBudget = 96;   // encoded bytes of an annotation's key and value
constexpr size_t kMaxKeptAnnotations = 8;  // of the record's own
constexpr size_t kMaxKeptGroups = 4;       // of the user's and the impersonated user's

std::string Cut(std::string_view text, size_t budget) {
  return std::string(text.substr(0, internal::EscapedPrefix(text, budget)));
}

}  // namespace

namespace internal {

size_t EscapedPrefix(std::string_view text, size_t budget, size_t* escaped) {
  const char* const begin = text.data();
  const char* const end = begin + text.size();
  const char* p = begin;
  size_t used = 0;
  while (p != end) {
    const char* const plain_end = SkipPlain(p, end);
    const auto run = static_cast<size_t>(plain_end - p);
    if (run > budget - used) {
      p += budget - used;
      used = budget;
      break;
    }
    used += run;
    p = plain_end;
    if (p == end) break;
    const auto b = static_cast<unsigned char>(*p);
    size_t unit_raw = 1;
    size_t unit_escaped = 6;  // \u00xx, \ufffd, \u2028, \u2029
    if (b < 0x80) {
      if (b == '"' || b == '\\' || b == '\n' || b == '\r' || b == '\t') unit_escaped = 2;
    } else {
      char32_t rune = 0;
      const size_t length = DecodeUtf8(std::string_view(p, static_cast<size_t>(end - p)), &rune);
      if (length != 0) {
        unit_raw = length;
        if (rune != 0x2028 && rune != 0x2029) unit_escaped = length;
      }
    }
    if (unit_escaped > budget - used) break;
    used += unit_escaped;
    p += unit_raw;
  }
  if (escaped != nullptr) *escaped = used;
  return static_cast<size_t>(p - begin);
}

size_t EscapedSize(std::string_view text) {
  size_t escaped = 0;
  EscapedPrefix(text, SIZE_MAX, &escaped);
  return escaped;
}

void AppendGoJsonValue(std::string& out, const nlohmann::json& value) { AppendGoJson(out, value); }

void AppendTimeValue(std::string& out, uint64_t wall_ns, bool known) {
  char time_value[kTimeValueMax];
  out.append(time_value, PutTimeValue(time_value, wall_ns, known));
}

void AppendInt(std::string& out, int64_t value) {
  char digits[24];
  const auto result = std::to_chars(digits, digits + sizeof digits, value);
  AppendRange(out, digits, result.ptr);
}

bool HasRequestObject(const audit::AuditRecord& record) {
  return record.request_object.has_value() &&
         record.request_object->kind != audit::RequestObject::Kind::kNone;
}

void AppendRequestObject(std::string& out, const audit::RequestObject& object) {
  switch (object.kind) {
    case audit::RequestObject::Kind::kJson:
      if (!AppendParsedJson(out, object.text)) {
        AppendGoJsonString(out, object.text);  // not JSON after all: say it as text
      }
      return;
    case audit::RequestObject::Kind::kString:
      AppendGoJsonString(out, object.text);
      return;
    case audit::RequestObject::Kind::kRedacted:
      AppendGoJsonString(out, audit::kRedactedMarker);
      return;
    case audit::RequestObject::Kind::kNone:
      break;
  }
  AppendLiteral(out, "null");
}

void ExtraAnnotations::Set(std::string_view key, std::string_view value) {
  size_t i = 0;
  while (i < size_ && items_[i].key < key) ++i;
  if (i < size_ && items_[i].key == key) {
    items_[i].value = value;
    return;
  }
  if (size_ == items_.size()) return;  // cannot happen: there are only four keys
  for (size_t j = size_; j > i; --j) items_[j] = items_[j - 1];
  items_[i] = {key, value};
  ++size_;
}

void ExtraAnnotations::Erase(std::string_view key) {
  for (size_t i = 0; i < size_; ++i) {
    if (items_[i].key != key) continue;
    for (size_t j = i + 1; j < size_; ++j) items_[j - 1] = items_[j];
    --size_;
    return;
  }
}

ExtraAnnotations BaseExtras(const audit::AuditRecord& record) {
  ExtraAnnotations extras;
  if (record.incomplete) extras.Set(kIncompleteKey, "true");
  if (HasRequestObject(record) && record.request_object->truncated) {
    extras.Set(kRequestObjectKey, "truncated");
  }
  return extras;
}

void AppendAnnotations(std::string& out, const std::map<std::string, std::string>& annotations,
                       std::span<const Annotation> extras) {
  out.push_back('{');
  bool first = true;
  auto put = [&](std::string_view key, std::string_view value) {
    if (!first) out.push_back(',');
    first = false;
    AppendGoJsonString(out, key);
    out.push_back(':');
    AppendGoJsonString(out, value);
  };
  // The writer's own annotations are plain ASCII text: copied as they are.
  auto put_plain = [&](std::string_view key, std::string_view value) {
    out.append(first ? "\"" : ",\"", first ? 1 : 2);
    first = false;
    out.append(key);
    AppendLiteral(out, R"(":")");
    out.append(value);
    out.push_back('"');
  };
  // std::string_view and std::string compare as memcmp does: byte-wise, unsigned, like Go.
  auto it = annotations.begin();
  size_t i = 0;
  while (it != annotations.end() || i < extras.size()) {
    if (i == extras.size() ||
        (it != annotations.end() && std::string_view(it->first) < extras[i].key)) {
      put(it->first, it->second);
      ++it;
      continue;
    }
    if (it != annotations.end() && it->first == extras[i].key) ++it;  // the extra wins
    put_plain(extras[i].key, extras[i].value);
    ++i;
  }
  out.push_back('}');
}

size_t EffectiveCap(const LineOptions& options) {
  if (options.max_line_bytes == 0) return 0;
  return std::max(options.max_line_bytes, kMinLineBytes);
}

std::string FitLine(const audit::AuditRecord& record, const UserFacts& user,
                    const std::string& audit_id, uint64_t now_ns, size_t cap, LineWriter write) {
  ExtraAnnotations extras = BaseExtras(record);
  std::string line;
  // 1. Without the request object.
  const std::string dropped = "dropped: line over " + std::to_string(cap) + " bytes";
  if (HasRequestObject(record)) {
    extras.Set(kRequestObjectKey, dropped);
    write(line, record, user, audit_id, now_ns, {false, record.request_uri, &extras});
    if (line.size() <= cap) return line;
  }
  // 2. With as much of the URI as fits.
  extras.Set(kRequestUriKey, "truncated");
  line.clear();
  write(line, record, user, audit_id, now_ns, {false, {}, &extras});
  if (line.size() <= cap) {
    const std::string_view uri = record.request_uri;
    const size_t prefix = EscapedPrefix(uri, cap - line.size());
    line.clear();
    write(line, record, user, audit_id, now_ns, {false, uri.substr(0, prefix), &extras});
    return line;
  }
  // 3. Every other field cut down too; the URI gets what is left.
  extras.Set(kFieldsKey, "truncated");
  audit::AuditRecord small;
  small.kind = Cut(record.kind, kFieldBudget);
  small.level = record.level;
  small.stage = record.stage;
  small.verb = Cut(record.verb, kFieldBudget);
  if (!record.source_ips.empty())
    small.source_ips.push_back(Cut(record.source_ips[0], kFieldBudget));
  small.request_received_ns = record.request_received_ns;
  small.stage_ns = record.stage_ns;
  small.response_code = record.response_code;
  small.object_ref = {Cut(record.object_ref.resource, kFieldBudget),
                      Cut(record.object_ref.namespace_, kFieldBudget),
                      Cut(record.object_ref.api_group, kFieldBudget),
                      Cut(record.object_ref.api_version, kFieldBudget),
                      Cut(record.object_ref.subresource, kFieldBudget),
                      Cut(record.object_ref.uid, kFieldBudget)};
  small.incomplete = record.incomplete;
  for (const auto& [key, value] : record.annotations) {
    if (small.annotations.size() == kMaxKeptAnnotations) break;
    if (EscapedSize(key) + EscapedSize(value) <= kAnnotationBudget)
      small.annotations.emplace(key, value);
  }
  small.user_agent = Cut(record.user_agent, kFieldBudget);
  UserFacts small_user{Cut(user.uid, kFieldBudget), Cut(user.username, kFieldBudget),
                       Cut(user.login, kFieldBudget), Cut(user.license_key, kFieldBudget)};
  for (size_t i = 0; i < user.groups.size() && i < kMaxKeptGroups; ++i)
    small_user.groups.push_back(Cut(user.groups[i], kFieldBudget));
  if (user.impersonated) {
    small_user.impersonated.emplace();
    small_user.impersonated->username = Cut(user.impersonated->username, kFieldBudget);
    small_user.impersonated->uid = Cut(user.impersonated->uid, kFieldBudget);
    for (size_t i = 0; i < user.impersonated->groups.size() && i < kMaxKeptGroups; ++i)
      small_user.impersonated->groups.push_back(Cut(user.impersonated->groups[i], kFieldBudget));
  }
  const std::string small_id = Cut(audit_id, kFieldBudget);
  line.clear();
  write(line, small, small_user, small_id, now_ns, {false, {}, &extras});
  // kMinLineBytes leaves room for all of the above (the tests check the worst case).
  const std::string_view uri = record.request_uri;
  const size_t prefix = EscapedPrefix(uri, cap - std::min(cap, line.size()));
  if (prefix == uri.size()) extras.Erase(kRequestUriKey);
  line.clear();
  write(line, small, small_user, small_id, now_ns, {false, uri.substr(0, prefix), &extras});
  return line;
}

}  // namespace internal

void FormatMkeLine(std::string& out, const audit::AuditRecord& record, const UserFacts& user,
                   const std::string& audit_id, uint64_t now_ns, const LineOptions& options) {
  const ExtraAnnotations extras = internal::BaseExtras(record);
  out.clear();
  WriteMkeLine(out, record, user, audit_id, now_ns,
               {internal::HasRequestObject(record), record.request_uri, &extras});
  const size_t cap = internal::EffectiveCap(options);
  if (cap == 0 || out.size() <= cap) return;
  out = internal::FitLine(record, user, audit_id, now_ns, cap, &WriteMkeLine);
}

std::string FormatMkeLine(const audit::AuditRecord& record, const UserFacts& user,
                          const std::string& audit_id, uint64_t now_ns,
                          const LineOptions& options) {
  std::string out;
  FormatMkeLine(out, record, user, audit_id, now_ns, options);
  return out;
}

std::string FormatMkeLine(const audit::AuditRecord& record, const UserFacts& user,
                          const std::string& audit_id, uint64_t now_ns) {
  return FormatMkeLine(record, user, audit_id, now_ns, LineOptions{});
}

}  // namespace mat::output
