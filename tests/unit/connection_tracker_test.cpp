#include "conn/connection_tracker.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "conn/proc_net.h"
#include "loopback.h"
#include "tap_records.h"

namespace mat::conn {
namespace {

using mat::testing::ConnEndRecord;
using mat::testing::DataRecord;
using mat::testing::FdCloseRecord;
using mat::testing::Record;
using mat::testing::SockRecord;

struct Seen {
  http::HttpExchange exchange;
  http::ExchangeEvent why;
  ConnFacts facts;
};

class TrackerTest : public ::testing::Test {
 protected:
  TrackerTest()
      : tracker_(TrackerOptions{},
                 [this](http::HttpExchange&& e, http::ExchangeEvent why, const ConnFacts& facts) {
                   seen_.push_back({std::move(e), why, facts});
                 }) {}

  void Feed(const Record& r) {
    capture::Event event;
    ASSERT_EQ(capture::DecodeEvent(r.data(), r.size(), &event), capture::DecodeStatus::kOk);
    tracker_.OnEvent(event, event.hdr->ts_ns);
  }

  ConnectionTracker tracker_;
  std::vector<Seen> seen_;
};

constexpr char kGet[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
constexpr char kOk[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

TEST_F(TrackerTest, ServerSideExchangeCarriesPeer) {
  Feed(SockRecord(10, 5, TAP_ROLE_SERVER, "127.0.0.1", 40000));
  Feed(DataRecord(10, 0xabc, 5, TAP_DIR_READ, 0, kGet));
  Feed(DataRecord(10, 0xabc, 5, TAP_DIR_WRITE, 0, kOk));
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].why, http::ExchangeEvent::kResponseComplete);
  EXPECT_EQ(seen_[0].exchange.request.target, "/a");
  EXPECT_EQ(seen_[0].exchange.response->status, 200);
  EXPECT_EQ(seen_[0].facts.source, "127.0.0.1:40000");
  EXPECT_EQ(seen_[0].facts.tgid, 10u);
}

TEST_F(TrackerTest, ClientSideConnectionsAreNotAudited) {
  Feed(SockRecord(10, 6, TAP_ROLE_CLIENT, "10.0.0.1", 443));
  Feed(DataRecord(10, 0xdef, 6, TAP_DIR_WRITE, 0, kGet));
  Feed(DataRecord(10, 0xdef, 6, TAP_DIR_READ, 0, kOk));
  tracker_.CloseAll(10000);
  EXPECT_TRUE(seen_.empty());
  EXPECT_EQ(tracker_.stats().client_side_skipped, 1u);
}

TEST_F(TrackerTest, UnknownSideIsAuditedAsServerWithoutPeer) {
  Record unknown = SockRecord(11, 4, TAP_ROLE_UNKNOWN, "0.0.0.0", 0, 500, /*tid=*/0);
  reinterpret_cast<tap_sock*>(unknown.data())->family = 0;  // /proc knew nothing
  Feed(unknown);
  Feed(DataRecord(11, 0x1, 4, TAP_DIR_READ, 0, kGet));
  Feed(DataRecord(11, 0x1, 4, TAP_DIR_WRITE, 0, kOk));
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].facts.source, "");
  EXPECT_EQ(tracker_.stats().unknown_side, 1u);
}

TEST_F(TrackerTest, PeerLearntAfterTheFirstCallStillReachesTheLine) {
  // The request was read from OpenSSL's buffer without a syscall: no fd yet.
  Feed(DataRecord(12, 0x2, -1, TAP_DIR_READ, 0, kGet));
  capture::Event event;
  Record write = DataRecord(12, 0x2, 8, TAP_DIR_WRITE, 0, kOk);
  ASSERT_EQ(capture::DecodeEvent(write.data(), write.size(), &event), capture::DecodeStatus::kOk);
  EXPECT_TRUE(tracker_.NeedsSocketFacts(event));
  Feed(SockRecord(12, 8, TAP_ROLE_SERVER, "127.0.0.1", 40100));
  EXPECT_FALSE(tracker_.NeedsSocketFacts(event));
  Feed(write);
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].facts.source, "127.0.0.1:40100");
  EXPECT_EQ(tracker_.stats().unknown_side, 0u);
}

TEST_F(TrackerTest, ConnectionFoundToBeClientSideLaterStopsBeingAudited) {
  Feed(DataRecord(13, 0x3, -1, TAP_DIR_WRITE, 0, kGet));
  Feed(SockRecord(13, 9, TAP_ROLE_CLIENT, "127.0.0.1", 443));
  Feed(DataRecord(13, 0x3, 9, TAP_DIR_READ, 0, kOk));
  tracker_.CloseAll(10000);
  EXPECT_TRUE(seen_.empty());
  EXPECT_EQ(tracker_.stats().client_side_skipped, 1u);
}

TEST_F(TrackerTest, PendingRequestIsReportedWhenTheConnectionEnds) {
  Feed(SockRecord(10, 5, TAP_ROLE_SERVER, "127.0.0.1", 40001));
  Feed(DataRecord(10, 0xabc, 5, TAP_DIR_READ, 0, kGet));
  EXPECT_TRUE(seen_.empty());
  Feed(ConnEndRecord(10, 0xabc, 5, sizeof(kGet) - 1, 0));
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].why, http::ExchangeEvent::kNoResponse);
  EXPECT_FALSE(seen_[0].exchange.response.has_value());
  EXPECT_EQ(tracker_.open_connections(), 0u);
}

TEST_F(TrackerTest, FdCloseEndsTheConnection) {
  Feed(SockRecord(10, 5, TAP_ROLE_SERVER, "127.0.0.1", 40002));
  Feed(DataRecord(10, 0xabc, 5, TAP_DIR_READ, 0, kGet));
  Feed(FdCloseRecord(10, 5));
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(tracker_.open_connections(), 0u);
}

TEST_F(TrackerTest, RequestSplitOverManyCallsIsReassembled) {
  Feed(SockRecord(10, 5, TAP_ROLE_SERVER, "127.0.0.1", 40003));
  std::string_view get = kGet;
  for (size_t i = 0; i < get.size(); ++i)
    Feed(DataRecord(10, 0xabc, 5, TAP_DIR_READ, i, get.substr(i, 1)));
  Feed(DataRecord(10, 0xabc, 5, TAP_DIR_WRITE, 0, kOk));
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].exchange.request.target, "/a");
}

TEST_F(TrackerTest, GapInTheRequestStreamIsCountedAndTheNextRequestStillParses) {
  Feed(SockRecord(10, 5, TAP_ROLE_SERVER, "127.0.0.1", 40004));
  std::string first = "POST /big HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789";
  Feed(DataRecord(10, 0xabc, 5, TAP_DIR_READ, 0, first));
  // 90 body bytes lost (a truncated call), then the next request.
  std::string second = "GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
  Feed(DataRecord(10, 0xabc, 5, TAP_DIR_READ, first.size() + 90, second));
  std::string responses = std::string(kOk) + kOk;
  Feed(DataRecord(10, 0xabc, 5, TAP_DIR_WRITE, 0, responses));
  EXPECT_EQ(tracker_.stats().gaps, 1u);
  EXPECT_EQ(tracker_.stats().gap_bytes, 90u);
  bool next_seen = false;
  for (const auto& s : seen_)
    if (s.exchange.request.target == "/next") next_seen = true;
  EXPECT_TRUE(next_seen);
}

TEST_F(TrackerTest, ReusedSslPointerStartsANewConnection) {
  Feed(SockRecord(10, 5, TAP_ROLE_SERVER, "127.0.0.1", 40005));
  Feed(DataRecord(10, 0xabc, 5, TAP_DIR_READ, 0, kGet));
  Feed(DataRecord(10, 0xabc, 5, TAP_DIR_WRITE, 0, kOk));
  // The end of that connection was lost; the same SSL* carries a new one from position 0.
  Feed(SockRecord(10, 7, TAP_ROLE_SERVER, "127.0.0.1", 40006));
  Feed(DataRecord(10, 0xabc, 7, TAP_DIR_READ, 0, kGet));
  Feed(DataRecord(10, 0xabc, 7, TAP_DIR_WRITE, 0, kOk));
  ASSERT_EQ(seen_.size(), 2u);
  EXPECT_EQ(tracker_.stats().restarts, 1u);
  EXPECT_EQ(seen_[1].facts.source, "127.0.0.1:40006");
}

TEST_F(TrackerTest, ProcessExitEndsItsConnectionsOnly) {
  Feed(SockRecord(10, 5, TAP_ROLE_SERVER, "127.0.0.1", 40007));
  Feed(SockRecord(20, 5, TAP_ROLE_SERVER, "127.0.0.1", 40008));
  Feed(DataRecord(10, 0x1, 5, TAP_DIR_READ, 0, kGet));
  Feed(DataRecord(20, 0x1, 5, TAP_DIR_READ, 0, kGet));
  tracker_.OnProcessExit(10, 1);
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].facts.tgid, 10u);
  EXPECT_EQ(tracker_.open_connections(), 1u);
}

TEST(ProcNet, FormatsEndpoints) {
  Endpoint v4{AF_INET, {127, 0, 0, 1}, 8443};
  EXPECT_EQ(FormatEndpoint(v4), "127.0.0.1:8443");
  Endpoint v6{AF_INET6, {}, 443};
  v6.addr[15] = 1;
  EXPECT_EQ(FormatEndpoint(v6), "[::1]:443");
  Endpoint mapped{AF_INET6, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3}, 80};
  EXPECT_EQ(FormatEndpoint(mapped), "10.1.2.3:80");
  EXPECT_EQ(FormatEndpoint(Endpoint{}), "");
}

TEST(ProcNet, FindsOwnListeningSocket) {
  mat::testing::LoopbackListener listener(1);
  ASSERT_TRUE(listener.ok());
  int client = listener.Connect();
  ASSERT_GE(client, 0);
  int server = listener.Accept();
  ASSERT_GE(server, 0);
  sockaddr_in client_addr{};
  socklen_t len = sizeof(client_addr);
  ::getsockname(client, reinterpret_cast<sockaddr*>(&client_addr), &len);

  auto facts = LookupSocket(::getpid(), server);
  ASSERT_TRUE(facts.has_value());
  EXPECT_TRUE(facts->local_port_listening);
  EXPECT_EQ(FormatEndpoint(facts->remote),
            "127.0.0.1:" + std::to_string(ntohs(client_addr.sin_port)));
  auto client_facts = LookupSocket(::getpid(), client);
  ASSERT_TRUE(client_facts.has_value());
  EXPECT_FALSE(client_facts->local_port_listening);
  EXPECT_FALSE(LookupSocket(::getpid(), 0).has_value());  // stdin is no socket
  ::close(server);
  ::close(client);
}

}  // namespace
}  // namespace mat::conn

namespace mat::conn {
namespace {

// At max_connections, a new connection first ends the one idle longest: its waiting request
// is reported (kNoResponse), never dropped silently, and the eviction is counted.
TEST(TrackerCap, NewConnectionEndsTheOneIdleLongest) {
  std::vector<Seen> seen;
  TrackerOptions o;
  o.max_connections = 2;
  ConnectionTracker tracker(
      o, [&](http::HttpExchange&& e, http::ExchangeEvent why, const ConnFacts& facts) {
        seen.push_back({std::move(e), why, facts});
      });
  auto feed = [&](const Record& r) {
    capture::Event event;
    ASSERT_EQ(capture::DecodeEvent(r.data(), r.size(), &event), capture::DecodeStatus::kOk);
    tracker.OnEvent(event, event.hdr->ts_ns);
  };
  const std::string get_b = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  feed(DataRecord(10, 0x1, 5, TAP_DIR_READ, 0, kGet, 1000));  // idle longest
  feed(DataRecord(10, 0x2, 6, TAP_DIR_READ, 0, get_b, 2000));
  EXPECT_TRUE(seen.empty());
  feed(DataRecord(10, 0x3, 7, TAP_DIR_READ, 0, kGet, 3000));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].why, http::ExchangeEvent::kNoResponse);
  EXPECT_EQ(seen[0].exchange.request.target, "/a");
  EXPECT_EQ(seen[0].facts.tls_conn, 0x1u);
  EXPECT_EQ(tracker.stats().connections_evicted, 1u);
  EXPECT_EQ(tracker.open_connections(), 2u);
  // The others go on as usual.
  feed(DataRecord(10, 0x2, 6, TAP_DIR_WRITE, 0, kOk, 4000));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].why, http::ExchangeEvent::kResponseComplete);
  EXPECT_EQ(seen[1].exchange.request.target, "/b");
}

}  // namespace
}  // namespace mat::conn
