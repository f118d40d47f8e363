// Issue 17's hostile shapes, replayed without the kernel: tests/golden/hostile/SERVER.rec are
// recordings of tests/e2e/test_hostile.py's shapes driven at nginx and at the Go server
// (tools/hostile_fixtures.py), SERVER.truth.jsonl what each server logged for them. Each shape's
// replayed audit lines must agree with its server: no forged line, no hidden request, no wrong
// status (the rules of tests/e2e/hostile_compare.py, which this mirrors; see its docstring).
// Shapes listed in known_failures.txt fail today and must still fail: one that passes is
// reported, so the list shrinks as the parsers are fixed.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "pipeline/pipeline.h"
#include "recording.h"
#include "util/ascii.h"

namespace mat {
namespace {

const std::string kDir = std::string(MAT_GOLDEN_DIR) + "/hostile";

struct Entry {
  int port = 0;
  std::string method, uri, kind, source;
  int status = 0;
};

struct View {
  int port = 0;
  std::string verb, uri, stage;
  std::optional<int> status;
  std::string annotations;
  bool explains = false;       // an annotation beyond mke-audit-tap/user-identified-by
  bool uri_truncated = false;  // mke-audit-tap/request-uri: truncated
};

// hostile_compare.same_uri()
bool SameUri(const View& v, const std::string& uri) {
  if (v.uri == uri) return true;
  return v.uri_truncated && !v.uri.empty() && uri.compare(0, v.uri.size(), v.uri) == 0;
}

bool Unanswered(int status) {
  return status == 0 || status == 408 || status == 444 || status == 499;
}

std::string Describe(const View& v) {
  std::ostringstream os;
  os << v.verb << " " << v.uri.substr(0, 80) << " -> ";
  if (v.status)
    os << *v.status;
  else
    os << "no status (" << v.stage << ")";
  if (!v.annotations.empty()) os << " " << v.annotations;
  return os.str();
}

View ViewOf(const nlohmann::json& line) {
  View v;
  const auto& a = line.at("audit");
  auto src = a.value("sourceIPs", nlohmann::json::array());
  if (!src.empty() && src[0].is_string()) {
    std::string s = src[0];
    auto colon = s.rfind(':');
    if (colon != std::string::npos) v.port = std::stoi(s.substr(colon + 1));
  }
  if (a.contains("verb") && a["verb"].is_string()) v.verb = a["verb"];
  if (a.contains("requestURI") && a["requestURI"].is_string()) v.uri = a["requestURI"];
  if (a.contains("stage") && a["stage"].is_string()) v.stage = a["stage"];
  if (a.contains("responseStatus") && a["responseStatus"].is_object() &&
      a["responseStatus"].contains("code"))
    v.status = a["responseStatus"]["code"].get<int>();
  if (a.contains("annotations") && a["annotations"].is_object()) {
    v.annotations = a["annotations"].dump();
    for (const auto& [k, val] : a["annotations"].items()) {
      if (k != "mke-audit-tap/user-identified-by") v.explains = true;
      if (k == "mke-audit-tap/request-uri" && val == "truncated") v.uri_truncated = true;
    }
  }
  return v;
}

// hostile_compare.compare(): the problems of one shape (its entries and lines).
std::vector<std::string> Compare(const std::vector<Entry>& entries,
                                 const std::vector<View>& lines) {
  std::vector<std::string> problems;
  std::set<int> ports;
  for (const auto& e : entries) ports.insert(e.port);
  for (const auto& v : lines) ports.insert(v.port);
  for (int port : ports) {
    std::vector<const Entry*> es;
    for (const auto& e : entries)
      if (e.port == port) es.push_back(&e);
    std::vector<View> ls;
    for (const auto& v : lines)
      if (v.port == port) ls.push_back(v);
    auto take = [&](auto pred) -> std::optional<View> {
      for (auto it = ls.begin(); it != ls.end(); ++it)
        if (pred(*it)) {
          View v = *it;
          ls.erase(it);
          return v;
        }
      return std::nullopt;
    };
    auto required = [](const Entry* e) { return e->kind == "answered" || e->kind == "served09"; };
    std::vector<const Entry*> order;
    for (const auto* e : es)
      if (required(e)) order.push_back(e);
    for (const auto* e : es)
      if (!required(e) && e->kind != "unparsed" && e->kind != "conn") order.push_back(e);
    std::string at = ":" + std::to_string(port) + " ";
    for (const auto* e : order) {
      // The verb is the method in upper case (the design's contract): "get" is audited as "GET".
      std::string verb = e->method;
      for (char& c : verb) c = mat::AsciiUpper(c);
      auto v = take([&](const View& v) { return v.verb == verb && SameUri(v, e->uri); });
      std::string what =
          e->method + " " + e->uri.substr(0, 80) + " -> " + std::to_string(e->status);
      if (!v) {
        if (required(e))
          problems.push_back(at + "hidden request: the server logged " + what + ", no audit line");
        continue;
      }
      if (e->kind == "answered" && v->status != e->status) {
        problems.push_back(at + "wrong status: the server logged " + what + ", the audit says " +
                           Describe(*v));
      } else if (e->kind != "answered" && v->status &&
                 (Unanswered(e->status) || *v->status != e->status)) {
        problems.push_back(at + "status for an unanswered request: the server logged " + what +
                           " (not sent), the audit says " + Describe(*v));
      }
    }
    for (const auto* e : es)
      if (e->kind == "unparsed")
        take([&](const View& v) { return !v.status || *v.status == e->status; });
    bool h1_closed = false;
    for (const auto* e : es)
      if (e->kind == "conn") h1_closed = e->method == "h1" && e->status == 1;
    take([](const View& v) { return v.verb.empty() && v.uri.empty(); });  // the connection note
    ls.erase(std::remove_if(ls.begin(), ls.end(),
                            [&](const View& v) { return !v.status && !h1_closed && v.explains; }),
             ls.end());
    for (const auto& v : ls)
      problems.push_back(at + "forged line: " + Describe(v) +
                         " (the server logged no such request on this connection)");
  }
  return problems;
}

std::vector<View> ReplayViews(const std::string& path) {
  pipeline::PipelineConfig config;
  config.policy.level = audit::Level::kRequest;
  config.license_key = "TEST-LICENSE";
  auto lines = mat::testing::ReplayRecording(path, config);
  EXPECT_TRUE(lines) << path << ": " << lines.error();
  if (!lines) return {};
  std::vector<View> out;
  for (const auto& line : *lines) {
    auto j = nlohmann::json::parse(line);
    if (j.value("msg", "") == "audit") out.push_back(ViewOf(j));
  }
  return out;
}

struct Truth {
  std::map<std::string, std::vector<int>> shapes;
  std::vector<Entry> entries;
};

Truth LoadTruth(const std::string& path) {
  Truth t;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "missing " << path << " (tools/hostile_fixtures.py)";
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    if (j.contains("shape")) {
      t.shapes[j["shape"]] = j["ports"].get<std::vector<int>>();
    } else {
      t.entries.push_back(Entry{j["port"].get<int>(), j["method"], j["uri"], j["kind"],
                                j.value("source", ""), j["status"].get<int>()});
    }
  }
  return t;
}

std::set<std::string> KnownFailures(const std::string& server) {
  std::set<std::string> out;
  std::ifstream in(kDir + "/known_failures.txt");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream is(line);
    std::string kind, shape;
    is >> kind >> shape;
    if (kind == server && !shape.empty() && shape.back() == ':')
      out.insert(shape.substr(0, shape.size() - 1));
  }
  return out;
}

void CheckServer(const std::string& server) {
  Truth truth = LoadTruth(kDir + "/" + server + ".truth.jsonl");
  ASSERT_GE(truth.shapes.size(), 50u) << "too few shapes recorded for " << server;
  std::vector<View> lines = ReplayViews(kDir + "/" + server + ".rec");
  auto known = KnownFailures(server);
  int failing = 0;
  for (const auto& [shape, ports] : truth.shapes) {
    std::set<int> ps(ports.begin(), ports.end());
    std::vector<Entry> es;
    for (const auto& e : truth.entries)
      if (ps.count(e.port)) es.push_back(e);
    std::vector<View> ls;
    for (const auto& v : lines)
      if (ps.count(v.port)) ls.push_back(v);
    auto problems = Compare(es, ls);
    if (known.count(shape)) {
      ++failing;
      EXPECT_FALSE(problems.empty())
          << server << " " << shape
          << " is listed in known_failures.txt but now passes: remove it from the list";
      continue;
    }
    std::string all;
    for (const auto& p : problems) all += "\n  - " + p;
    EXPECT_TRUE(problems.empty()) << server << " " << shape << ":" << all;
  }
  for (const auto& shape : known)
    EXPECT_TRUE(truth.shapes.count(shape))
        << "known_failures.txt names " << server << " " << shape << ", which is not recorded";
  ::testing::Test::RecordProperty("shapes", static_cast<int>(truth.shapes.size()));
  ::testing::Test::RecordProperty("known_failing", failing);
}

TEST(HostileReplay, NginxShapesAgreeWithNginxLog) { CheckServer("nginx"); }

TEST(HostileReplay, GoShapesAgreeWithGoLog) { CheckServer("go"); }

// The comparison itself: each kind of disagreement is found.
TEST(HostileReplay, CompareFindsForgedHiddenAndWrongStatus) {
  std::vector<Entry> entries{{1, "GET", "/a", "answered", "", 200},
                             {1, "POST", "/b", "answered", "", 400},
                             {1, "GET", "/c", "optional", "", 499},
                             {1, "", "", "unparsed", "", 400}};
  View a{1, "GET", "/a", "ResponseComplete", 200, ""};
  View b{1, "POST", "/b", "ResponseComplete", 400, ""};
  View c{1, "GET", "/c", "RequestReceived", std::nullopt, ""};
  EXPECT_TRUE(Compare(entries, {a, b, c}).empty());
  EXPECT_TRUE(Compare(entries, {a, b}).empty());  // the 499 may go unaudited
  View b_wrong = b;
  b_wrong.status = std::nullopt;
  View forged{1, "DELETE", "/d", "ResponseComplete", 200, ""};
  View forged2{1, "DELETE", "/e", "ResponseComplete", 200, ""};
  View c_status = c;
  c_status.status = 200;
  auto has = [](const std::vector<std::string>& ps, const std::string& what) {
    return std::any_of(ps.begin(), ps.end(),
                       [&](const std::string& p) { return p.find(what) != std::string::npos; });
  };
  EXPECT_TRUE(has(Compare(entries, {b}), "hidden request"));
  EXPECT_TRUE(has(Compare(entries, {a, b_wrong}), "wrong status"));
  // One unparsed answer tolerates one extra line with its status, not two.
  View garbage{1, "GET", "/x", "ResponseComplete", 400, ""};
  EXPECT_TRUE(Compare(entries, {a, b, garbage}).empty());
  EXPECT_TRUE(has(Compare(entries, {a, b, garbage, forged}), "forged line"));
  EXPECT_TRUE(has(Compare(entries, {a, b, forged, forged2}), "forged line"));
  EXPECT_TRUE(has(Compare(entries, {a, b, c_status}), "unanswered"));
  // A line without status that says why is allowed for a request the server did not answer,
  // except on an HTTP/1.1 connection the server closed; one connection note is allowed.
  std::vector<Entry> served{entries[0], entries[1]};
  View why{1, "GET", "/z", "RequestReceived", std::nullopt, "{}", true};
  View note{1, "", "", "RequestReceived", std::nullopt, "", false};
  EXPECT_TRUE(Compare(served, {a, b, why, note}).empty());
  auto closed = served;
  closed.push_back({1, "h1", "", "conn", "", 1});
  EXPECT_TRUE(has(Compare(closed, {a, b, why}), "forged line"));
  EXPECT_TRUE(Compare(closed, {a, b, note}).empty());
  EXPECT_TRUE(has(Compare(served, {a, b, note, note}), "forged line"));
  View unexplained = why;
  unexplained.explains = false;
  EXPECT_TRUE(has(Compare(served, {a, b, unexplained}), "forged line"));
  // A URI the line says it truncated matches the logged URI it starts.
  View cut{1, "GET", "/a", "ResponseComplete", 200, "{}", true, true};
  EXPECT_TRUE(Compare({{1, "GET", "/abc", "answered", "", 200}}, {cut}).empty());
  cut.uri_truncated = false;
  EXPECT_FALSE(Compare({{1, "GET", "/abc", "answered", "", 200}}, {cut}).empty());
}

}  // namespace
}  // namespace mat
