#include "output/mke_line.h"

#include <openssl/rand.h>
#include <pthread.h>

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

namespace mat::output {

namespace {

constexpr char kHex[] = "0123456789abcdef";
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

// The first byte at or after `p` that is not kPlain, or `end`.
const char* SkipPlain(const char* p, const char* end) {
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

// Random bytes for audit ids, drawn from RAND_bytes a page at a time.
struct RandomPool {
  static constexpr size_t kSize = 4096;
  unsigned char bytes[kSize] = {};
  size_t used = kSize;  // empty: refill before use

  void Refill() {
    // A forked child must not hand out the ids its parent has already drawn (it is the forking
    // thread's pool that the child inherits; other threads do not exist there).
    static const int at_fork = pthread_atfork(nullptr, nullptr, &DropPoolAfterFork);
    (void)at_fork;
    if (RAND_bytes(bytes, static_cast<int>(kSize)) != 1) {
      // OpenSSL's generator failed (it practically never does); an audit line still needs an id.
      std::random_device device;
      for (size_t i = 0; i < kSize; i += sizeof(unsigned)) {
        const unsigned value = device();
        std::memcpy(bytes + i, &value, sizeof value);
      }
    }
    used = 0;
  }
};
static_assert(RandomPool::kSize % 16 == 0 && RandomPool::kSize % sizeof(unsigned) == 0);
constinit thread_local RandomPool tl_random_pool;

void DropPoolAfterFork() { tl_random_pool.used = RandomPool::kSize; }

// out.append(first, last) would take the iterator-range overload, which is much slower.
void AppendRange(std::string& out, const char* first, const char* last) {
  out.append(first, static_cast<size_t>(last - first));
}

// Appends a string literal that is known to need no escaping.
template <size_t N>
void AppendLiteral(std::string& out, const char (&text)[N]) {
  out.append(text, N - 1);
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

// The inside of AppendGoJsonString's literal, without the quotes.
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

}  // namespace

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
    *p++ = kHex[bytes[i] >> 4];
    *p++ = kHex[bytes[i] & 0xF];
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

// Written straight into one string; the keys appear in byte-wise sorted order by construction
// (the tests check that against a JSON tree dumped with GoJsonDump).
std::string FormatMkeLine(const audit::AuditRecord& record, const UserFacts& user,
                          const std::string& audit_id, uint64_t now_ns) {
  const audit::ObjectRef& ref = record.object_ref;
  // The fixed text of the longest line shape is 627 bytes; the variable parts rarely need escaping.
  size_t size = 640 + audit_id.size() + record.kind.size() + record.request_uri.size() +
                record.verb.size() + ref.api_group.size() + ref.api_version.size() +
                ref.namespace_.size() + ref.resource.size() + ref.subresource.size() +
                ref.uid.size() + user.uid.size() + user.username.size() + user.login.size() +
                user.license_key.size();
  for (const std::string& ip : record.source_ips) size += ip.size() + 3;
  std::string out;
  out.reserve(size);

  // Each literal carries the quotes around the string values next to it.
  if (record.incomplete) {
    AppendLiteral(out,
                  R"({"audit":{"annotations":{"mke-audit-tap/incomplete":"true"},"auditID":")");
  } else {
    AppendLiteral(out, R"({"audit":{"auditID":")");
  }
  AppendEscaped(out, audit_id);
  AppendLiteral(out, R"(","kind":")");
  AppendEscaped(out, record.kind);
  AppendLiteral(out, R"(","level":")");
  AppendEscaped(out, audit::LevelName(record.level));
  AppendLiteral(out, R"(","metadata":{"creationTimestamp":null})");
  if (!ref.empty()) {
    char separator = '{';
    auto put = [&](std::string_view key, const std::string& value) {
      if (value.empty()) return;
      out.push_back(separator);
      separator = ',';
      out.append(key);
      AppendEscaped(out, value);
      out.push_back('"');
    };
    AppendLiteral(out, R"(,"objectRef":)");
    put(R"("apiGroup":")", ref.api_group);
    put(R"("apiVersion":")", ref.api_version);
    put(R"("namespace":")", ref.namespace_);
    put(R"("resource":")", ref.resource);
    put(R"("subresource":")", ref.subresource);
    put(R"("uid":")", ref.uid);
    out.push_back('}');
  }
  char time_value[kTimeValueMax];
  AppendLiteral(out, R"(,"requestReceivedTimestamp":)");
  out.append(time_value,
             PutTimeValue(time_value, record.request_received_ns, record.request_received_ns != 0));
  AppendLiteral(out, R"(,"requestURI":")");
  AppendEscaped(out, record.request_uri);
  if (record.response_code) {
    AppendLiteral(out, R"(","responseStatus":{"code":)");
    char digits[16];
    const auto result = std::to_chars(digits, digits + sizeof digits, *record.response_code);
    AppendRange(out, digits, result.ptr);
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
  AppendEscaped(out, audit::StageName(record.stage));
  // "timestamp" repeats "stageTimestamp"; both are null at RequestReceived.
  const bool stage_known = record.stage != audit::Stage::kRequestReceived && record.stage_ns != 0;
  const size_t time_length = PutTimeValue(time_value, record.stage_ns, stage_known);
  AppendLiteral(out, R"(","stageTimestamp":)");
  out.append(time_value, time_length);
  AppendLiteral(out, R"(,"timestamp":)");
  out.append(time_value, time_length);
  AppendLiteral(out, R"(,"user":{"extra":{"licenseKey":[")");
  AppendEscaped(out, user.license_key);
  AppendLiteral(out, R"("],"username":[")");
  AppendEscaped(out, user.login);
  AppendLiteral(out, R"("]},"uid":")");
  AppendEscaped(out, user.uid);
  AppendLiteral(out, R"(","username":")");
  AppendEscaped(out, user.username);
  AppendLiteral(out, R"("},"verb":")");
  AppendEscaped(out, record.verb);
  AppendLiteral(out, R"("},"level":"info","msg":"audit","time":")");
  out.append(SecondsText(tl_now_second, now_ns), kSecondsLength);
  AppendLiteral(out, R"(Z"})");
  return out;
}

}  // namespace mat::output
