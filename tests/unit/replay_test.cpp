// Replays recorded tap captures through the whole userspace pipeline: synthetic recordings
// written here, and golden captures recorded from real servers (tests/golden/*.rec) whose
// expected lines sit beside them (*.jsonl), compared field-order-insensitively.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "capture/recorder.h"
#include "pipeline/pipeline.h"
#include "recording.h"
#include "tap_records.h"

namespace mat {
namespace {

using mat::testing::ConnEndRecord;
using mat::testing::DataRecord;
using mat::testing::Record;
using mat::testing::SockRecord;

pipeline::PipelineConfig Config(audit::Level level = audit::Level::kMetadata) {
  pipeline::PipelineConfig config;
  config.policy.level = level;
  config.license_key = "TEST-LICENSE";
  return config;
}

std::vector<nlohmann::json> Replay(const std::string& path, const pipeline::PipelineConfig& config,
                                   std::vector<std::string>* raw = nullptr) {
  auto replayed = mat::testing::ReplayRecording(path, config);
  EXPECT_TRUE(replayed) << replayed.error();
  if (!replayed) return {};
  std::vector<nlohmann::json> lines;
  for (const auto& line : *replayed) lines.push_back(nlohmann::json::parse(line));
  if (raw) *raw = *replayed;
  return lines;
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          (name + "-" + std::to_string(::getpid()) + ".rec"))
      .string();
}

void WriteRecording(const std::string& path, const std::vector<Record>& records) {
  capture::Recorder recorder;
  capture::ClockMap clock;
  clock.mono_to_wall_ns = 1'700'000'000'000'000'000;  // 2023-11-14T22:13:20Z
  Status opened = recorder.Open(path, clock);
  ASSERT_TRUE(opened) << opened.error();
  for (const auto& r : records) recorder.Append(r.data(), static_cast<uint32_t>(r.size()));
  recorder.Close();
}

TEST(Replay, RecordingFileIsPrivate) {
  std::string path = TempPath("private");
  {
    std::ofstream(path) << "old";
    ::chmod(path.c_str(), 0644);
  }
  WriteRecording(path, {});
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::filesystem::remove(path);
}

TEST(Replay, RejectsAFileThatIsNoRecording) {
  std::string path = TempPath("bogus");
  std::ofstream(path) << "not a recording";
  capture::ClockMap clock;
  capture::ReplayStats stats;
  Status read = capture::ReadRecording(
      path, &clock, [](const void*, uint32_t) {}, &stats);
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error(), path + " is not an mke-audit-tap recording");
  std::filesystem::remove(path);
}

TEST(Replay, KeepAliveConversationBecomesOneLinePerRequest) {
  std::string path = TempPath("keepalive");
  std::string req1 = "GET /containers/json?all=1&size=0 HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string resp1 = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]";
  std::string req2 = "GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string resp2 = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK";
  std::string req3 = "DELETE /v1.41/secrets/abc HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string resp3 = "HTTP/1.1 204 No Content\r\n\r\n";
  std::string req4 = "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n";
  uint64_t r = 0, w = 0;
  std::vector<Record> records = {SockRecord(42, 9, TAP_ROLE_SERVER, "192.0.2.7", 50123, 100)};
  auto read = [&](const std::string& s, uint64_t ts) {
    records.push_back(DataRecord(42, 0x5000, 9, TAP_DIR_READ, r, s, ts));
    r += s.size();
  };
  auto write = [&](const std::string& s, uint64_t ts) {
    records.push_back(DataRecord(42, 0x5000, 9, TAP_DIR_WRITE, w, s, ts));
    w += s.size();
  };
  read(req1, 1'000'000), write(resp1, 2'000'000);
  read(req2, 3'000'000), write(resp2, 4'000'000);
  read(req3, 5'000'000), write(resp3, 6'000'000);
  read(req4, 7'000'000);
  records.push_back(ConnEndRecord(42, 0x5000, 9, r, w, 8'000'000));
  WriteRecording(path, records);

  std::vector<std::string> raw;
  auto lines = Replay(path, Config(), &raw);
  std::filesystem::remove(path);
  ASSERT_EQ(lines.size(), 3u);  // /_ping is ignored
  const auto& a = lines[0]["audit"];
  EXPECT_EQ(a["verb"], "GET");
  EXPECT_EQ(a["requestURI"], "/containers/json?all=1&size=0");
  EXPECT_NE(raw[0].find(R"(/containers/json?all=1\u0026size=0)"), std::string::npos);
  EXPECT_EQ(a["responseStatus"]["code"], 200);
  EXPECT_EQ(a["stage"], "ResponseComplete");
  EXPECT_EQ(a["sourceIPs"], nlohmann::json::array({"192.0.2.7:50123"}));
  EXPECT_EQ(a["kind"], "docker-swarm");
  EXPECT_EQ(a["level"], "metadata");
  EXPECT_EQ(a["user"]["extra"]["licenseKey"], nlohmann::json::array({"TEST-LICENSE"}));
  EXPECT_EQ(a["requestReceivedTimestamp"], "2023-11-14T22:13:20.001000Z");
  EXPECT_EQ(a["stageTimestamp"], "2023-11-14T22:13:20.002000Z");
  EXPECT_EQ(lines[1]["audit"]["verb"], "DELETE");
  EXPECT_EQ(lines[1]["audit"]["responseStatus"]["code"], 204);
  const auto& hang = lines[2]["audit"];
  EXPECT_EQ(hang["requestURI"], "/hang");
  EXPECT_EQ(hang["stage"], "RequestReceived");
  EXPECT_FALSE(hang.contains("responseStatus"));
  EXPECT_TRUE(hang["stageTimestamp"].is_null());
  // A line without a response says that none was seen; the others say nothing of the kind.
  EXPECT_EQ(hang["annotations"]["mke-audit-tap/response"], "none seen");
  EXPECT_FALSE(a.contains("annotations") && a["annotations"].contains("mke-audit-tap/response"));
}

// Issue 17, through the whole pipeline: a pipelined DELETE after a request that asked for the
// close is never read by the server, so it is never written; the request before it is, with
// the server's status.
TEST(Replay, NothingAfterTheServersClose) {
  std::string path = TempPath("close");
  const std::string req =
      "GET /containers/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
      "DELETE /v1.41/secrets/abc HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string resp = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n[]";
  WriteRecording(path, {SockRecord(42, 9, TAP_ROLE_SERVER, "192.0.2.7", 50123, 100),
                        DataRecord(42, 0x5000, 9, TAP_DIR_READ, 0, req, 1'000'000),
                        DataRecord(42, 0x5000, 9, TAP_DIR_WRITE, 0, resp, 2'000'000),
                        ConnEndRecord(42, 0x5000, 9, req.size(), resp.size(), 3'000'000)});
  auto lines = Replay(path, Config());
  std::filesystem::remove(path);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["audit"]["verb"], "GET");
  EXPECT_EQ(lines[0]["audit"]["responseStatus"]["code"], 200);
}

TEST(Replay, LevelNoneWritesNothing) {
  std::string path = TempPath("none");
  WriteRecording(path, {SockRecord(1, 3, TAP_ROLE_SERVER, "127.0.0.1", 1234),
                        DataRecord(1, 0x1, 3, TAP_DIR_READ, 0, "GET / HTTP/1.1\r\n\r\n")});
  EXPECT_TRUE(Replay(path, Config(audit::Level::kNone)).empty());
  std::filesystem::remove(path);
}

TEST(Replay, CorruptRecordsAreSkippedAndTheRestIsAudited) {
  std::string path = TempPath("corrupt");
  Record bad = DataRecord(1, 0x1, 3, TAP_DIR_READ, 0, "xx");
  reinterpret_cast<tap_data*>(bad.data())->len = 60000;  // lies about its payload
  WriteRecording(path, {bad, SockRecord(1, 3, TAP_ROLE_SERVER, "127.0.0.1", 1234),
                        DataRecord(1, 0x2, 3, TAP_DIR_READ, 0, "GET /ok HTTP/1.1\r\n\r\n"),
                        DataRecord(1, 0x2, 3, TAP_DIR_WRITE, 0, "HTTP/1.1 200 OK\r\n\r\n")});
  auto lines = Replay(path, Config());
  std::filesystem::remove(path);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["audit"]["requestURI"], "/ok");
}

// The pipeline reuses one audit record, line buffer, user and annotation node line after line:
// every line must be byte for byte the line a fresh pipeline writes for that request alone
// (but for its auditID and the envelope's time), in either order.
TEST(Replay, ALineOwesNothingToTheLineBefore) {
  auto http = [](const std::string& head, const std::string& body) {
    return head + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  };
  const std::string json = "Content-Type: application/json\r\n";
  struct Exchange {
    std::string request, response;  // response empty: none comes
  };
  const std::vector<Exchange> exchanges = {
      {http("POST /api/v1/namespaces/ns/secrets HTTP/1.1\r\nUser-Agent: kubectl/1.29\r\n"
            "Impersonate-User: jane\r\nImpersonate-Group: devs\r\nImpersonate-Group: ops\r\n"
            "Authorization: Basic Ym9iOnB3\r\n" +
                json,
            R"({"kind":"Secret","data":{"k":"dg=="}})"),
       http("HTTP/1.1 201 Created\r\n" + json, R"({"metadata":{"uid":"u-1"}})")},
      {"GET /containers/json HTTP/1.1\r\nHost: x\r\n\r\n", http("HTTP/1.1 200 OK\r\n", "[]")},
      {http("POST /v1.41/configs/create HTTP/1.1\r\n" + json, R"({"Name":"c","Data":"c2VjcmV0"})"),
       http("HTTP/1.1 201 Created\r\n", R"({"ID":"c1"})")},
      {"GET /apis/apps/v1/namespaces/ns/deployments?watch=1 HTTP/1.1\r\n\r\n",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"},
      {"DELETE /v1.41/secrets/abc HTTP/1.1\r\nUser-Agent: docker\r\n\r\n", ""},
      {http("POST /containers/create HTTP/1.1\r\n" + json, "{}"),
       http("HTTP/1.1 201 Created\r\n", R"({"Id":"x"})")},
  };
  auto records_of = [&](const std::vector<size_t>& order) {
    std::vector<Record> records;
    for (size_t i : order) {
      const Exchange& e = exchanges[i];
      const uint64_t ssl = 0x100 + i;
      const int32_t fd = 10 + static_cast<int32_t>(i);
      const uint64_t ts = (i + 1) * 1'000'000;
      records.push_back(SockRecord(7, fd, TAP_ROLE_SERVER, "192.0.2.9", 40000 + fd, ts));
      records.push_back(DataRecord(7, ssl, fd, TAP_DIR_READ, 0, e.request, ts + 1000));
      if (!e.response.empty())
        records.push_back(DataRecord(7, ssl, fd, TAP_DIR_WRITE, 0, e.response, ts + 2000));
      records.push_back(ConnEndRecord(7, ssl, fd, e.request.size(), e.response.size(), ts + 3000));
    }
    return records;
  };
  static const std::regex kVarying(R"re("(auditID|time)":"[^"]*")re");
  auto run = [&](const std::vector<size_t>& order, pipeline::OutputFormat format) {
    pipeline::PipelineConfig config = Config(audit::Level::kRequest);
    config.format = format;
    output::VectorLineSink sink;
    pipeline::Pipeline p(config, capture::ClockMap{}, &sink, nullptr, {});
    for (const auto& r : records_of(order)) p.OnRecord(r.data(), r.size());
    p.Finish(1'000'000'000);
    std::vector<std::string> lines;
    for (const auto& line : sink.lines) lines.push_back(std::regex_replace(line, kVarying, "$1"));
    return lines;
  };
  for (auto format : {pipeline::OutputFormat::kMke, pipeline::OutputFormat::kK8s}) {
    std::vector<std::string> alone;
    for (size_t i = 0; i < exchanges.size(); ++i) {
      const auto lines = run({i}, format);
      ASSERT_EQ(lines.size(), 1u) << i;
      alone.push_back(lines[0]);
    }
    EXPECT_NE(alone[0].find("u-1"), std::string::npos) << alone[0];
    EXPECT_NE(alone[0].find("jane"), std::string::npos) << alone[0];
    std::vector<size_t> order(exchanges.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    for (int pass = 0; pass < 2; ++pass) {
      const auto together = run(order, format);
      ASSERT_EQ(together.size(), order.size());
      for (size_t k = 0; k < order.size(); ++k) EXPECT_EQ(together[k], alone[order[k]]) << k;
      std::reverse(order.begin(), order.end());
    }
  }
}

// Golden captures: each tests/golden/NAME.rec replays to the lines in NAME.jsonl. The fields
// that differ on every run (auditID, the envelope's time) are checked for shape, not value.
nlohmann::json Normalise(nlohmann::json line) {
  static const std::regex kUuid(
      "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  EXPECT_TRUE(std::regex_match(line["audit"]["auditID"].get<std::string>(), kUuid));
  line["audit"]["auditID"] = "<uuid>";
  line["time"] = "<now>";
  return line;
}

TEST(Replay, GoldenCaptures) {
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(MAT_GOLDEN_DIR)) {
    if (entry.path().extension() != ".rec") continue;
    std::filesystem::path expected_path = entry.path();
    expected_path.replace_extension(".jsonl");
    std::ifstream expected_file(expected_path);
    ASSERT_TRUE(expected_file) << "missing " << expected_path;
    std::vector<nlohmann::json> expected;
    for (std::string line; std::getline(expected_file, line);)
      if (!line.empty()) expected.push_back(Normalise(nlohmann::json::parse(line)));
    // NAME.request.rec is replayed at request level, every other capture at metadata level.
    const bool request_level = entry.path().stem().extension() == ".request";
    auto actual = Replay(entry.path().string(),
                         Config(request_level ? audit::Level::kRequest : audit::Level::kMetadata));
    ASSERT_EQ(actual.size(), expected.size()) << entry.path();
    for (size_t i = 0; i < actual.size(); ++i)
      EXPECT_EQ(Normalise(actual[i]), expected[i]) << entry.path() << " line " << i;
    ++checked;
  }
  EXPECT_GE(checked, 2) << "no golden captures in " << MAT_GOLDEN_DIR;
}

}  // namespace
}  // namespace mat
