#include "output/mke_line.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "audit/policy.h"
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
// increasing byte-wise.
void ExpectSortedKeys(const nlohmann::ordered_json& value, const std::string& where) {
  if (value.is_object()) {
    std::string previous;
    bool first = true;
    for (const auto& item : value.items()) {
      if (!first) {
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
  const std::string line = FormatMkeLine(record, ReferenceUser(), NewAuditId(), kRefSecondNs);
  const auto parsed = nlohmann::ordered_json::parse(line);
  ExpectSortedKeys(parsed, "line");
  // Every field appears, in this order.
  std::vector<std::string> keys;
  for (const auto& item : parsed["audit"].items()) keys.push_back(item.key());
  const std::vector<std::string> expected = {"annotations",
                                             "auditID",
                                             "kind",
                                             "level",
                                             "metadata",
                                             "objectRef",
                                             "requestReceivedTimestamp",
                                             "requestURI",
                                             "responseStatus",
                                             "sourceIPs",
                                             "stage",
                                             "stageTimestamp",
                                             "timestamp",
                                             "user",
                                             "verb"};
  EXPECT_EQ(keys, expected);
  std::vector<std::string> ref_keys;
  for (const auto& item : parsed["audit"]["objectRef"].items()) ref_keys.push_back(item.key());
  EXPECT_EQ(ref_keys, (std::vector<std::string>{"apiGroup", "apiVersion", "namespace", "resource",
                                                "subresource", "uid"}));
  EXPECT_EQ(line.find('\n'), std::string::npos);
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

TEST(LineSinkTest, VectorSink) {
  VectorLineSink sink;
  sink.Write("one");
  sink.Write("two");
  EXPECT_EQ(sink.lines, (std::vector<std::string>{"one", "two"}));
}

}  // namespace
}  // namespace mat::output
