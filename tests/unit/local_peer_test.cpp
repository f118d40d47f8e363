// The local socket path in userspace: peer facts (container id, ignore matching, data root) and
// the pipeline's lines for a TAP_EV_LOCAL_SOCK connection (user, extra, source, ignore count).
#include "identity/local_peer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "output/line_sink.h"
#include "pipeline/pipeline.h"
#include "tap_records.h"

namespace mat {
namespace {

using identity::LocalPeer;
using testing::AsRecord;
using testing::ConnEndRecord;
using testing::DataRecord;
using testing::Record;

const std::string kId = "4f3c2a1b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";

TEST(LocalPeerTest, ContainerIdFromTheCgroupPath) {
  EXPECT_EQ(identity::ContainerIdFromCgroup("0::/system.slice/docker-" + kId + ".scope\n"), kId);
  EXPECT_EQ(identity::ContainerIdFromCgroup("0::/docker/" + kId + "\n"), kId);
  EXPECT_EQ(identity::ContainerIdFromCgroup("12:pids:/docker/" + kId + "\n1:name=systemd:/\n"),
            kId);
  EXPECT_EQ(identity::ContainerIdFromCgroup("0::/user.slice/user-1000.slice/session-3.scope\n"),
            "");
  // 63 or 65 hex digits are no container id.
  EXPECT_EQ(identity::ContainerIdFromCgroup("0::/docker/" + kId.substr(1) + "\n"), "");
  EXPECT_EQ(identity::ContainerIdFromCgroup("0::/docker/" + kId + "0\n"), "");
}

TEST(LocalPeerTest, IgnoreMatchesCommContainerNameServiceAndIdPrefix) {
  LocalPeer peer;
  peer.comm = "docker";
  peer.container_id = kId;
  peer.container_name = "ucp-agent.abc123.def456";
  auto match = [&](std::vector<std::string> ignore) {
    const std::string* m = identity::MatchLocalIgnore(peer, ignore);
    return m ? *m : std::string("-");
  };
  EXPECT_EQ(match({"docker"}), "docker");
  EXPECT_EQ(match({"ucp-agent"}), "ucp-agent");  // the swarm service of the task
  EXPECT_EQ(match({"ucp-agent.abc123.def456"}), "ucp-agent.abc123.def456");
  EXPECT_EQ(match({kId.substr(0, 12)}), kId.substr(0, 12));
  EXPECT_EQ(match({kId}), kId);
  EXPECT_EQ(match({kId.substr(0, 11)}), "-");  // too short to name a container
  EXPECT_EQ(match({"ucp"}), "-");
  EXPECT_EQ(match({"dockerd", "ucp-controller"}), "-");
  peer.container_id.clear();
  peer.container_name.clear();
  EXPECT_EQ(match({kId.substr(0, 12), "ucp-agent"}), "-");
}

TEST(LocalPeerTest, DataRootFromDockerdsCommandLine) {
  using namespace std::string_literals;
  EXPECT_EQ(identity::DataRootFromCmdline("dockerd\0--data-root\0/srv/docker\0"s), "/srv/docker");
  EXPECT_EQ(identity::DataRootFromCmdline("dockerd\0--data-root=/d\0-H\0fd://\0"s), "/d");
  EXPECT_EQ(identity::DataRootFromCmdline("dockerd\0-H\0fd://\0"s), "");
}

Record LocalSockRecord(uint32_t tgid, uint64_t cookie, int32_t fd, uint32_t pid, uint32_t uid,
                       const char* comm, std::string_view path) {
  tap_local_sock s{};
  s.hdr = {TAP_EV_LOCAL_SOCK, tgid, tgid, fd, 400, cookie};
  s.peer_pid = pid;
  s.peer_uid = uid;
  s.peer_gid = uid;
  std::memcpy(s.peer_comm, comm, std::min(std::strlen(comm), sizeof(s.peer_comm) - 1));
  s.path_len = static_cast<uint32_t>(path.size());
  std::memcpy(s.path, path.data(), path.size());
  return AsRecord(s);
}

TEST(LocalPeerTest, SocketPathAndAbstractAddress) {
  Record r = LocalSockRecord(1, 2, 3, 4, 0, "x", std::string_view("/run/docker.sock\0\0", 18));
  EXPECT_EQ(identity::LocalSocketPath(*reinterpret_cast<const tap_local_sock*>(r.data())),
            "/run/docker.sock");
  r = LocalSockRecord(1, 2, 3, 4, 0, "x", std::string_view("\0", 1));
  EXPECT_EQ(identity::LocalSocketPath(*reinterpret_cast<const tap_local_sock*>(r.data())), "@");
}

const std::string kRequest = "GET /v1.41/containers/json HTTP/1.1\r\nHost: docker\r\n\r\n";
const std::string kResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]";

std::vector<std::string> RunLocal(pipeline::PipelineConfig config, uint64_t* ignored = nullptr) {
  config.policy.level = audit::Level::kMetadata;
  output::VectorLineSink sink;
  pipeline::Pipeline p(config, capture::ClockMap{}, &sink, nullptr, {});
  const uint64_t cookie = 77;  // the socket's cookie: the records' connection id
  std::vector<Record> records = {
      LocalSockRecord(10, cookie, 5, 4321, 0, "docker", "/run/docker.sock"),
      DataRecord(10, cookie, 5, TAP_DIR_READ, 0, kRequest, 1000),
      DataRecord(10, cookie, 5, TAP_DIR_WRITE, 0, kResponse, 2000),
      ConnEndRecord(10, cookie, 5, kRequest.size(), kResponse.size(), 3000),
  };
  for (const Record& r : records) p.OnRecord(r.data(), r.size());
  p.Finish(5000);
  if (ignored) *ignored = p.stats().local_ignored_calls;
  EXPECT_EQ(p.stats().local_connections, 1u);
  return sink.lines;
}

TEST(LocalPeerTest, ALocalCallIsWrittenWithThePeersCredentials) {
  const auto lines = RunLocal({});
  ASSERT_EQ(lines.size(), 1u);
  const auto audit = nlohmann::json::parse(lines[0])["audit"];
  EXPECT_EQ(audit["requestURI"], "/v1.41/containers/json");
  EXPECT_EQ(audit["user"]["username"], "root");  // uid 0's name on this host
  EXPECT_EQ(audit["user"]["uid"], "root");
  EXPECT_EQ(audit["user"]["extra"]["username"], nlohmann::json::array({"root"}));
  EXPECT_EQ(audit["user"]["extra"]["pid"], nlohmann::json::array({"4321"}));
  EXPECT_EQ(audit["user"]["extra"]["comm"], nlohmann::json::array({"docker"}));
  EXPECT_EQ(audit["sourceIPs"], nlohmann::json::array({"/run/docker.sock"}));
  EXPECT_EQ(audit["annotations"][pipeline::kUserIdentifiedByAnnotation], "unix-peer-credentials");
}

TEST(LocalPeerTest, AnIgnoredPeersCallIsCountedNotWritten) {
  pipeline::PipelineConfig config;
  config.local_socket_ignore = {"docker"};
  uint64_t ignored = 0;
  EXPECT_TRUE(RunLocal(config, &ignored).empty());
  EXPECT_EQ(ignored, 1u);
}

}  // namespace
}  // namespace mat
