#include "output/mke_line.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "audit/policy.h"
#include "output/go_json.h"
#include "output/line_sink.h"

namespace mat::output {
namespace {

// 2019-01-30T17:21:45Z
constexpr uint64_t kRefSecondNs = 1548868905ULL * 1'000'000'000ULL;

// Copied verbatim from the MKE documentation ("docker logs ucp-controller --tail 1").
constexpr std::string_view kReferenceLine =
    R"json({"audit":{"auditID":"f8ce4684-cb55-4c88-652c-d2ebd2e9365e","kind":"docker-swarm","level":"metadata","metadata":{"creationTimestamp":null},"requestReceivedTimestamp":"2019-01-30T17:21:45.316157Z","requestURI":"/metricsservice/query?query=(%20(sum%20by%20(instance)%20(ucp_engine_container_memory_usage_bytes%7Bmanager%3D%22true%22%7D))%20%2F%20(sum%20by%20(instance)%20(ucp_engine_memory_total_bytes%7Bmanager%3D%22true%22%7D))%20)%20*%20100\u0026time=2019-01-30T17%3A21%3A45.286Z","sourceIPs":["172.31.45.250:48516"],"stage":"RequestReceived","stageTimestamp":null,"timestamp":null,"user":{"extra":{"licenseKey":["FHy6u1SSg_U_Fbo24yYUmtbH-ixRlwrpEQpdO_ntmkoz"],"username":["admin"]},"uid":"4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a","username":"4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a"},"verb":"GET"},"level":"info","msg":"audit","time":"2019-01-30T17:21:45Z"})json";

constexpr char kReferenceTarget[] =
    "/metricsservice/query?query=(%20(sum%20by%20(instance)%20(ucp_engine_container_memory_"
    "usage_bytes%7Bmanager%3D%22true%22%7D))%20%2F%20(sum%20by%20(instance)%20(ucp_engine_"
    "memory_total_bytes%7Bmanager%3D%22true%22%7D))%20)%20*%20100&time=2019-01-30T17%3A21%3A45."
    "286Z";

UserFacts ReferenceUser() {
  UserFacts user;
  user.uid = "4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a";
  user.username = "4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a";
  user.login = "admin";
  user.license_key = "FHy6u1SSg_U_Fbo24yYUmtbH-ixRlwrpEQpdO_ntmkoz";
  return user;
}

audit::AuditRecord ReferenceRecord() {
  audit::AuditRecord record;
  record.kind = "docker-swarm";
  record.level = audit::Level::kMetadata;
  record.stage = audit::Stage::kRequestReceived;
  record.request_uri = kReferenceTarget;
  record.verb = "GET";
  record.source_ips = {"172.31.45.250:48516"};
  record.request_received_ns = kRefSecondNs + 316'157'999;  // sub-microsecond part truncated
  record.stage_ns = kRefSecondNs + 316'200'000;             // not shown at RequestReceived
  return record;
}

// ---- The reference implementations the direct writer replaced, kept here as test oracles. ----

// The former per-byte escaper (Go 1.19 encoding/json with HTML escaping), verbatim.
size_t RefDecodeUtf8(std::string_view s, char32_t* rune) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  size_t size = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  char32_t value = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    size = 2;
    value = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    size = 3;
    value = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    size = 4;
    value = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
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

std::string RefGoJsonString(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (size_t i = 0; i < text.size();) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {
      ++i;
      if (b >= 0x20 && b != '"' && b != '\\' && b != '&' && b != '<' && b != '>') {
        out.push_back(static_cast<char>(b));
      } else if (b == '"' || b == '\\') {
        out += '\\';
        out.push_back(static_cast<char>(b));
      } else if (b == '\n') {
        out += "\\n";
      } else if (b == '\r') {
        out += "\\r";
      } else if (b == '\t') {
        out += "\\t";
      } else {
        out += "\\u00";
        out.push_back(kHex[b >> 4]);
        out.push_back(kHex[b & 0xF]);
      }
      continue;
    }
    char32_t rune = 0;
    const size_t size = RefDecodeUtf8(text.substr(i), &rune);
    if (size == 0) {
      out += "\\ufffd";
      ++i;
    } else if (rune == 0x2028 || rune == 0x2029) {
      out += rune == 0x2028 ? "\\u2028" : "\\u2029";
      i += size;
    } else {
      out.append(text.substr(i, size));
      i += size;
    }
  }
  out += '"';
  return out;
}

// The former gmtime_r + snprintf time formatting.
std::string RefFormatTime(uint64_t wall_ns, bool with_micros) {
  const auto seconds = static_cast<std::time_t>(wall_ns / 1'000'000'000ULL);
  const auto micros = static_cast<unsigned>((wall_ns % 1'000'000'000ULL) / 1000);
  std::tm tm{};
  if (gmtime_r(&seconds, &tm) == nullptr) return "";
  char buf[64];
  if (with_micros) {
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
  } else {
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  }
  return buf;
}

bool HasObject(const audit::AuditRecord& record) {
  return record.request_object && record.request_object->kind != audit::RequestObject::Kind::kNone;
}

// The requestObject as a tree: kJson parsed (text that does not parse as a string).
nlohmann::json RequestObjectTree(const audit::RequestObject& object) {
  switch (object.kind) {
    case audit::RequestObject::Kind::kJson: {
      nlohmann::json value = nlohmann::json::parse(object.text, nullptr, false);
      if (value.is_discarded()) return object.text;
      return value;
    }
    case audit::RequestObject::Kind::kString:
      return object.text;
    case audit::RequestObject::Kind::kRedacted:
      return std::string(audit::kRedactedMarker);
    case audit::RequestObject::Kind::kNone:
      break;
  }
  return nullptr;
}

// The former FormatMkeLine, extended by the annotations and the requestObject: a JSON tree
// (std::map objects, so keys sorted byte-wise) dumped by GoJsonDump. `with_object`: write the
// requestObject; `uri`: the requestURI written; `extra`: annotations set last (they win).
std::string TreeMkeLine(const audit::AuditRecord& record, const UserFacts& user,
                        const std::string& audit_id, uint64_t now_ns, bool with_object,
                        const std::string& uri, const std::map<std::string, std::string>& extra) {
  using nlohmann::json;
  auto time_or_null = [](uint64_t ns) -> json {
    if (ns == 0) return nullptr;
    return RefFormatTime(ns, true);
  };
  json audit = json::object();
  json annotations = json::object();
  for (const auto& [key, value] : record.annotations) annotations[key] = value;
  if (record.incomplete) annotations["mke-audit-tap/incomplete"] = "true";
  if (HasObject(record) && record.request_object->truncated) {
    annotations["mke-audit-tap/request-object"] = "truncated";
  }
  for (const auto& [key, value] : extra) annotations[key] = value;
  if (!annotations.empty()) audit["annotations"] = annotations;
  audit["auditID"] = audit_id;
  audit["kind"] = record.kind;
  audit["level"] = std::string(audit::LevelName(record.level));
  audit["metadata"] = {{"creationTimestamp", nullptr}};
  if (!record.object_ref.empty()) {
    json object = json::object();
    auto put = [&object](const char* key, const std::string& value) {
      if (!value.empty()) object[key] = value;
    };
    put("apiGroup", record.object_ref.api_group);
    put("apiVersion", record.object_ref.api_version);
    put("namespace", record.object_ref.namespace_);
    put("resource", record.object_ref.resource);
    put("subresource", record.object_ref.subresource);
    put("uid", record.object_ref.uid);
    audit["objectRef"] = object;
  }
  if (with_object && HasObject(record)) {
    audit["requestObject"] = RequestObjectTree(*record.request_object);
  }
  audit["requestReceivedTimestamp"] = time_or_null(record.request_received_ns);
  audit["requestURI"] = uri;
  if (record.response_code) audit["responseStatus"] = {{"code", *record.response_code}};
  audit["sourceIPs"] = record.source_ips;
  audit["stage"] = std::string(audit::StageName(record.stage));
  const bool stage_known = record.stage != audit::Stage::kRequestReceived && record.stage_ns != 0;
  audit["stageTimestamp"] = stage_known ? time_or_null(record.stage_ns) : json(nullptr);
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
  line["time"] = RefFormatTime(now_ns, false);
  return GoJsonDump(line);
}

// The cap rule by brute force over trees: drop the requestObject, then binary-search the longest
// URI prefix (cut between the units the Go decoder sees) whose dumped line fits. Does not model
// the last step (cutting the other fields): returns "" where that would be needed.
template <typename Tree>
std::string ApplyCap(const audit::AuditRecord& record, size_t max_line_bytes, Tree tree) {
  const size_t cap = max_line_bytes == 0 ? 0 : std::max<size_t>(max_line_bytes, kMinLineBytes);
  std::map<std::string, std::string> extra;
  std::string line = tree(HasObject(record), record.request_uri, extra);
  if (cap == 0 || line.size() <= cap) return line;
  if (HasObject(record)) {
    extra["mke-audit-tap/request-object"] = "dropped: line over " + std::to_string(cap) + " bytes";
    line = tree(false, record.request_uri, extra);
    if (line.size() <= cap) return line;
  }
  extra["mke-audit-tap/request-uri"] = "truncated";
  const std::string& uri = record.request_uri;
  std::vector<size_t> cuts = {0};
  for (size_t i = 0; i < uri.size();) {
    char32_t rune = 0;
    const size_t size = static_cast<unsigned char>(uri[i]) < 0x80
                            ? 1
                            : RefDecodeUtf8(std::string_view(uri).substr(i), &rune);
    i += size == 0 ? 1 : size;
    cuts.push_back(i);
  }
  if (tree(false, "", extra).size() > cap) return "";
  size_t lo = 0, hi = cuts.size() - 1;  // cuts[lo] fits; find the last that does
  while (lo < hi) {
    const size_t mid = (lo + hi + 1) / 2;
    if (tree(false, uri.substr(0, cuts[mid]), extra).size() <= cap) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return tree(false, uri.substr(0, cuts[lo]), extra);
}

std::string TreeFormatMkeLine(const audit::AuditRecord& record, const UserFacts& user,
                              const std::string& audit_id, uint64_t now_ns,
                              size_t max_line_bytes = LineOptions{}.max_line_bytes) {
  return ApplyCap(record, max_line_bytes,
                  [&](bool with_object, const std::string& uri,
                      const std::map<std::string, std::string>& extra) {
                    return TreeMkeLine(record, user, audit_id, now_ns, with_object, uri, extra);
                  });
}

// Strings that exercise the escaper: plain runs of all lengths, every kind of escape, valid and
// invalid UTF-8, U+2028/9, truncated sequences.
class TextGen {
 public:
  explicit TextGen(uint32_t seed) : rng_(seed) {}

  uint64_t Below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  bool OneIn(uint64_t n) { return Below(n) == 0; }

  std::string Text(size_t max_pieces) {
    static const std::vector<std::string> kPieces = {
        "a",
        "/api/v1/namespaces/default/pods",
        "?limit=500",
        "%20",
        " ",
        "x=1",
        "&",
        "<",
        ">",
        "\"",
        "\\",
        "\n",
        "\r",
        "\t",
        "\b",
        "\f",
        std::string(1, '\0'),
        "\x01",
        "\x1f",
        "\x7f",
        "~",
        "=",
        "?",
        "\xc3\xa9",
        "\xe2\x80\xa8",
        "\xe2\x80\xa9",
        "\xe2\x80\xa7",
        "\xf0\x9f\x98\x80",
        "\xef\xbf\xbd",
        "\xff",
        "\x80",
        "\xc0\x80",
        "\xe2\x82",
        "\xed\xa0\x80",
        "\xf4\x90\x80\x80",
        "\xf4\x8f\xbf\xbf",
        "\xf5",
        "\xe0\x80\xaf",
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_.:/"};
    std::string text;
    const size_t pieces = Below(max_pieces + 1);
    for (size_t i = 0; i < pieces; ++i) {
      if (OneIn(8)) {
        text.push_back(static_cast<char>(Below(256)));  // any byte at all
      } else {
        text += kPieces[Below(kPieces.size())];
      }
    }
    return text;
  }

  // A wall-clock time: unknown (0), near now, or anywhere in the uint64_t range.
  uint64_t Time() {
    switch (Below(5)) {
      case 0:
        return 0;
      case 1:
        return Below(UINT64_MAX);
      case 2:
        return Below(4'000'000'000ULL);  // the first seconds after the epoch
      default:
        return 1'548'868'905ULL * 1'000'000'000ULL + Below(400'000'000ULL * 1'000'000'000ULL);
    }
  }

 private:
  std::mt19937_64 rng_;
};

// A random JSON value: keys in random order (ordered_json keeps insertion order), every kind of
// value, strings with escapes and (replaced) invalid UTF-8.
nlohmann::ordered_json RandomJson(TextGen& gen, int depth) {
  switch (gen.Below(depth > 0 ? 9 : 7)) {
    case 0:
      return nullptr;
    case 1:
      return gen.OneIn(2);
    case 2:
      return static_cast<int64_t>(gen.Below(UINT64_MAX));  // any int64_t (C++20: modular)
    case 3: {
      static const std::vector<double> kFloats = {0.1, 1e21, 1e-7, 3.5, -2.25, 123456789.0, 1e300};
      return kFloats[gen.Below(kFloats.size())];
    }
    case 4:
      return gen.Below(UINT64_MAX);
    case 5:
    case 6:
      return gen.Text(6);
    case 7: {
      nlohmann::ordered_json array = nlohmann::ordered_json::array();
      const size_t n = gen.Below(5);
      for (size_t i = 0; i < n; ++i) array.push_back(RandomJson(gen, depth - 1));
      return array;
    }
    default: {
      nlohmann::ordered_json object = nlohmann::ordered_json::object();
      const size_t n = gen.Below(6);
      for (size_t i = 0; i < n; ++i) object[gen.Text(2)] = RandomJson(gen, depth - 1);
      return object;
    }
  }
}

std::string RandomJsonText(TextGen& gen, int depth) {
  nlohmann::ordered_json value = RandomJson(gen, depth);
  if (gen.OneIn(10)) {  // a big one, for the line cap
    nlohmann::ordered_json big = nlohmann::ordered_json::array();
    for (int i = 0; i < 300; ++i) big.push_back(gen.Text(20));
    value = nlohmann::ordered_json{{"Big", big}, {"Alpha", value}};
  }
  return value.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

audit::AuditRecord RandomRecord(TextGen& gen) {
  static const std::vector<std::optional<int>> kCodes = {
      std::nullopt, 0, 101, 200, 201, 304, 403, 404, 500, -1, INT_MIN, INT_MAX};
  audit::AuditRecord record;
  record.kind = gen.OneIn(4) ? gen.Text(3) : gen.OneIn(2) ? "kubernetes" : "docker-swarm";
  record.level = static_cast<audit::Level>(gen.Below(3));
  record.stage = static_cast<audit::Stage>(gen.Below(3));
  record.request_uri = gen.OneIn(20) ? gen.Text(400) : gen.Text(30);
  record.verb = gen.OneIn(4) ? gen.Text(3) : gen.OneIn(2) ? "GET" : "list";
  const size_t ips = gen.Below(4);
  for (size_t i = 0; i < ips; ++i) {
    record.source_ips.push_back(gen.OneIn(3) ? gen.Text(4) : "[fe80::1%eth0]:443");
  }
  record.request_received_ns = gen.Time();
  record.stage_ns = gen.Time();
  record.response_code = kCodes[gen.Below(kCodes.size())];
  for (std::string* field :
       {&record.object_ref.api_group, &record.object_ref.api_version, &record.object_ref.namespace_,
        &record.object_ref.resource, &record.object_ref.subresource, &record.object_ref.uid}) {
    if (gen.OneIn(2)) *field = gen.Text(4);
  }
  record.incomplete = gen.OneIn(2);
  const size_t annotations = gen.OneIn(2) ? 0 : gen.Below(4);
  for (size_t i = 0; i < annotations; ++i) {
    static const std::vector<std::string> kKeys = {"mke-audit-tap/incomplete",
                                                   "mke-audit-tap/request-object",
                                                   "mke-audit-tap/redacted",
                                                   "mke-audit-tap/request-uri",
                                                   "a",
                                                   "zz"};
    record.annotations[gen.OneIn(2) ? kKeys[gen.Below(kKeys.size())] : gen.Text(3)] = gen.Text(3);
  }
  switch (gen.Below(6)) {
    case 0:
      break;  // none
    case 1:
      record.request_object = audit::RequestObject{audit::RequestObject::Kind::kNone, "", false};
      break;
    case 2:
      record.request_object = audit::RequestObject{audit::RequestObject::Kind::kString,
                                                   gen.Text(gen.OneIn(5) ? 2000 : 20), false};
      break;
    case 3:
      record.request_object =
          audit::RequestObject{audit::RequestObject::Kind::kRedacted, "", false};
      break;
    default: {
      audit::RequestObject object;
      object.kind = audit::RequestObject::Kind::kJson;
      object.text = gen.OneIn(20) ? gen.Text(5) : RandomJsonText(gen, gen.OneIn(5) ? 4 : 2);
      record.request_object = object;
    }
  }
  if (record.request_object) record.request_object->truncated = gen.OneIn(3);
  record.user_agent = gen.OneIn(2) ? "" : gen.Text(4);
  return record;
}

UserFacts RandomUser(TextGen& gen) {
  UserFacts user;
  user.uid = gen.Text(4);
  user.username = gen.Text(4);
  user.login = gen.Text(4);
  user.license_key = gen.Text(4);
  return user;
}

std::string AuditValue(const std::string& line, const char* key) {
  return nlohmann::json::parse(line)["audit"][key].dump();
}

TEST(MkeLineTest, ReferenceLineByteForByte) {
  const std::string line =
      FormatMkeLine(ReferenceRecord(), ReferenceUser(), "f8ce4684-cb55-4c88-652c-d2ebd2e9365e",
                    kRefSecondNs + 900'000'000);
  EXPECT_EQ(line, kReferenceLine);
}

TEST(MkeLineTest, ReferenceLineThroughThePolicy) {
  http::HttpExchange exchange;
  exchange.request.method = "GET";
  exchange.request.target = kReferenceTarget;
  exchange.request.first_byte_ns = kRefSecondNs + 316'000'000;
  exchange.request.headers_done_ns = kRefSecondNs + 316'157'000;
  audit::RequestContext context;
  context.source = "172.31.45.250:48516";
  context.stage_time_ns = kRefSecondNs + 316'157'000;
  const audit::AuditPolicy policy(audit::PolicyConfig{});
  const auto record = policy.Decide(exchange, audit::Stage::kRequestReceived, context);
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(
      FormatMkeLine(*record, ReferenceUser(), "f8ce4684-cb55-4c88-652c-d2ebd2e9365e", kRefSecondNs),
      kReferenceLine);
}

TEST(MkeLineTest, ResponseCompleteLine) {
  audit::AuditRecord record = ReferenceRecord();
  record.stage = audit::Stage::kResponseComplete;
  record.response_code = 403;
  const std::string line = FormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs);
  EXPECT_EQ(AuditValue(line, "stage"), R"("ResponseComplete")");
  EXPECT_EQ(AuditValue(line, "responseStatus"), R"({"code":403})");
  EXPECT_EQ(AuditValue(line, "stageTimestamp"), R"("2019-01-30T17:21:45.316200Z")");
  EXPECT_EQ(AuditValue(line, "timestamp"), R"("2019-01-30T17:21:45.316200Z")");
  EXPECT_NE(line.find(R"("requestURI":"/metricsservice/query?query=)"), std::string::npos);
  EXPECT_NE(line.find(R"("responseStatus":{"code":403},"sourceIPs")"), std::string::npos);
  EXPECT_EQ(line.find("annotations"), std::string::npos);
  EXPECT_EQ(line.find("objectRef"), std::string::npos);
}

TEST(MkeLineTest, UnknownTimesAreNull) {
  audit::AuditRecord record = ReferenceRecord();
  record.stage = audit::Stage::kResponseComplete;
  record.request_received_ns = 0;
  record.stage_ns = 0;
  record.source_ips.clear();
  const std::string line = FormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs);
  EXPECT_EQ(AuditValue(line, "requestReceivedTimestamp"), "null");
  EXPECT_EQ(AuditValue(line, "stageTimestamp"), "null");
  EXPECT_EQ(AuditValue(line, "timestamp"), "null");
  EXPECT_EQ(AuditValue(line, "responseStatus"), "null");  // absent
  EXPECT_NE(line.find(R"("sourceIPs":[],)"), std::string::npos);
}

TEST(MkeLineTest, ObjectRefAndAnnotations) {
  audit::AuditRecord record = ReferenceRecord();
  record.kind = "kubernetes";
  record.level = audit::Level::kRequest;
  record.object_ref.resource = "pods";
  record.object_ref.namespace_ = "default";
  record.object_ref.api_version = "v1";
  record.object_ref.uid = "0b7d-uid";
  record.incomplete = true;
  const std::string line = FormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs);
  EXPECT_NE(line.find(R"({"audit":{"annotations":{"mke-audit-tap/incomplete":"true"},"auditID")"),
            std::string::npos)
      << line;
  EXPECT_NE(
      line.find(
          R"("objectRef":{"apiVersion":"v1","namespace":"default","resource":"pods","uid":"0b7d-uid"},"requestReceivedTimestamp")"),
      std::string::npos)
      << line;
  EXPECT_NE(line.find(R"("kind":"kubernetes","level":"request",)"), std::string::npos);
}

// Fails unless the keys of every object in `value` (parsed in document order) are strictly
// increasing byte-wise. Keys that held invalid UTF-8 are sorted by their raw bytes (as Go does)
// but read back with U+FFFD in their place, so pairs with a U+FFFD are not compared.
void ExpectSortedKeys(const nlohmann::ordered_json& value, const std::string& where) {
  if (value.is_object()) {
    std::string previous;
    bool first = true;
    for (const auto& item : value.items()) {
      const auto replaced = [](const std::string& key) {
        return key.find("\xef\xbf\xbd") != std::string::npos;
      };
      if (!first && !replaced(previous) && !replaced(item.key())) {
        EXPECT_LT(previous, item.key()) << "in " << where;
      }
      previous = item.key();
      first = false;
      ExpectSortedKeys(item.value(), where + "." + item.key());
    }
  } else if (value.is_array()) {
    for (const auto& item : value) ExpectSortedKeys(item, where + "[]");
  }
}

TEST(MkeLineTest, KeysSortedAtEveryLevel) {
  audit::AuditRecord record = ReferenceRecord();
  record.stage = audit::Stage::kResponseComplete;
  record.response_code = 201;
  record.object_ref.api_group = "apps";
  record.object_ref.api_version = "v1";
  record.object_ref.namespace_ = "ns";
  record.object_ref.resource = "deployments";
  record.object_ref.subresource = "scale";
  record.object_ref.uid = "u";
  record.incomplete = true;
  record.request_object = audit::RequestObject{
      audit::RequestObject::Kind::kJson, R"({"z":{"y":1,"x":[{"b":1,"a":2}]},"m":"<"})", false};
  const std::string line = FormatMkeLine(record, ReferenceUser(), NewAuditId(), kRefSecondNs);
  const auto parsed = nlohmann::ordered_json::parse(line);
  ExpectSortedKeys(parsed, "line");
  // Every field appears, in this order.
  std::vector<std::string> keys;
  for (const auto& item : parsed["audit"].items()) keys.push_back(item.key());
  const std::vector<std::string> expected = {
      "annotations",    "auditID",        "kind",          "level",
      "metadata",       "objectRef",      "requestObject", "requestReceivedTimestamp",
      "requestURI",     "responseStatus", "sourceIPs",     "stage",
      "stageTimestamp", "timestamp",      "user",          "verb"};
  EXPECT_EQ(keys, expected);
  std::vector<std::string> ref_keys;
  for (const auto& item : parsed["audit"]["objectRef"].items()) ref_keys.push_back(item.key());
  EXPECT_EQ(ref_keys, (std::vector<std::string>{"apiGroup", "apiVersion", "namespace", "resource",
                                                "subresource", "uid"}));
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

// The direct writer against the tree-based oracle, for hand-picked records.
TEST(MkeLineTest, MatchesTreeBasedLineForATable) {
  using Edit = void (*)(audit::AuditRecord&, UserFacts&);
  const std::vector<std::pair<const char*, Edit>> edits = {
      {"reference", [](audit::AuditRecord&, UserFacts&) {}},
      {"response complete",
       [](audit::AuditRecord& r, UserFacts&) {
         r.stage = audit::Stage::kResponseComplete;
         r.response_code = 200;
       }},
      {"response started, code 0",
       [](audit::AuditRecord& r, UserFacts&) {
         r.stage = audit::Stage::kResponseStarted;
         r.response_code = 0;
       }},
      {"negative code", [](audit::AuditRecord& r, UserFacts&) { r.response_code = INT_MIN; }},
      {"unknown times",
       [](audit::AuditRecord& r, UserFacts&) {
         r.stage = audit::Stage::kResponseComplete;
         r.request_received_ns = 0;
         r.stage_ns = 0;
       }},
      {"stage time only",
       [](audit::AuditRecord& r, UserFacts&) {
         r.stage = audit::Stage::kResponseComplete;
         r.request_received_ns = 0;
       }},
      {"level none, no source",
       [](audit::AuditRecord& r, UserFacts&) {
         r.level = audit::Level::kNone;
         r.source_ips.clear();
       }},
      {"three sources",
       [](audit::AuditRecord& r, UserFacts&) {
         r.source_ips = {"10.0.0.1:1", "[::1]:443", "a&b"};
       }},
      {"every objectRef field",
       [](audit::AuditRecord& r, UserFacts&) {
         r.kind = "kubernetes";
         r.level = audit::Level::kRequest;
         r.object_ref = {"pods", "kube-system", "apps", "v1", "log", "uid-1"};
         r.incomplete = true;
       }},
      {"objectRef uid only", [](audit::AuditRecord& r, UserFacts&) { r.object_ref.uid = "u<1>"; }},
      {"objectRef apiGroup only",
       [](audit::AuditRecord& r, UserFacts&) { r.object_ref.api_group = "rbac"; }},
      {"incomplete only", [](audit::AuditRecord& r, UserFacts&) { r.incomplete = true; }},
      {"escapes everywhere",
       [](audit::AuditRecord& r, UserFacts& u) {
         r.request_uri = "/x?a=<b>&c=\xe2\x80\xa8\x01\n\xff\"\\\t\x7f caf\xc3\xa9";
         r.verb = "G\"T";
         r.kind = "k\xe2\x80\xa9";
         u.login = "ad<min>";
         u.license_key = std::string("nul\0byte", 8);
         u.uid = "\xf0\x9f\x98\x80";
         u.username = "\xed\xa0\x80";
       }},
      {"empty strings",
       [](audit::AuditRecord& r, UserFacts& u) {
         r.kind.clear();
         r.request_uri.clear();
         r.verb.clear();
         u = UserFacts{};
       }},
      {"long URI (beyond the reserved size)",
       [](audit::AuditRecord& r, UserFacts&) {
         r.request_uri.clear();
         for (int i = 0; i < 500; ++i) r.request_uri += "&<>\xff";
       }},
      {"last representable time",
       [](audit::AuditRecord& r, UserFacts&) {
         r.stage = audit::Stage::kResponseComplete;
         r.request_received_ns = UINT64_MAX;
         r.stage_ns = UINT64_MAX - 1;
       }},
      {"annotations merged with incomplete",
       [](audit::AuditRecord& r, UserFacts&) {
         r.incomplete = true;
         r.annotations = {{"mke-audit-tap/incomplete", "false"},
                          {"mke-audit-tap/redacted", "true"},
                          {"A<", "&"},
                          {"\xff", "\xe2\x80\xa8"}};
       }},
      {"requestObject JSON",
       [](audit::AuditRecord& r, UserFacts&) {
         r.level = audit::Level::kRequest;
         r.request_object = audit::RequestObject{
             audit::RequestObject::Kind::kJson,
             R"({"b":[1,2.5,-3,1e21,1e-7,true,null],"a":{"d":"<&>","c":"\u2028"},"":{}})", false};
       }},
      {"requestObject JSON scalar",
       [](audit::AuditRecord& r, UserFacts&) {
         r.request_object =
             audit::RequestObject{audit::RequestObject::Kind::kJson, R"("x")", false};
       }},
      {"requestObject not JSON after all",
       [](audit::AuditRecord& r, UserFacts&) {
         r.request_object = audit::RequestObject{audit::RequestObject::Kind::kJson, "{oops", false};
       }},
      {"requestObject string, truncated",
       [](audit::AuditRecord& r, UserFacts&) {
         r.request_object =
             audit::RequestObject{audit::RequestObject::Kind::kString, "a=1&b=<2>\n", true};
       }},
      {"requestObject redacted",
       [](audit::AuditRecord& r, UserFacts&) {
         r.request_object = audit::RequestObject{audit::RequestObject::Kind::kRedacted, "", false};
       }},
      {"requestObject kNone (absent)",
       [](audit::AuditRecord& r, UserFacts&) {
         r.request_object = audit::RequestObject{audit::RequestObject::Kind::kNone, "x", true};
       }},
      {"requestObject over the cap",
       [](audit::AuditRecord& r, UserFacts&) {
         r.request_object = audit::RequestObject{audit::RequestObject::Kind::kString,
                                                 std::string(20000, '<'), false};
       }},
      {"URI over the cap",
       [](audit::AuditRecord& r, UserFacts&) {
         r.request_uri.clear();
         for (int i = 0; i < 3000; ++i) r.request_uri += "\xe2\x80\xa8\xc3\xa9<";
       }},
      {"epoch + 1 ns",
       [](audit::AuditRecord& r, UserFacts&) {
         r.stage = audit::Stage::kResponseComplete;
         r.request_received_ns = 1;
         r.stage_ns = 999;
       }},
  };
  const std::vector<uint64_t> nows = {0, kRefSecondNs, kRefSecondNs + 999'999'999, UINT64_MAX};
  for (const auto& [name, edit] : edits) {
    audit::AuditRecord record = ReferenceRecord();
    UserFacts user = ReferenceUser();
    edit(record, user);
    for (const uint64_t now : nows) {
      for (const std::string& id : {std::string("f8ce4684-cb55-4c88-652c-d2ebd2e9365e"),
                                    NewAuditId(), std::string("i\"d")}) {
        const std::string line = FormatMkeLine(record, user, id, now);
        EXPECT_EQ(line, TreeFormatMkeLine(record, user, id, now)) << name << ", now " << now;
        ExpectSortedKeys(nlohmann::ordered_json::parse(line), name);
      }
    }
  }
}

// No cap, the default, the minimum, below the minimum, or anything up to twice the default.
size_t RandomCap(TextGen& gen) {
  switch (gen.Below(5)) {
    case 0:
      return 0;
    case 1:
      return LineOptions{}.max_line_bytes;
    case 2:
      return kMinLineBytes;
    case 3:
      return 1 + gen.Below(kMinLineBytes);
    default:
      return kMinLineBytes + gen.Below(2 * LineOptions{}.max_line_bytes);
  }
}

// The same for many random records (with annotations, request objects and line caps); every line
// is also valid JSON with sorted keys.
TEST(MkeLineTest, MatchesTreeBasedLineForRandomRecords) {
  TextGen gen(20190130);
  for (int i = 0; i < 5000; ++i) {
    const audit::AuditRecord record = RandomRecord(gen);
    const UserFacts user = RandomUser(gen);
    const std::string id = gen.OneIn(2) ? NewAuditId() : gen.Text(3);
    const uint64_t now = gen.Time();
    const size_t cap = RandomCap(gen);
    const std::string line = FormatMkeLine(record, user, id, now, LineOptions{cap});
    const std::string tree = TreeFormatMkeLine(record, user, id, now, cap);
    ASSERT_FALSE(tree.empty()) << "record " << i << " needs the last step of the cap";
    ASSERT_EQ(line, tree) << "record " << i << ", cap " << cap;
    if (cap != 0) {
      ASSERT_LE(line.size(), std::max(cap, kMinLineBytes));
    }
    if (cap == LineOptions{}.max_line_bytes) {
      ASSERT_EQ(line, FormatMkeLine(record, user, id, now));
    }
    nlohmann::ordered_json parsed;
    ASSERT_NO_THROW(parsed = nlohmann::ordered_json::parse(line)) << line;
    ExpectSortedKeys(parsed, "random line " + std::to_string(i));
    ASSERT_EQ(line.find('\n'), std::string::npos);
  }
}

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out += kDigits[b >> 4];
    out += kDigits[b & 0xF];
    out += ' ';
  }
  return out;
}

struct EscapeCase {
  std::string input;
  std::string expected;  // the JSON literal, quotes included, as Go 1.19 writes it
};

TEST(MkeLineTest, AnnotationsAndRequestObjectByteForByte) {
  audit::AuditRecord record = ReferenceRecord();
  record.level = audit::Level::kRequest;
  record.stage = audit::Stage::kResponseComplete;
  record.response_code = 201;
  record.verb = "POST";
  record.request_uri = "/v1.41/services/create";
  record.object_ref.uid = "x1y2";
  record.incomplete = true;
  record.annotations = {{"zeta", "<z>"}, {"alpha", "a&b"}};
  record.user_agent = "docker/24.0.7";  // not part of the MKE line
  record.request_object = audit::RequestObject{
      audit::RequestObject::Kind::kJson,
      R"({"Name":"web","Labels":{"b":"2","a":"<1>"},"Replicas":3,"Ratio":0.5,"Env":["A=1"],"Null":null})",
      false};
  const std::string line = FormatMkeLine(record, ReferenceUser(), "id-1", kRefSecondNs);
  EXPECT_EQ(
      line,
      R"({"audit":{"annotations":{"alpha":"a\u0026b","mke-audit-tap/incomplete":"true","zeta":"\u003cz\u003e"},)"
      R"("auditID":"id-1","kind":"docker-swarm","level":"request","metadata":{"creationTimestamp":null},)"
      R"("objectRef":{"uid":"x1y2"},)"
      R"("requestObject":{"Env":["A=1"],"Labels":{"a":"\u003c1\u003e","b":"2"},"Name":"web","Null":null,"Ratio":0.5,"Replicas":3},)"
      R"("requestReceivedTimestamp":"2019-01-30T17:21:45.316157Z","requestURI":"/v1.41/services/create",)"
      R"("responseStatus":{"code":201},"sourceIPs":["172.31.45.250:48516"],"stage":"ResponseComplete",)"
      R"("stageTimestamp":"2019-01-30T17:21:45.316200Z","timestamp":"2019-01-30T17:21:45.316200Z",)"
      R"("user":{"extra":{"licenseKey":["FHy6u1SSg_U_Fbo24yYUmtbH-ixRlwrpEQpdO_ntmkoz"],"username":["admin"]},)"
      R"("uid":"4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a","username":"4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a"},)"
      R"("verb":"POST"},"level":"info","msg":"audit","time":"2019-01-30T17:21:45Z"})");
}

TEST(MkeLineTest, RequestObjectKinds) {
  audit::AuditRecord record = ReferenceRecord();
  record.level = audit::Level::kRequest;
  auto object_of = [&](audit::RequestObject::Kind kind, std::string text, bool truncated) {
    record.request_object = audit::RequestObject{kind, std::move(text), truncated};
    const std::string line = FormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs);
    nlohmann::json parsed;
    EXPECT_NO_THROW(parsed = nlohmann::json::parse(line)) << line;
    return line;
  };
  EXPECT_NE(object_of(audit::RequestObject::Kind::kString, "a=1&b=\xff", false)
                .find(R"(,"requestObject":"a=1\u0026b=\ufffd","requestReceivedTimestamp")"),
            std::string::npos);
  EXPECT_NE(object_of(audit::RequestObject::Kind::kRedacted, "", false)
                .find(R"(,"requestObject":"[REDACTED by mke-audit-tap]","requestReceived)"),
            std::string::npos);
  EXPECT_EQ(object_of(audit::RequestObject::Kind::kNone, "", false).find("requestObject"),
            std::string::npos);
  // kJson text that does not parse is written as the string it is.
  EXPECT_NE(object_of(audit::RequestObject::Kind::kJson, "{\"a\":", false)
                .find(R"(,"requestObject":"{\"a\":","requestReceived)"),
            std::string::npos);
  // A body cut in capture is marked.
  const std::string truncated = object_of(audit::RequestObject::Kind::kString, "abc", true);
  EXPECT_NE(
      truncated.find(
          R"({"audit":{"annotations":{"mke-audit-tap/request-object":"truncated"},"auditID")"),
      std::string::npos)
      << truncated;
  // A record's own annotation gives way to the writer's.
  record.annotations = {{"mke-audit-tap/request-object", "mine"}, {"b", "c"}};
  const std::string merged = object_of(audit::RequestObject::Kind::kString, "abc", true);
  EXPECT_NE(merged.find(R"("annotations":{"b":"c","mke-audit-tap/request-object":"truncated"})"),
            std::string::npos)
      << merged;
}

// The values a cut-down line has for `key` in "audit" ("" when absent) and in its annotations.
std::string AuditString(const nlohmann::json& parsed, const char* key) {
  const auto& audit = parsed["audit"];
  return audit.contains(key) && audit[key].is_string() ? audit[key].get<std::string>() : "";
}
std::string AnnotationOf(const nlohmann::json& parsed, const std::string& key) {
  const auto& audit = parsed["audit"];
  if (!audit.contains("annotations") || !audit["annotations"].contains(key)) return "";
  return audit["annotations"][key].get<std::string>();
}

TEST(LineCapTest, DropsTheRequestObjectFirst) {
  audit::AuditRecord record = ReferenceRecord();
  record.level = audit::Level::kRequest;
  record.request_object =
      audit::RequestObject{audit::RequestObject::Kind::kString, std::string(20000, 'x'), false};
  const std::string line = FormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs);
  EXPECT_LE(line.size(), 16383u);
  const auto parsed = nlohmann::json::parse(line);
  EXPECT_FALSE(parsed["audit"].contains("requestObject"));
  EXPECT_EQ(AnnotationOf(parsed, "mke-audit-tap/request-object"), "dropped: line over 16383 bytes");
  EXPECT_EQ(AnnotationOf(parsed, "mke-audit-tap/request-uri"), "");
  EXPECT_EQ(AuditString(parsed, "requestURI"), kReferenceTarget);
  EXPECT_EQ(line, TreeFormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs));
  // Escapes count: 3000 '<' are 3000 bytes raw but 18000 in the line.
  record.request_object->text = std::string(3000, '<');
  EXPECT_FALSE(
      nlohmann::json::parse(FormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs))["audit"]
          .contains("requestObject"));
  // Unlimited, or just enough room: kept.
  record.request_object->text = std::string(20000, 'x');
  EXPECT_GT(FormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs, LineOptions{0}).size(),
            20000u);
  const size_t full =
      FormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs, LineOptions{0}).size();
  EXPECT_EQ(FormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs, LineOptions{full}).size(),
            full);
  EXPECT_LT(
      FormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs, LineOptions{full - 1}).size(),
      full - 1);
}

TEST(LineCapTest, TruncatesTheUriAtACharacterBoundary) {
  const std::vector<std::pair<const char*, std::string>> units = {
      {"2-byte UTF-8", "\xc3\xa9"},
      {"4-byte UTF-8", "\xf0\x9f\x98\x80"},
      {"escape-heavy <", "<"},
      {"U+2028 (3 bytes, 6 escaped)", "\xe2\x80\xa8"},
      {"invalid byte", "\xff"},
      {"quote", "\""},
      {"mixed", "a<\xc3\xa9\xf0\x9f\x98\x80\xe2\x80\xa8\xff\n&\x01z"},
  };
  for (const auto& [name, unit] : units) {
    audit::AuditRecord record = ReferenceRecord();
    record.request_uri = "/q?";
    while (record.request_uri.size() < 6000) record.request_uri += unit;
    const bool valid_utf8 =
        std::string_view(name) != "invalid byte" && std::string_view(name) != "mixed";
    for (size_t cap = kMinLineBytes; cap < kMinLineBytes + 24; ++cap) {
      for (const bool with_object : {false, true}) {
        if (with_object) {
          record.request_object =
              audit::RequestObject{audit::RequestObject::Kind::kJson, R"({"a":1})", false};
        } else {
          record.request_object.reset();
        }
        const std::string line =
            FormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs, LineOptions{cap});
        ASSERT_LE(line.size(), cap) << name;
        // As long as fits: the next unit (at most 6 bytes escaped) would not have.
        ASSERT_GT(line.size() + 6, cap) << name;
        ASSERT_EQ(line, TreeFormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs, cap))
            << name << ", cap " << cap;
        nlohmann::json parsed;
        ASSERT_NO_THROW(parsed = nlohmann::json::parse(line)) << line;
        ExpectSortedKeys(nlohmann::ordered_json::parse(line), name);
        EXPECT_EQ(AnnotationOf(parsed, "mke-audit-tap/request-uri"), "truncated");
        EXPECT_EQ(AnnotationOf(parsed, "mke-audit-tap/request-object"),
                  with_object ? "dropped: line over " + std::to_string(cap) + " bytes" : "");
        const std::string uri = AuditString(parsed, "requestURI");
        EXPECT_GT(uri.size(), 500u);  // 3,400 escaped bytes at least
        if (valid_utf8) {
          EXPECT_EQ(record.request_uri.substr(0, uri.size()), uri) << name;
          EXPECT_EQ((uri.size() - 3) % unit.size(), 0u) << name;  // whole characters
        }
      }
    }
  }
}

TEST(LineCapTest, CapBelowTheMinimumAndNoCap) {
  audit::AuditRecord record = ReferenceRecord();
  record.request_uri.clear();
  const size_t without_uri =
      FormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs, LineOptions{0}).size();
  record.request_uri = "/" + std::string(100000, 'a');
  EXPECT_EQ(FormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs, LineOptions{0}).size(),
            without_uri + 100001);
  EXPECT_EQ(FormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs, LineOptions{1}).size(),
            kMinLineBytes);
  EXPECT_EQ(FormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs, LineOptions{1}),
            FormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs, LineOptions{kMinLineBytes}));
  EXPECT_EQ(FormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs).size(),
            LineOptions{}.max_line_bytes);
}

// Records whose other fields alone overflow the cap: every string field as long and as
// escape-heavy as can be, many source IPs and annotations.
audit::AuditRecord HugeRecord(UserFacts& user, std::string& id) {
  const std::string huge(5000, '\x01');  // 30000 bytes escaped
  audit::AuditRecord record;
  record.kind = huge;
  record.level = audit::Level::kRequest;
  record.stage = audit::Stage::kResponseComplete;
  record.request_uri = "/" + huge;
  record.verb = huge;
  record.source_ips.assign(1000, huge.substr(0, 100));
  record.request_received_ns = UINT64_MAX;
  record.stage_ns = UINT64_MAX;
  record.response_code = INT_MIN;
  record.object_ref = {huge, huge, huge, huge, huge, huge};
  record.incomplete = true;
  record.request_object = audit::RequestObject{audit::RequestObject::Kind::kString, huge, true};
  for (int i = 0; i < 100; ++i) {
    // 8 + 8 control characters: 96 bytes escaped, the most a kept annotation may have.
    record.annotations[std::string(7, '\x02') + static_cast<char>(0x03 + i % 29) +
                       std::string(i / 29, '\x04')] = std::string(8, '\x05');
    record.annotations[std::to_string(i) + huge] = huge;
  }
  record.user_agent = huge;
  user = UserFacts{huge, huge, huge, huge};
  id = huge;
  return record;
}

TEST(LineCapTest, HugeFieldsStillFit) {
  UserFacts user;
  std::string id;
  const audit::AuditRecord record = HugeRecord(user, id);
  for (const size_t cap : {size_t{1}, kMinLineBytes, kMinLineBytes + 1000, size_t{16384}}) {
    const std::string line = FormatMkeLine(record, user, id, UINT64_MAX, LineOptions{cap});
    ASSERT_LE(line.size(), std::max(cap, kMinLineBytes)) << cap;
    nlohmann::json parsed;
    ASSERT_NO_THROW(parsed = nlohmann::json::parse(line)) << line;
    ExpectSortedKeys(nlohmann::ordered_json::parse(line), "huge");
    EXPECT_EQ(AnnotationOf(parsed, "mke-audit-tap/fields"), "truncated");
    EXPECT_EQ(AnnotationOf(parsed, "mke-audit-tap/request-uri"), "truncated");
    EXPECT_EQ(AnnotationOf(parsed, "mke-audit-tap/incomplete"), "true");
    EXPECT_EQ(parsed["audit"]["sourceIPs"].size(), 1u);
    EXPECT_EQ(parsed["audit"]["annotations"].size(), 8u + 4u);
    // The URI (of 6-byte escapes) still gets room: the cut-down fields leave it 600+ bytes.
    EXPECT_GT(AuditString(parsed, "requestURI").size(), cap <= kMinLineBytes ? 100u : 250u);
  }
  // A URI that fits after all is not marked as cut.
  audit::AuditRecord short_uri = record;
  short_uri.request_uri = "/short";
  const auto parsed = nlohmann::json::parse(FormatMkeLine(short_uri, user, id, 0));
  EXPECT_EQ(AuditString(parsed, "requestURI"), "/short");
  EXPECT_EQ(AnnotationOf(parsed, "mke-audit-tap/request-uri"), "");
  EXPECT_EQ(AnnotationOf(parsed, "mke-audit-tap/fields"), "truncated");
}

// The ends of the units the Go decoder sees in `text` (one byte, or one valid UTF-8 sequence).
std::vector<size_t> UnitEnds(std::string_view text) {
  std::vector<size_t> ends = {0};
  for (size_t i = 0; i < text.size();) {
    char32_t rune = 0;
    const size_t size =
        static_cast<unsigned char>(text[i]) < 0x80 ? 1 : RefDecodeUtf8(text.substr(i), &rune);
    i += size == 0 ? 1 : size;
    ends.push_back(i);
  }
  return ends;
}

// EscapedPrefix: the longest prefix, cut between units, whose escaped size fits the budget.
TEST(LineCapTest, EscapedPrefixMatchesTheEscaper) {
  auto escaped_size = [](std::string_view text) { return RefGoJsonString(text).size() - 2; };
  TextGen gen(99);
  for (int i = 0; i < 3000; ++i) {
    const std::string text = gen.Text(12);
    const std::vector<size_t> ends = UnitEnds(text);
    const size_t full = escaped_size(text);
    ASSERT_EQ(internal::EscapedSize(text), full);
    for (size_t budget = 0; budget <= full + 1; ++budget) {
      size_t prefix_escaped = 0;
      const size_t prefix = internal::EscapedPrefix(text, budget, &prefix_escaped);
      ASSERT_TRUE(std::find(ends.begin(), ends.end(), prefix) != ends.end()) << "inside a unit";
      ASSERT_EQ(escaped_size(std::string_view(text).substr(0, prefix)), prefix_escaped);
      ASSERT_LE(prefix_escaped, budget);
      if (prefix < text.size()) {  // the next unit does not fit
        const size_t next = *std::upper_bound(ends.begin(), ends.end(), prefix);
        ASSERT_GT(escaped_size(std::string_view(text).substr(0, next)), budget);
      }
    }
  }
}

TEST(GoJsonStringTest, MatchesGo119) {
  const std::vector<EscapeCase> cases = {
      {"plain /path?x=1", R"("plain /path?x=1")"},
      {"a&b<c>d", R"("a\u0026b\u003cc\u003ed")"},
      {"q\"b\\s", R"("q\"b\\s")"},
      {"\n\r\t", R"("\n\r\t")"},
      {"\b\f", R"("\u0008\u000c")"},
      {std::string("\x00\x01\x1a\x1f", 4), R"("\u0000\u0001\u001a\u001f")"},
      {"\x7f", "\"\x7f\""},                                 // DEL is written raw
      {"\xe2\x80\xa8|\xe2\x80\xa9", R"("\u2028|\u2029")"},  // U+2028, U+2029
      {"\xe2\x80\xa7", "\"\xe2\x80\xa7\""},                 // U+2027 is raw
      {"caf\xc3\xa9 \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xf0\x9f\x98\x80\""},
      {"\xef\xbf\xbd", "\"\xef\xbf\xbd\""},  // a real U+FFFD stays raw
      {"a\xff"
       "b",
       R"("a\ufffdb")"},
      {"\x80", R"("\ufffd")"},
      {"a\xe2\x82", R"("a\ufffd\ufffd")"},  // truncated: one per byte
      {"\xe2\x82"
       "A",
       R"("\ufffd\ufffdA")"},                                 // bad continuation
      {"\xc0\x80", R"("\ufffd\ufffd")"},                      // overlong NUL
      {"\xe0\x80\xaf", R"("\ufffd\ufffd\ufffd")"},            // overlong '/'
      {"\xed\xa0\x80", R"("\ufffd\ufffd\ufffd")"},            // surrogate U+D800
      {"\xf4\x90\x80\x80", R"("\ufffd\ufffd\ufffd\ufffd")"},  // above U+10FFFF
      {"\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""},           // U+10FFFF is valid
      {"\xf5", R"("\ufffd")"},
      {"", R"("")"},
  };
  for (const EscapeCase& c : cases) {
    std::string out;
    AppendGoJsonString(out, c.input);
    EXPECT_EQ(out, c.expected) << "input bytes: " << Hex(c.input);
  }
}

TEST(GoJsonStringTest, MatchesReferenceEscaper) {
  auto check = [](std::string_view input) {
    std::string out = "prefix";
    AppendGoJsonString(out, input);
    ASSERT_EQ(out, "prefix" + RefGoJsonString(input)) << "input bytes: " << Hex(input);
  };
  // Every string of one and two bytes.
  for (int a = 0; a < 256; ++a) {
    check(std::string(1, static_cast<char>(a)));
    for (int b = 0; b < 256; ++b) check(std::string{static_cast<char>(a), static_cast<char>(b)});
  }
  // Every byte, and a few multi-byte sequences, at every offset of a plain run (so at every
  // position of the 8-byte words the bulk scan reads), followed by plain bytes or nothing.
  std::vector<std::string> odd;
  for (int b = 0; b < 256; ++b) odd.emplace_back(1, static_cast<char>(b));
  for (const char* seq : {"\xe2\x80\xa8", "\xe2\x80\xa9", "\xf0\x9f\x98\x80", "\xe2\x82", "\xc3"}) {
    odd.emplace_back(seq);
  }
  for (const std::string& bytes : odd) {
    for (size_t before = 0; before <= 24; ++before) {
      for (size_t after : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{17}}) {
        check(std::string(before, 'p') + bytes + std::string(after, 'q'));
      }
    }
  }
  TextGen gen(7);
  for (int i = 0; i < 20000; ++i) check(gen.Text(gen.OneIn(10) ? 200 : 12));
}

TEST(GoJsonStringTest, EscapingInsideTheLine) {
  audit::AuditRecord record = ReferenceRecord();
  record.request_uri = "/x?a=<b>&c=\xe2\x80\xa8\x01\n\xff";
  record.verb = "G\"T";
  const std::string line = FormatMkeLine(record, ReferenceUser(), "id", kRefSecondNs);
  EXPECT_NE(line.find(R"("requestURI":"/x?a=\u003cb\u003e\u0026c=\u2028\u0001\n\ufffd")"),
            std::string::npos)
      << line;
  EXPECT_NE(line.find(R"("verb":"G\"T"})"), std::string::npos) << line;
  // The result is valid JSON that round-trips the valid parts.
  const auto parsed = nlohmann::json::parse(line);
  EXPECT_EQ(parsed["audit"]["verb"], "G\"T");
}

TEST(GoJsonDumpTest, ValuesAndKeys) {
  nlohmann::json value = {
      {"b<", {1, -2, 3.5, true, false, nullptr}},
      {"a", {{"z", "&"}, {"y", nlohmann::json::object()}, {"x", nlohmann::json::array()}}},
      {"f", {1.0, 0.1, 1e21, 1e-7, 123456789.0, -0.0000005, 0.0}},
      {"u", 18446744073709551615ULL},
  };
  EXPECT_EQ(GoJsonDump(value),
            R"({"a":{"x":[],"y":{},"z":"\u0026"},"b\u003c":[1,-2,3.5,true,false,null],)"
            R"("f":[1,0.1,1e+21,1e-7,123456789,-5e-7,0],"u":18446744073709551615})");
}

TEST(AuditIdTest, FormatAndUniqueness) {
  const std::regex v4("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = NewAuditId();
    ASSERT_TRUE(std::regex_match(id, v4)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(AuditIdTest, UniqueAcrossThreads) {
  constexpr int kThreads = 4, kIds = 2000;  // several refills of each thread's pool
  std::vector<std::vector<std::string>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&ids, t] {
      for (int i = 0; i < kIds; ++i) ids[t].push_back(NewAuditId());
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::set<std::string> seen;
  for (const auto& list : ids) seen.insert(list.begin(), list.end());
  EXPECT_EQ(seen.size(), static_cast<size_t>(kThreads * kIds));
}

TEST(AuditIdTest, ForkedChildDoesNotRepeatTheParentsIds) {
  NewAuditId();  // the pool is filled and holds unused bytes
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string id = NewAuditId();
    const bool ok = write(fds[1], id.data(), id.size()) == static_cast<ssize_t>(id.size());
    _exit(ok ? 0 : 1);
  }
  close(fds[1]);
  const std::string parent_id = NewAuditId();
  char buf[64];
  const ssize_t n = read(fds[0], buf, sizeof buf);
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(n, 36);
  EXPECT_NE(std::string(buf, 36), parent_id);
}

TEST(TimeFormatTest, Table) {
  struct Case {
    uint64_t ns;
    const char* micros;
    const char* seconds;
  };
  const std::vector<Case> cases = {
      {kRefSecondNs, "2019-01-30T17:21:45.000000Z", "2019-01-30T17:21:45Z"},
      {kRefSecondNs + 316'157'000, "2019-01-30T17:21:45.316157Z", "2019-01-30T17:21:45Z"},
      {kRefSecondNs + 999'999'999, "2019-01-30T17:21:45.999999Z", "2019-01-30T17:21:45Z"},
      {kRefSecondNs + 1'999, "2019-01-30T17:21:45.000001Z", "2019-01-30T17:21:45Z"},
      {kRefSecondNs + 999, "2019-01-30T17:21:45.000000Z", "2019-01-30T17:21:45Z"},
      {kRefSecondNs + 50'000, "2019-01-30T17:21:45.000050Z", "2019-01-30T17:21:45Z"},
      {0, "1970-01-01T00:00:00.000000Z", "1970-01-01T00:00:00Z"},
      {951'782'400ULL * 1'000'000'000ULL + 7'000, "2000-02-29T00:00:00.000007Z",
       "2000-02-29T00:00:00Z"},
      {1'704'067'199ULL * 1'000'000'000ULL + 999'999'000, "2023-12-31T23:59:59.999999Z",
       "2023-12-31T23:59:59Z"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(FormatMicros(c.ns), c.micros) << c.ns;
    EXPECT_EQ(FormatSeconds(c.ns), c.seconds) << c.ns;
  }
}

TEST(TimeFormatTest, MatchesGmtime) {
  std::vector<uint64_t> times = {
      0, 1, 999, 1'000, 999'999'999, 1'000'000'000, UINT64_MAX, UINT64_MAX - 999'999'999};
  // Around every New Year's Day, 1 March and 31 December from 1970 to the last one in range.
  for (int year = 1970; year <= 2554; ++year) {
    for (const auto& [month, day] : {std::pair{1, 1}, std::pair{3, 1}, std::pair{12, 31}}) {
      std::tm tm{};
      tm.tm_year = year - 1900;
      tm.tm_mon = month - 1;
      tm.tm_mday = day;
      const auto second = static_cast<uint64_t>(timegm(&tm));
      for (const int64_t delta : {-86'400, -1, 0, 1}) {
        const uint64_t ns = (second + static_cast<uint64_t>(delta)) * 1'000'000'000ULL + 123'456;
        if (ns / 1'000'000'000ULL == second + static_cast<uint64_t>(delta)) times.push_back(ns);
      }
    }
  }
  TextGen gen(42);
  for (int i = 0; i < 20000; ++i) times.push_back(gen.Time());
  for (const uint64_t ns : times) {
    EXPECT_EQ(FormatMicros(ns), RefFormatTime(ns, true)) << ns;
    EXPECT_EQ(FormatSeconds(ns), RefFormatTime(ns, false)) << ns;
  }
}

TEST(LineSinkTest, FileSinkWritesOneLinePerCall) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  FileLineSink sink(file);
  sink.Write("{\"a\":1}");
  sink.Write("");
  sink.Write("second");
  sink.Flush();
  std::rewind(file);
  std::string content;
  char buf[256];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, file)) > 0) content.append(buf, n);
  std::fclose(file);
  EXPECT_EQ(content, "{\"a\":1}\n\nsecond\n");
}

// Batches: every line whole and in order across the automatic flushes (a line is never split
// between two writes' worth of batches), all counted; a stream that cannot be written loses its
// lines, and they are counted as lost, never as written.
TEST(LineSinkTest, FileSinkBatchesWholeLinesAndCountsLostOnes) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  std::string expected;
  {
    FileLineSink sink(file);
    for (int i = 0; i < 3000; ++i) {
      const std::string line = std::to_string(i) + std::string(97 + (i * 131) % 3000, 'x');
      sink.Write(line);
      expected += line + "\n";
    }
    EXPECT_GT(sink.lines_written(), 0u);  // flushed on the way, at kBatchBytes
    sink.Flush();
    EXPECT_EQ(sink.lines_written(), 3000u);
    EXPECT_EQ(sink.lines_lost(), 0u);
  }
  std::rewind(file);
  std::string content;
  char buf[65536];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, file)) > 0) content.append(buf, n);
  std::fclose(file);
  EXPECT_TRUE(content == expected);

  std::FILE* read_only = std::fopen("/dev/null", "r");
  ASSERT_NE(read_only, nullptr);
  FileLineSink broken(read_only);
  broken.Write("one");
  broken.Write("two");
  broken.Flush();
  EXPECT_EQ(broken.lines_written(), 0u);
  EXPECT_EQ(broken.lines_lost(), 2u);
  EXPECT_EQ(broken.last_error(), EBADF);
  broken.Write("three");
  broken.Flush();
  EXPECT_EQ(broken.lines_lost(), 3u);
  std::fclose(read_only);
}

TEST(LineSinkTest, VectorSink) {
  VectorLineSink sink;
  sink.Write("one");
  sink.Write("two");
  EXPECT_EQ(sink.lines, (std::vector<std::string>{"one", "two"}));
}

}  // namespace
}  // namespace mat::output
