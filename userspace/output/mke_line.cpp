#include "output/mke_line.h"

#include <openssl/rand.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
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

bool SplitTime(uint64_t wall_ns, std::tm* tm, unsigned* micros) {
  const auto seconds = static_cast<std::time_t>(wall_ns / kNsPerSecond);
  *micros = static_cast<unsigned>((wall_ns % kNsPerSecond) / 1000);
  return gmtime_r(&seconds, tm) != nullptr;
}

nlohmann::json TimeOrNull(uint64_t wall_ns) {
  if (wall_ns == 0) return nullptr;
  return FormatMicros(wall_ns);
}

nlohmann::json ObjectRefJson(const audit::ObjectRef& ref) {
  nlohmann::json object = nlohmann::json::object();
  auto put = [&object](const char* key, const std::string& value) {
    if (!value.empty()) object[key] = value;
  };
  put("apiGroup", ref.api_group);
  put("apiVersion", ref.api_version);
  put("namespace", ref.namespace_);
  put("resource", ref.resource);
  put("subresource", ref.subresource);
  put("uid", ref.uid);
  return object;
}

}  // namespace

void AppendGoJsonString(std::string& out, std::string_view text) {
  out.push_back('"');
  size_t start = 0;  // the first byte not yet copied
  size_t i = 0;
  auto flush = [&](size_t end) { out.append(text.data() + start, end - start); };
  while (i < text.size()) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {
      if (b >= 0x20 && b != '"' && b != '\\' && b != '&' && b != '<' && b != '>') {
        ++i;
        continue;
      }
      flush(i);
      out.push_back('\\');
      switch (b) {
        case '"':
        case '\\':
          out.push_back(static_cast<char>(b));
          break;
        case '\n':
          out.push_back('n');
          break;
        case '\r':
          out.push_back('r');
          break;
        case '\t':
          out.push_back('t');
          break;
        default:  // the other control characters and & < >
          out += "u00";
          out.push_back(kHex[b >> 4]);
          out.push_back(kHex[b & 0xF]);
      }
      start = ++i;
      continue;
    }
    char32_t rune = 0;
    const size_t size = DecodeUtf8(text.substr(i), &rune);
    if (size == 0) {
      flush(i);
      out += "\\ufffd";
      start = ++i;
      continue;
    }
    if (rune == 0x2028 || rune == 0x2029) {
      flush(i);
      out += "\\u202";
      out.push_back(kHex[rune & 0xF]);
      i += size;
      start = i;
      continue;
    }
    i += size;
  }
  flush(text.size());
  out.push_back('"');
}

std::string GoJsonDump(const nlohmann::json& value) {
  std::string out;
  AppendGoJson(out, value);
  return out;
}

std::string NewAuditId() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    // OpenSSL's generator failed (it practically never does); an audit line still needs an id.
    std::random_device device;
    for (unsigned char& b : bytes) b = static_cast<unsigned char>(device());
  }
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0F) | 0x40);  // version 4
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3F) | 0x80);  // RFC 4122 variant
  std::string id;
  id.reserve(36);
  for (size_t i = 0; i < sizeof bytes; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) id.push_back('-');
    id.push_back(kHex[bytes[i] >> 4]);
    id.push_back(kHex[bytes[i] & 0xF]);
  }
  return id;
}

std::string FormatMicros(uint64_t wall_ns) {
  std::tm tm{};
  unsigned micros = 0;
  if (!SplitTime(wall_ns, &tm, &micros)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
  return buf;
}

std::string FormatSeconds(uint64_t wall_ns) {
  std::tm tm{};
  unsigned micros = 0;
  if (!SplitTime(wall_ns, &tm, &micros)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string FormatMkeLine(const audit::AuditRecord& record, const UserFacts& user,
                          const std::string& audit_id, uint64_t now_ns) {
  using nlohmann::json;
  json audit = json::object();
  if (record.incomplete) audit["annotations"] = {{"mke-audit-tap/incomplete", "true"}};
  audit["auditID"] = audit_id;
  audit["kind"] = record.kind;
  audit["level"] = std::string(audit::LevelName(record.level));
  audit["metadata"] = {{"creationTimestamp", nullptr}};
  if (!record.object_ref.empty()) audit["objectRef"] = ObjectRefJson(record.object_ref);
  audit["requestReceivedTimestamp"] = TimeOrNull(record.request_received_ns);
  audit["requestURI"] = record.request_uri;
  if (record.response_code) audit["responseStatus"] = {{"code", *record.response_code}};
  audit["sourceIPs"] = record.source_ips;
  audit["stage"] = std::string(audit::StageName(record.stage));
  const bool stage_known = record.stage != audit::Stage::kRequestReceived && record.stage_ns != 0;
  audit["stageTimestamp"] = stage_known ? TimeOrNull(record.stage_ns) : json(nullptr);
  audit["timestamp"] = audit["stageTimestamp"];
  audit["user"] = {
      {"extra",
       {{"licenseKey", json::array({user.license_key})}, {"username", json::array({user.login})}}},
      {"uid", user.uid},
      {"username", user.username},
  };
  audit["verb"] = record.verb;

  json line = json::object();
  line["audit"] = std::move(audit);
  line["level"] = "info";
  line["msg"] = "audit";
  line["time"] = FormatSeconds(now_ns);
  return GoJsonDump(line);
}

}  // namespace mat::output
