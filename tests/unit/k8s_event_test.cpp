#include "output/k8s_event.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "audit/payload.h"
#include "audit/policy.h"
#include "output/go_json.h"
#include "output/mke_line.h"

namespace mat::output {
namespace {

// 2019-01-30T17:21:45Z
constexpr uint64_t kRefSecondNs = 1548868905ULL * 1'000'000'000ULL;

constexpr std::string_view kUserJson =
    R"("user":{"username":"4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a",)"
    R"("uid":"4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a",)"
    R"("extra":{"licenseKey":["FHy6u1SSg_U_Fbo24yYUmtbH-ixRlwrpEQpdO_ntmkoz"],"username":["admin"]}})";

UserFacts ReferenceUser() {
  UserFacts user;
  user.uid = "4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a";
  user.username = "4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a";
  user.login = "admin";
  user.license_key = "FHy6u1SSg_U_Fbo24yYUmtbH-ixRlwrpEQpdO_ntmkoz";
  return user;
}

// kubectl get pods -n default, as the policy describes it.
audit::AuditRecord KubernetesList() {
  audit::AuditRecord record;
  record.kind = "kubernetes";
  record.level = audit::Level::kMetadata;
  record.stage = audit::Stage::kResponseComplete;
  record.request_uri = "/api/v1/namespaces/default/pods?limit=500";
  record.verb = "list";
  record.source_ips = {"10.0.0.5:51234"};
  record.request_received_ns = kRefSecondNs + 316'157'999;
  record.stage_ns = kRefSecondNs + 318'200'000;
  record.response_code = 200;
  record.object_ref.resource = "pods";
  record.object_ref.namespace_ = "default";
  record.object_ref.api_version = "v1";
  record.user_agent = "kubectl/v1.27.4 (linux/amd64) kubernetes/fa3d799";
  return record;
}

// docker service create, at request level.
audit::AuditRecord DockerServiceCreate() {
  audit::AuditRecord record;
  record.kind = "docker-swarm";
  record.level = audit::Level::kRequest;
  record.stage = audit::Stage::kResponseComplete;
  record.request_uri = "/v1.41/services/create";
  record.verb = "POST";
  record.source_ips = {"[::1]:40000"};
  record.request_received_ns = kRefSecondNs + 316'157'000;
  record.stage_ns = kRefSecondNs + 318'200'000;
  record.response_code = 201;
  record.object_ref.uid = "x1y2";
  record.request_object = audit::RequestObject{
      audit::RequestObject::Kind::kJson,
      R"({"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"nginx:1.25"}},"Labels":{"a&b":"<x>"}})",
      false};
  record.user_agent = "Docker-Client/24.0.7 (linux)";
  return record;
}

TEST(K8sEventTest, KubernetesListByteForByte) {
  const std::string line =
      FormatK8sEvent(KubernetesList(), ReferenceUser(), "f8ce4684-cb55-4c88-652c-d2ebd2e9365e");
  EXPECT_EQ(
      line,
      std::string(R"({"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata",)"
                  R"("auditID":"f8ce4684-cb55-4c88-652c-d2ebd2e9365e","stage":"ResponseComplete",)"
                  R"("requestURI":"/api/v1/namespaces/default/pods?limit=500","verb":"list",)") +
          std::string(kUserJson) +
          R"(,"sourceIPs":["10.0.0.5"],)"
          R"("userAgent":"kubectl/v1.27.4 (linux/amd64) kubernetes/fa3d799",)"
          R"("objectRef":{"resource":"pods","namespace":"default","apiVersion":"v1"},)"
          R"("responseStatus":{"metadata":{},"code":200},)"
          R"("requestReceivedTimestamp":"2019-01-30T17:21:45.316157Z",)"
          R"("stageTimestamp":"2019-01-30T17:21:45.318200Z"})");
}

TEST(K8sEventTest, DockerPostByteForByte) {
  audit::AuditRecord record = DockerServiceCreate();
  record.incomplete = true;
  const std::string line = FormatK8sEvent(record, ReferenceUser(), "id-2");
  EXPECT_EQ(line, std::string(R"({"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request",)"
                              R"("auditID":"id-2","stage":"ResponseComplete",)"
                              R"("requestURI":"/v1.41/services/create","verb":"post",)") +
                      std::string(kUserJson) +
                      R"j(,"sourceIPs":["::1"],"userAgent":"Docker-Client/24.0.7 (linux)",)j"
                      R"("objectRef":{"uid":"x1y2"},"responseStatus":{"metadata":{},"code":201},)"
                      R"("requestObject":{"Labels":{"a\u0026b":"\u003cx\u003e"},"Name":"web",)"
                      R"("TaskTemplate":{"ContainerSpec":{"Image":"nginx:1.25"}}},)"
                      R"("requestReceivedTimestamp":"2019-01-30T17:21:45.316157Z",)"
                      R"("stageTimestamp":"2019-01-30T17:21:45.318200Z",)"
                      R"("annotations":{"mke-audit-tap/incomplete":"true"}})");
}

// The text from "requestObject" up to "requestReceivedTimestamp".
std::string RequestObjectPart(const audit::AuditRecord& record) {
  const std::string line = FormatK8sEvent(record, ReferenceUser(), "id");
  nlohmann::json parsed;
  EXPECT_NO_THROW(parsed = nlohmann::json::parse(line)) << line;
  const size_t begin = line.find(R"("requestObject":)");
  if (begin == std::string::npos) return "";
  return line.substr(begin, line.find(R"(,"requestReceivedTimestamp")") - begin);
}

TEST(K8sEventTest, RequestObjectKinds) {
  audit::AuditRecord record = DockerServiceCreate();
  record.request_object = audit::RequestObject{
      audit::RequestObject::Kind::kJson, R"({"b":[1,2.5,1e21,true,null],"a":"\u2028"})", false};
  EXPECT_EQ(RequestObjectPart(record),
            R"("requestObject":{"a":"\u2028","b":[1,2.5,1e+21,true,null]})");
  record.request_object =
      audit::RequestObject{audit::RequestObject::Kind::kString, "name=web&image=<nginx>\n", false};
  EXPECT_EQ(RequestObjectPart(record),
            R"("requestObject":"name=web\u0026image=\u003cnginx\u003e\n")");
  record.request_object = audit::RequestObject{audit::RequestObject::Kind::kRedacted, "", false};
  EXPECT_EQ(RequestObjectPart(record), R"("requestObject":"[REDACTED by mke-audit-tap]")");
  record.request_object = audit::RequestObject{audit::RequestObject::Kind::kJson, "[1,", false};
  EXPECT_EQ(RequestObjectPart(record), R"("requestObject":"[1,")");
  record.request_object = audit::RequestObject{audit::RequestObject::Kind::kNone, "", false};
  EXPECT_EQ(RequestObjectPart(record), "");
  record.request_object.reset();
  EXPECT_EQ(RequestObjectPart(record), "");
}

TEST(K8sEventTest, AnnotationsMergedAndSorted) {
  audit::AuditRecord record = KubernetesList();
  record.annotations = {{"mke-audit-tap/redacted", "true"},
                        {"authorization.k8s.io/decision", "allow"},
                        {"mke-audit-tap/incomplete", "no"},
                        {"z<", "&"}};
  record.incomplete = true;
  record.request_object =
      audit::RequestObject{audit::RequestObject::Kind::kRedacted, "", /*truncated=*/true};
  const std::string line = FormatK8sEvent(record, ReferenceUser(), "id");
  const std::string tail =
      R"("stageTimestamp":"2019-01-30T17:21:45.318200Z","annotations":{)"
      R"("authorization.k8s.io/decision":"allow","mke-audit-tap/incomplete":"true",)"
      R"("mke-audit-tap/redacted":"true","mke-audit-tap/request-object":"truncated",)"
      R"("z\u003c":"\u0026"}})";
  ASSERT_GE(line.size(), tail.size());
  EXPECT_EQ(line.substr(line.size() - tail.size()), tail) << line;
}

TEST(K8sEventTest, OmittedAndNullFields) {
  audit::AuditRecord record;
  record.level = audit::Level::kNone;
  record.stage = audit::Stage::kRequestReceived;
  record.verb = "GET";
  EXPECT_EQ(FormatK8sEvent(record, UserFacts{}, "id"),
            R"({"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"None","auditID":"id",)"
            R"("stage":"RequestReceived","requestURI":"","verb":"get","user":{},)"
            R"("requestReceivedTimestamp":null,"stageTimestamp":null})");
  // Code 0 (omitempty) leaves only the metadata; the stage time shows at RequestReceived too.
  record.response_code = 0;
  record.stage_ns = kRefSecondNs;
  UserFacts user;
  user.login = "admin";
  const std::string line = FormatK8sEvent(record, user, "id");
  EXPECT_NE(line.find(R"("user":{"extra":{"username":["admin"]}},"responseStatus":{"metadata":{}},)"
                      R"("requestReceivedTimestamp":null,)"
                      R"("stageTimestamp":"2019-01-30T17:21:45.000000Z"})"),
            std::string::npos)
      << line;
  user = UserFacts{"u-1", "", "", "key"};
  record.response_code = -1;
  EXPECT_NE(FormatK8sEvent(record, user, "id")
                .find(R"("user":{"uid":"u-1","extra":{"licenseKey":["key"]}},)"
                      R"("responseStatus":{"metadata":{},"code":-1},)"),
            std::string::npos);
}

TEST(K8sEventTest, GroupsAndImpersonatedUserByteForByte) {
  audit::AuditRecord record;
  record.verb = "GET";
  UserFacts user{"acc-1", "acc-1", "alice", "key"};
  user.groups = {"devs", "a&b"};
  user.impersonated =
      ImpersonatedUserFacts{"jane", "", {"g<1>"}, {{"zz", {"1"}}, {"a/b", {"x", "y"}}}};
  EXPECT_NE(FormatK8sEvent(record, user, "id")
                .find(R"("user":{"username":"acc-1","uid":"acc-1","groups":["devs","a\u0026b"],)"
                      R"("extra":{"licenseKey":["key"],"username":["alice"]}},)"
                      R"("impersonatedUser":{"username":"jane","groups":["g\u003c1\u003e"],)"
                      R"("extra":{"a/b":["x","y"],"zz":["1"]}},"requestReceivedTimestamp")"),
            std::string::npos)
      << FormatK8sEvent(record, user, "id");
  user.impersonated = ImpersonatedUserFacts{};
  EXPECT_NE(FormatK8sEvent(record, user, "id").find(R"(,"impersonatedUser":{},)"),
            std::string::npos);
}

TEST(K8sEventTest, EveryObjectRefFieldInStructOrder) {
  audit::AuditRecord record = KubernetesList();
  record.level = audit::Level::kRequest;
  record.verb = "update";
  record.object_ref = {"deployments", "kube-system", "apps", "v1", "scale", "uid-1"};
  const std::string line = FormatK8sEvent(record, ReferenceUser(), "id");
  EXPECT_NE(
      line.find(R"("objectRef":{"resource":"deployments","namespace":"kube-system",)"
                R"("uid":"uid-1","apiGroup":"apps","apiVersion":"v1","subresource":"scale"},)"),
      std::string::npos)
      << line;
  EXPECT_EQ(line.find(R"("name")"), std::string::npos);
}

TEST(K8sEventTest, SourceIpsWithoutPorts) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"10.0.0.1:443", "10.0.0.1"},
      {"[fe80::1%eth0]:443", "fe80::1%eth0"},
      {"[::1]:1", "::1"},
      {"::1", "::1"},
      {"[::1]", "[::1]"},
      {"[::1]:", "[::1]:"},
      {"[::1]x:1", "[::1]x:1"},
      {"10.0.0.1:", "10.0.0.1:"},
      {"10.0.0.1:44a", "10.0.0.1:44a"},
      {"host", "host"},
      {"a&b:80", "a\\u0026b"},
  };
  for (const auto& [peer, expected] : cases) {
    audit::AuditRecord record = KubernetesList();
    record.source_ips = {peer, "192.168.1.2:8080"};
    const std::string line = FormatK8sEvent(record, ReferenceUser(), "id");
    EXPECT_NE(line.find(R"("sourceIPs":[")" + expected + R"(","192.168.1.2"],)"), std::string::npos)
        << peer << ": " << line;
  }
}

TEST(K8sEventTest, VerbInLowerCaseEscapesIntact) {
  audit::AuditRecord record = KubernetesList();
  record.verb = "DELETE\x01\xc3\x89<";  // the escapes' own letters stay lower case; É stays
  const std::string line = FormatK8sEvent(record, ReferenceUser(), "id");
  EXPECT_NE(line.find("\"verb\":\"delete\\u0001\xc3\x89\\u003c\""), std::string::npos) << line;
}

// ---- A tree-based oracle: encoding/json of the Event struct, built as an ordered tree. ----

void AppendOrdered(std::string& out, const nlohmann::ordered_json& value) {
  if (value.is_object()) {
    out += '{';
    bool first = true;
    for (const auto& item : value.items()) {
      if (!first) out += ',';
      first = false;
      AppendGoJsonString(out, item.key());
      out += ':';
      AppendOrdered(out, item.value());
    }
    out += '}';
  } else if (value.is_array()) {
    out += '[';
    bool first = true;
    for (const auto& item : value) {
      if (!first) out += ',';
      first = false;
      AppendOrdered(out, item);
    }
    out += ']';
  } else if (value.is_string()) {
    AppendGoJsonString(out, value.get_ref<const std::string&>());
  } else if (value.is_number_float()) {
    out += GoJsonDump(nlohmann::json(value.get<double>()));
  } else {
    out += value.dump();  // integers, booleans, null
  }
}

nlohmann::ordered_json ToOrdered(const nlohmann::json& value) {
  if (value.is_object()) {
    nlohmann::ordered_json object = nlohmann::ordered_json::object();
    for (const auto& item : value.items()) object[item.key()] = ToOrdered(item.value());
    return object;
  }
  if (value.is_array()) {
    nlohmann::ordered_json array = nlohmann::ordered_json::array();
    for (const auto& item : value) array.push_back(ToOrdered(item));
    return array;
  }
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>();
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number_float()) return value.get<double>();
  return nullptr;
}

bool HasObject(const audit::AuditRecord& record) {
  return record.request_object && record.request_object->kind != audit::RequestObject::Kind::kNone;
}

std::string RefWithoutPort(const std::string& peer) {
  static const std::regex kBracketed(R"(^\[([^\]]*)\]:([0-9]+)$)");
  static const std::regex kPlain(R"(^([^:]*):([0-9]+)$)");
  std::smatch match;
  if (!peer.empty() && peer[0] == '[') {
    return std::regex_match(peer, match, kBracketed) ? match[1].str() : peer;
  }
  return std::regex_match(peer, match, kPlain) ? match[1].str() : peer;
}

std::string RefFormatTime(uint64_t wall_ns) {
  const auto seconds = static_cast<std::time_t>(wall_ns / 1'000'000'000ULL);
  const auto micros = static_cast<unsigned>((wall_ns % 1'000'000'000ULL) / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
  return buf;
}

std::string TreeK8sEvent(const audit::AuditRecord& record, const UserFacts& user,
                         const std::string& audit_id, bool with_object, const std::string& uri,
                         const std::map<std::string, std::string>& extra) {
  using nlohmann::ordered_json;
  ordered_json event = ordered_json::object();
  event["kind"] = "Event";
  event["apiVersion"] = "audit.k8s.io/v1";
  event["level"] = record.level == audit::Level::kMetadata  ? "Metadata"
                   : record.level == audit::Level::kRequest ? "Request"
                                                            : "None";
  event["auditID"] = audit_id;
  event["stage"] = std::string(audit::StageName(record.stage));
  event["requestURI"] = uri;
  std::string verb = record.verb;
  for (char& c : verb) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  event["verb"] = verb;
  ordered_json user_info = ordered_json::object();
  if (!user.username.empty()) user_info["username"] = user.username;
  if (!user.uid.empty()) user_info["uid"] = user.uid;
  if (!user.groups.empty()) user_info["groups"] = user.groups;
  ordered_json extra_info = ordered_json::object();
  if (!user.license_key.empty()) extra_info["licenseKey"] = ordered_json::array({user.license_key});
  if (!user.login.empty()) extra_info["username"] = ordered_json::array({user.login});
  if (!extra_info.empty()) user_info["extra"] = extra_info;
  event["user"] = user_info;
  if (user.impersonated) {
    ordered_json as = ordered_json::object();
    if (!user.impersonated->username.empty()) as["username"] = user.impersonated->username;
    if (!user.impersonated->uid.empty()) as["uid"] = user.impersonated->uid;
    if (!user.impersonated->groups.empty()) as["groups"] = user.impersonated->groups;
    if (!user.impersonated->extra.empty()) {
      ordered_json extra = ordered_json::object();
      for (const auto& [key, values] : user.impersonated->extra) extra[key] = values;  // sorted
      as["extra"] = extra;
    }
    event["impersonatedUser"] = as;
  }
  if (!record.source_ips.empty()) {
    ordered_json ips = ordered_json::array();
    for (const std::string& ip : record.source_ips) ips.push_back(RefWithoutPort(ip));
    event["sourceIPs"] = ips;
  }
  if (!record.user_agent.empty()) event["userAgent"] = record.user_agent;
  if (!record.object_ref.empty()) {
    ordered_json ref = ordered_json::object();
    auto put = [&ref](const char* key, const std::string& value) {
      if (!value.empty()) ref[key] = value;
    };
    put("resource", record.object_ref.resource);
    put("namespace", record.object_ref.namespace_);
    put("uid", record.object_ref.uid);
    put("apiGroup", record.object_ref.api_group);
    put("apiVersion", record.object_ref.api_version);
    put("subresource", record.object_ref.subresource);
    event["objectRef"] = ref;
  }
  if (record.response_code) {
    ordered_json status = {{"metadata", ordered_json::object()}};
    if (*record.response_code != 0) status["code"] = *record.response_code;
    event["responseStatus"] = status;
  }
  if (with_object && HasObject(record)) {
    const audit::RequestObject& object = *record.request_object;
    if (object.kind == audit::RequestObject::Kind::kJson) {
      const nlohmann::json parsed = nlohmann::json::parse(object.text, nullptr, false);
      event["requestObject"] =
          parsed.is_discarded() ? ordered_json(object.text) : ToOrdered(parsed);
    } else if (object.kind == audit::RequestObject::Kind::kString) {
      event["requestObject"] = object.text;
    } else {
      event["requestObject"] = std::string(audit::kRedactedMarker);
    }
  }
  event["requestReceivedTimestamp"] = record.request_received_ns == 0
                                          ? ordered_json()
                                          : ordered_json(RefFormatTime(record.request_received_ns));
  event["stageTimestamp"] =
      record.stage_ns == 0 ? ordered_json() : ordered_json(RefFormatTime(record.stage_ns));
  std::map<std::string, std::string> annotations = record.annotations;
  if (record.incomplete) annotations["mke-audit-tap/incomplete"] = "true";
  if (HasObject(record) && record.request_object->truncated) {
    annotations["mke-audit-tap/request-object"] = "truncated";
  }
  for (const auto& [key, value] : extra) annotations[key] = value;
  if (!annotations.empty()) {
    ordered_json object = ordered_json::object();
    for (const auto& [key, value] : annotations) object[key] = value;  // std::map: sorted
    event["annotations"] = object;
  }
  std::string out;
  AppendOrdered(out, event);
  return out;
}

size_t RefDecodeUtf8(std::string_view s) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  size_t size = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    size = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    size = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    size = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (s.size() < size) return 0;
  for (size_t i = 1; i < size; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF)) return 0;
  }
  return size;
}

// The cap rule by brute force over trees (see the same in mke_line_test.cpp); "" where the last
// step (cutting the other fields) would be needed.
std::string TreeFormatK8sEvent(const audit::AuditRecord& record, const UserFacts& user,
                               const std::string& audit_id, size_t max_line_bytes) {
  auto tree = [&](bool with_object, const std::string& uri,
                  const std::map<std::string, std::string>& extra) {
    return TreeK8sEvent(record, user, audit_id, with_object, uri, extra);
  };
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
    const size_t size = static_cast<unsigned char>(uri[i]) < 0x80
                            ? 1
                            : RefDecodeUtf8(std::string_view(uri).substr(i));
    i += size == 0 ? 1 : size;
    cuts.push_back(i);
  }
  if (tree(false, "", extra).size() > cap) return "";
  size_t lo = 0, hi = cuts.size() - 1;
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

// The key order of encoding/json for the Event struct.
const std::vector<std::string> kEventKeys = {
    "kind",           "apiVersion",    "level",
    "auditID",        "stage",         "requestURI",
    "verb",           "user",          "impersonatedUser",
    "sourceIPs",      "userAgent",     "objectRef",
    "responseStatus", "requestObject", "requestReceivedTimestamp",
    "stageTimestamp", "annotations"};

// Fails unless `line` is one JSON object whose keys follow the struct order.
void ExpectEventShape(const std::string& line, const std::string& where) {
  ASSERT_EQ(line.find('\n'), std::string::npos) << where;
  nlohmann::ordered_json parsed;
  ASSERT_NO_THROW(parsed = nlohmann::ordered_json::parse(line)) << where << ": " << line;
  ASSERT_TRUE(parsed.is_object());
  size_t next = 0;
  for (const auto& item : parsed.items()) {
    const auto it = std::find(kEventKeys.begin() + static_cast<std::ptrdiff_t>(next),
                              kEventKeys.end(), item.key());
    ASSERT_NE(it, kEventKeys.end()) << where << ": key " << item.key() << " out of order";
    next = static_cast<size_t>(it - kEventKeys.begin()) + 1;
  }
  for (const char* key : {"kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb",
                          "user", "requestReceivedTimestamp", "stageTimestamp"}) {
    EXPECT_TRUE(parsed.contains(key)) << where << ": no " << key;
  }
}

TEST(K8sEventTest, GoldenRecordsMatchTheTreeAndHaveTheEventShape) {
  audit::AuditRecord docker = DockerServiceCreate();
  docker.annotations = {{"b", "1"}, {"a", "2"}};
  docker.incomplete = true;
  for (const audit::AuditRecord& record : {KubernetesList(), DockerServiceCreate(), docker}) {
    const std::string line = FormatK8sEvent(record, ReferenceUser(), "id");
    EXPECT_EQ(line, TreeFormatK8sEvent(record, ReferenceUser(), "id", 16384));
    ExpectEventShape(line, record.request_uri);
  }
}

// ---- Random records. ----

class TextGen {
 public:
  explicit TextGen(uint32_t seed) : rng_(seed) {}
  uint64_t Below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  bool OneIn(uint64_t n) { return Below(n) == 0; }
  std::string Text(size_t max_pieces) {
    static const std::vector<std::string> kPieces = {
        "a",
        "/api/v1/namespaces/default/pods",
        "?limit=5",
        "%20",
        " ",
        "&",
        "<",
        ">",
        "\"",
        "\\",
        "\n",
        "\t",
        "\b",
        std::string(1, '\0'),
        "\x1f",
        "\x7f",
        ":",
        "[",
        "]",
        "443",
        "E",
        "\xc3\xa9",
        "\xe2\x80\xa8",
        "\xf0\x9f\x98\x80",
        "\xef\xbf\xbd",
        "\xff",
        "\xe2\x82",
        "\xed\xa0\x80",
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./"};
    std::string text;
    const size_t pieces = Below(max_pieces + 1);
    for (size_t i = 0; i < pieces; ++i) {
      if (OneIn(8)) {
        text.push_back(static_cast<char>(Below(256)));
      } else {
        text += kPieces[Below(kPieces.size())];
      }
    }
    return text;
  }
  uint64_t Time() {
    switch (Below(3)) {
      case 0:
        return 0;
      case 1:
        return Below(UINT64_MAX);
      default:
        return kRefSecondNs + Below(400'000'000ULL * 1'000'000'000ULL);
    }
  }

 private:
  std::mt19937_64 rng_;
};

nlohmann::ordered_json RandomJson(TextGen& gen, int depth) {
  switch (gen.Below(depth > 0 ? 8 : 6)) {
    case 0:
      return nullptr;
    case 1:
      return gen.OneIn(2);
    case 2:
      return static_cast<int64_t>(gen.Below(UINT64_MAX));  // any int64_t (C++20: modular)
    case 3:
      return std::vector<double>{0.1, 1e21, 1e-7, -2.25, 1e300}[gen.Below(5)];
    case 4:
    case 5:
      return gen.Text(5);
    case 6: {
      nlohmann::ordered_json array = nlohmann::ordered_json::array();
      for (size_t i = gen.Below(4); i > 0; --i) array.push_back(RandomJson(gen, depth - 1));
      return array;
    }
    default: {
      nlohmann::ordered_json object = nlohmann::ordered_json::object();
      for (size_t i = gen.Below(5); i > 0; --i) object[gen.Text(2)] = RandomJson(gen, depth - 1);
      return object;
    }
  }
}

audit::AuditRecord RandomRecord(TextGen& gen) {
  static const std::vector<std::optional<int>> kCodes = {std::nullopt, 0,  200,     201,
                                                         404,          -1, INT_MIN, INT_MAX};
  audit::AuditRecord record;
  record.kind = gen.OneIn(2) ? "kubernetes" : "docker-swarm";
  record.level = static_cast<audit::Level>(gen.Below(3));
  record.stage = static_cast<audit::Stage>(gen.Below(3));
  record.request_uri = gen.OneIn(10) ? gen.Text(600) : gen.Text(20);
  record.verb = gen.OneIn(3) ? gen.Text(3) : gen.OneIn(2) ? "POST" : "list";
  for (size_t i = gen.Below(4); i > 0; --i) {
    record.source_ips.push_back(gen.OneIn(2) ? gen.Text(5) : "[fe80::1%eth0]:443");
  }
  record.request_received_ns = gen.Time();
  record.stage_ns = gen.Time();
  record.response_code = kCodes[gen.Below(kCodes.size())];
  for (std::string* field :
       {&record.object_ref.api_group, &record.object_ref.api_version, &record.object_ref.namespace_,
        &record.object_ref.resource, &record.object_ref.subresource, &record.object_ref.uid}) {
    if (gen.OneIn(3)) *field = gen.Text(3);
  }
  record.incomplete = gen.OneIn(3);
  for (size_t i = gen.OneIn(2) ? 0 : gen.Below(4); i > 0; --i) {
    record.annotations[gen.OneIn(3) ? "mke-audit-tap/incomplete" : gen.Text(3)] = gen.Text(3);
  }
  switch (gen.Below(5)) {
    case 0:
      break;
    case 1:
      record.request_object = audit::RequestObject{audit::RequestObject::Kind::kString,
                                                   gen.Text(gen.OneIn(4) ? 3000 : 10), false};
      break;
    case 2:
      record.request_object =
          audit::RequestObject{audit::RequestObject::Kind::kRedacted, "", false};
      break;
    default:
      record.request_object = audit::RequestObject{
          audit::RequestObject::Kind::kJson,
          RandomJson(gen, 3).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace),
          false};
  }
  if (record.request_object) record.request_object->truncated = gen.OneIn(3);
  record.user_agent = gen.OneIn(2) ? "" : gen.Text(4);
  return record;
}

TEST(K8sEventTest, MatchesTreeBasedEventForRandomRecords) {
  TextGen gen(2019);
  for (int i = 0; i < 4000; ++i) {
    const audit::AuditRecord record = RandomRecord(gen);
    UserFacts user;
    for (std::string* field : {&user.uid, &user.username, &user.login, &user.license_key}) {
      if (!gen.OneIn(4)) *field = gen.Text(3);
    }
    for (int g = gen.OneIn(2) ? 0 : static_cast<int>(gen.Below(4)); g > 0; --g)
      user.groups.push_back(gen.Text(2));
    if (gen.OneIn(4)) {
      user.impersonated.emplace();
      for (std::string* field : {&user.impersonated->username, &user.impersonated->uid}) {
        if (!gen.OneIn(3)) *field = gen.Text(2);
      }
      for (int g = static_cast<int>(gen.Below(3)); g > 0; --g)
        user.impersonated->groups.push_back(gen.Text(2));
      for (int k = static_cast<int>(gen.Below(3)); k > 0; --k)
        user.impersonated->extra[gen.Text(1)].push_back(gen.Text(2));
    }
    const std::string id = gen.Text(3);
    const size_t cap = gen.OneIn(3) ? 0 : gen.OneIn(2) ? 16384 : gen.Below(20000);
    const std::string line = FormatK8sEvent(record, user, id, LineOptions{cap});
    const std::string tree = TreeFormatK8sEvent(record, user, id, cap);
    ASSERT_FALSE(tree.empty()) << "record " << i << " needs the last step of the cap";
    ASSERT_EQ(line, tree) << "record " << i << ", cap " << cap;
    if (cap != 0) {
      ASSERT_LE(line.size(), std::max(cap, kMinLineBytes));
    }
    ExpectEventShape(line, "record " + std::to_string(i));
  }
}

// ---- The line cap. ----

std::string AnnotationOf(const nlohmann::json& parsed, const std::string& key) {
  if (!parsed.contains("annotations") || !parsed["annotations"].contains(key)) return "";
  return parsed["annotations"][key].get<std::string>();
}

TEST(K8sEventCapTest, DropsTheRequestObjectThenCutsTheUri) {
  audit::AuditRecord record = DockerServiceCreate();
  record.request_object =
      audit::RequestObject{audit::RequestObject::Kind::kString, std::string(5000, '&'), false};
  std::string line = FormatK8sEvent(record, ReferenceUser(), "id");
  EXPECT_LE(line.size(), 16383u);
  auto parsed = nlohmann::json::parse(line);
  EXPECT_FALSE(parsed.contains("requestObject"));
  EXPECT_EQ(AnnotationOf(parsed, "mke-audit-tap/request-object"), "dropped: line over 16383 bytes");
  EXPECT_EQ(parsed["requestURI"], "/v1.41/services/create");
  EXPECT_EQ(AnnotationOf(parsed, "mke-audit-tap/request-uri"), "");
  // Unlimited: all of it.
  EXPECT_GT(FormatK8sEvent(record, ReferenceUser(), "id", LineOptions{0}).size(), 30000u);

  for (const std::string unit : {"\xc3\xa9", "\xf0\x9f\x98\x80", "<", "\xe2\x80\xa8", "\xff"}) {
    record.request_uri = "/";
    while (record.request_uri.size() < 8000) record.request_uri += unit;
    for (size_t cap = kMinLineBytes; cap < kMinLineBytes + 24; ++cap) {
      line = FormatK8sEvent(record, ReferenceUser(), "id", LineOptions{cap});
      ASSERT_LE(line.size(), cap);
      ASSERT_GT(line.size() + 6, cap);
      ASSERT_EQ(line, TreeFormatK8sEvent(record, ReferenceUser(), "id", cap));
      ExpectEventShape(line, "cap " + std::to_string(cap));
      parsed = nlohmann::json::parse(line);
      EXPECT_EQ(AnnotationOf(parsed, "mke-audit-tap/request-uri"), "truncated");
      EXPECT_EQ(AnnotationOf(parsed, "mke-audit-tap/request-object"),
                "dropped: line over " + std::to_string(cap) + " bytes");
      if (unit != "\xff") {
        const std::string uri = parsed["requestURI"].get<std::string>();
        EXPECT_EQ(record.request_uri.substr(0, uri.size()), uri);
        EXPECT_EQ((uri.size() - 1) % unit.size(), 0u);
      }
    }
  }
}

TEST(K8sEventCapTest, HugeFieldsStillFit) {
  const std::string huge(5000, '\x01');
  audit::AuditRecord record = DockerServiceCreate();
  record.kind = huge;
  record.request_uri = "/" + huge;
  record.verb = huge;
  record.source_ips.assign(500, huge.substr(0, 200));
  record.response_code = INT_MIN;
  record.request_received_ns = UINT64_MAX;
  record.stage_ns = UINT64_MAX;
  record.object_ref = {huge, huge, huge, huge, huge, huge};
  record.incomplete = true;
  record.request_object->truncated = true;
  for (int i = 0; i < 50; ++i) {
    record.annotations[std::string(7, '\x02') + static_cast<char>(0x03 + i % 29) +
                       std::string(i / 29, '\x04')] = std::string(8, '\x05');
    record.annotations[std::to_string(i) + huge] = huge;
  }
  record.user_agent = huge;
  UserFacts user{huge, huge, huge, huge};
  user.groups.assign(100, huge);
  user.impersonated = ImpersonatedUserFacts{huge, huge, std::vector<std::string>(100, huge), {}};
  for (int i = 0; i < 50; ++i) user.impersonated->extra[std::to_string(i) + huge] = {huge, huge};
  for (const size_t cap : {size_t{1}, kMinLineBytes, size_t{16384}}) {
    const std::string line = FormatK8sEvent(record, user, huge, LineOptions{cap});
    ASSERT_LE(line.size(), std::max(cap, kMinLineBytes));
    ExpectEventShape(line, "huge");
    const auto parsed = nlohmann::json::parse(line);
    EXPECT_EQ(AnnotationOf(parsed, "mke-audit-tap/fields"), "truncated");
    EXPECT_EQ(AnnotationOf(parsed, "mke-audit-tap/request-uri"), "truncated");
    EXPECT_EQ(parsed["annotations"].size(), 8u + 4u);
    EXPECT_EQ(parsed["sourceIPs"].size(), 1u);
    EXPECT_EQ(parsed["user"]["groups"].size(), 4u);
    EXPECT_EQ(parsed["impersonatedUser"]["groups"].size(), 4u);
    EXPECT_FALSE(parsed["impersonatedUser"].contains("extra"));
    EXPECT_GT(parsed["requestURI"].get<std::string>().size(), cap <= kMinLineBytes ? 100u : 250u);
  }
}

}  // namespace
}  // namespace mat::output
