// The keys capture's socket path against the real kernel (needs root): the test process makes
// itself a keys target (the targets map only, no uprobe), moves known bytes over loopback TCP
// with every covered syscall family, and checks that the TAP_EV_CIPHER records reproduce each
// socket's two byte streams exactly, at the right positions, with a TAP_EV_SOCK at first sight
// and a TAP_EV_SOCK_CLOSE once the socket reaches TCP_CLOSE. A child process, no target, moves
// bytes too and must produce nothing.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "loopback.h"
#include "tap/bpf_tap.h"
#include "test_support.h"

namespace {

using mat::tap::BpfTap;
using mat::testing::ErrorOf;
using mat::testing::LoopbackListener;

struct Stream {
  std::string bytes;  // reassembled by position
  std::vector<bool> seen;
  uint64_t records = 0;
  bool overlap = false;
};

struct Captured {
  std::map<std::pair<uint64_t, int>, Stream> streams;  // (sk, dir)
  std::map<uint64_t, tap_sock> socks;                  // first TAP_EV_SOCK per sk
  std::map<uint64_t, int> sock_records;                // TAP_EV_SOCK per sk
  std::map<uint64_t, tap_hdr> closes;                  // TAP_EV_SOCK_CLOSE per sk
  std::map<uint64_t, int32_t> fds;                     // fd of the cipher records per sk
  std::vector<uint32_t> cipher_tgids;
  bool bad_record = false;

  void Add(const void* data, size_t size) {
    if (size < sizeof(tap_hdr)) {
      bad_record = true;
      return;
    }
    tap_hdr h;
    std::memcpy(&h, data, sizeof(h));
    if (h.type == TAP_EV_CIPHER) {
      if (size < TAP_DATA_HDR_BYTES) {
        bad_record = true;
        return;
      }
      const auto* d = static_cast<const tap_data*>(data);
      if (size != TAP_DATA_HDR_BYTES + d->len || d->len > TAP_CHUNK_BYTES) {
        bad_record = true;
        return;
      }
      cipher_tgids.push_back(h.tgid);
      fds[h.conn] = h.fd;
      Stream& s = streams[{h.conn, d->dir}];
      ++s.records;
      uint64_t end = d->pos + d->len;
      if (s.bytes.size() < end) {
        s.bytes.resize(end);
        s.seen.resize(end);
      }
      for (uint32_t i = 0; i < d->len; ++i) {
        if (s.seen[d->pos + i]) s.overlap = true;
        s.seen[d->pos + i] = true;
        s.bytes[d->pos + i] = static_cast<char>(d->data[i]);
      }
    } else if (h.type == TAP_EV_SOCK && size == sizeof(tap_sock)) {
      tap_sock sock;
      std::memcpy(&sock, data, sizeof(sock));
      if (!socks.count(h.conn)) socks[h.conn] = sock;
      ++sock_records[h.conn];
    } else if (h.type == TAP_EV_SOCK_CLOSE) {
      closes[h.conn] = h;
    }
  }
  // The stream of (sk, dir) when every byte of it was delivered.
  std::string Complete(uint64_t sk, int dir) const {
    auto it = streams.find({sk, dir});
    if (it == streams.end()) return "";
    for (bool b : it->second.seen)
      if (!b) return "<gap>";
    return it->second.bytes;
  }
};

std::string Pattern(size_t n, int seed) {
  std::string s(n, '\0');
  uint32_t x = 2463534242u + seed;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s[i] = static_cast<char>(x);
  }
  return s;
}

// Reads exactly n bytes with read().
std::string ReadN(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, out.data() + got, n - got);
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

void WriteAll(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t w = ::write(fd, s.data() + done, s.size() - done);
    if (w <= 0) break;
    done += static_cast<size_t>(w);
  }
}

// The struct sock * of a socket as the kernel tap names it is not visible to userspace: the
// test ties records to sockets by their TAP_EV_SOCK local port.
uint16_t LocalPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

class CipherTapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (BPF)";
    auto tap = BpfTap::Create(mat::tap::TapOptions{},
                              [this](const void* data, size_t size) { captured_.Add(data, size); });
    ASSERT_TRUE(tap) << tap.error();
    tap_ = std::move(*tap);
    listener_.emplace(8);
    ASSERT_TRUE(listener_->ok());
    port_ = listener_->port();
  }
  void Connect(int* client, int* server) {
    *client = listener_->Connect();
    ASSERT_GE(*client, 0);
    *server = listener_->Accept();
    ASSERT_GE(*server, 0);
  }
  void Drain() {
    while (tap_->Consume() > 0) {
    }
  }
  // The sk whose TAP_EV_SOCK has these ports, 0 if none. (Accepted sockets share the
  // listener's local port: the peer's port tells them apart.)
  uint64_t SkWithPorts(uint16_t local, uint16_t peer) const {
    for (const auto& [sk, sock] : captured_.socks)
      if (sock.local_port == local && sock.port == peer) return sk;
    return 0;
  }

  std::unique_ptr<BpfTap> tap_;
  Captured captured_;
  std::optional<LoopbackListener> listener_;
  uint16_t port_ = 0;
};

TEST_F(CipherTapTest, SocketBytesOfEverySyscallFamilyInOrder) {
  // Before the process is a target: nothing.
  int c0, s0;
  Connect(&c0, &s0);
  WriteAll(c0, "before");
  EXPECT_EQ(ReadN(s0, 6), "before");
  Drain();
  EXPECT_TRUE(captured_.cipher_tgids.empty());
  mat::tap::TargetProcess self{getpid(), "cipher_tap_test", 0};
  ASSERT_EQ(ErrorOf(tap_->AddSocketOnlyTarget(self)), "");
  EXPECT_EQ(tap_->SyscallTracepointCount(), 0u) << "no plaintext target: no syscall tracepoint";

  int client, server;
  Connect(&client, &server);
  std::string up, down;  // what the client sent, what the server sent

  // write / read, with a body larger than a record and than one read.
  std::string a = Pattern(100000, 1);
  std::thread writer([&] { WriteAll(client, a); });
  EXPECT_EQ(ReadN(server, a.size()), a);
  writer.join();
  up += a;

  // send / recv, with a MSG_PEEK first that must not count.
  std::string b = Pattern(3000, 2);
  ASSERT_EQ(send(server, b.data(), b.size(), 0), ssize_t(b.size()));
  down += b;
  std::string peek(10, '\0');
  ASSERT_EQ(recv(client, peek.data(), peek.size(), MSG_PEEK), 10);
  std::string got(b.size(), '\0');
  size_t n = 0;
  while (n < b.size()) {
    ssize_t r = recv(client, got.data() + n, b.size() - n, 0);
    ASSERT_GT(r, 0);
    n += size_t(r);
  }
  EXPECT_EQ(got, b);

  // writev / readv with iovecs of odd sizes, one empty.
  std::string c1 = Pattern(7, 3), c2 = Pattern(20000, 4), c3 = Pattern(1, 5);
  iovec wv[4] = {{c1.data(), c1.size()}, {nullptr, 0}, {c2.data(), c2.size()}, {c3.data(), 1}};
  std::thread vwriter([&] {
    size_t total = c1.size() + c2.size() + 1;
    ssize_t w = writev(client, wv, 4);
    ASSERT_EQ(w, ssize_t(total));
  });
  std::string r1(5, '\0'), r2(30000, '\0');
  size_t want = c1.size() + c2.size() + 1, have = 0;
  std::string vin;
  while (have < want) {
    iovec rv[2] = {{r1.data(), r1.size()}, {r2.data(), r2.size()}};
    ssize_t r = readv(server, rv, 2);
    ASSERT_GT(r, 0);
    std::string joined = r1 + r2;
    vin += joined.substr(0, size_t(r));
    have += size_t(r);
  }
  vwriter.join();
  EXPECT_EQ(vin, c1 + c2 + c3);
  up += c1 + c2 + c3;

  // sendmsg / recvmsg.
  std::string d1 = Pattern(11, 6), d2 = Pattern(17000, 7);
  iovec sv[2] = {{d1.data(), d1.size()}, {d2.data(), d2.size()}};
  msghdr sm{};
  sm.msg_iov = sv;
  sm.msg_iovlen = 2;
  std::thread mwriter([&] { ASSERT_EQ(sendmsg(server, &sm, 0), ssize_t(d1.size() + d2.size())); });
  std::string min;
  while (min.size() < d1.size() + d2.size()) {
    std::string m1(3, '\0'), m2(9000, '\0');
    iovec rv[2] = {{m1.data(), m1.size()}, {m2.data(), m2.size()}};
    msghdr rm{};
    rm.msg_iov = rv;
    rm.msg_iovlen = 2;
    ssize_t r = recvmsg(client, &rm, 0);
    ASSERT_GT(r, 0);
    min += (m1 + m2).substr(0, size_t(r));
  }
  mwriter.join();
  EXPECT_EQ(min, d1 + d2);
  down += d1 + d2;

  // A child, no target, moving bytes on its own connection.
  pid_t child = fork();
  if (child == 0) {
    int cc = listener_->Connect();
    if (cc < 0) _exit(1);
    WriteAll(cc, "child bytes");
    std::string echo = ReadN(cc, 4);
    _exit(echo == "back" ? 0 : 2);
  }
  int from_child = listener_->Accept();
  ASSERT_GE(from_child, 0);
  EXPECT_EQ(ReadN(from_child, 11), "child bytes");
  WriteAll(from_child, "back");
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  close(from_child);

  const uint16_t client_port = LocalPort(client), server_port = LocalPort(server);
  Drain();
  close(client);
  close(server);
  // Both ends reach TCP_CLOSE once the FINs are acknowledged (loopback: at once).
  uint64_t client_sk = 0, server_sk = 0;
  for (int i = 0; i < 100; ++i) {
    Drain();
    client_sk = SkWithPorts(client_port, port_);
    server_sk = SkWithPorts(server_port, client_port);
    if (client_sk && server_sk && captured_.closes.count(client_sk) &&
        captured_.closes.count(server_sk))
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_NE(client_sk, 0u) << "no TAP_EV_SOCK for the client socket";
  ASSERT_NE(server_sk, 0u) << "no TAP_EV_SOCK for the server socket";
  EXPECT_FALSE(captured_.bad_record);

  // Each direction of each socket, byte for byte.
  EXPECT_TRUE(captured_.Complete(client_sk, TAP_DIR_WRITE) == up) << "client sent";
  EXPECT_TRUE(captured_.Complete(server_sk, TAP_DIR_READ) == up) << "server received";
  EXPECT_TRUE(captured_.Complete(server_sk, TAP_DIR_WRITE) == down) << "server sent";
  EXPECT_TRUE(captured_.Complete(client_sk, TAP_DIR_READ) == down) << "client received";
  for (const auto& [key, stream] : captured_.streams) EXPECT_FALSE(stream.overlap);
  EXPECT_GT((captured_.streams[{client_sk, TAP_DIR_WRITE}].records), 7u)
      << "100000 bytes need at least 7 records";
  EXPECT_EQ(captured_.fds[client_sk], client);
  EXPECT_EQ(captured_.fds[server_sk], server);

  // First sight: one TAP_EV_SOCK per socket, with both ends' ports.
  EXPECT_EQ(captured_.sock_records[client_sk], 1);
  EXPECT_EQ(captured_.sock_records[server_sk], 1);
  const tap_sock& cs = captured_.socks[client_sk];
  EXPECT_EQ(cs.family, AF_INET);
  EXPECT_EQ(cs.port, port_);
  EXPECT_EQ(cs.role, uint32_t(TAP_ROLE_UNKNOWN));
  const uint8_t loopback[4] = {127, 0, 0, 1};
  EXPECT_EQ(std::memcmp(cs.addr, loopback, 4), 0);
  EXPECT_EQ(captured_.socks[server_sk].port, client_port);
  EXPECT_EQ(captured_.socks[server_sk].local_port, port_);

  // Closed, with the fd and process of the socket.
  ASSERT_TRUE(captured_.closes.count(client_sk));
  ASSERT_TRUE(captured_.closes.count(server_sk));
  EXPECT_EQ(captured_.closes[client_sk].fd, client);
  EXPECT_EQ(captured_.closes[server_sk].tgid, uint32_t(getpid()));

  // Only this process's sockets: not the child's, not the connection before it was a target.
  for (uint32_t tgid : captured_.cipher_tgids) EXPECT_EQ(tgid, uint32_t(getpid()));
  EXPECT_EQ(captured_.socks.size(), 3u) << "client, server, and the server end of the child's";

  mat::tap::Counters counters = tap_->ReadCounters();
  EXPECT_EQ(counters[TAP_CNT_CIPHER_UNCOVERED], 0u);
  EXPECT_EQ(counters[TAP_CNT_READ_FAULTS], 0u);
  EXPECT_EQ(counters[TAP_CNT_RINGBUF_DROPS], 0u);
  EXPECT_EQ(counters[TAP_CNT_CIPHER_BYTES], 2 * (up.size() + down.size()) + 11 + 4);
  close(c0);
  close(s0);
}

// A socket call from a syscall the copy does not follow (sendmmsg): its bytes are counted as
// uncovered and leave a gap; the position moves past them.
TEST_F(CipherTapTest, SyscallsTheCopyCannotFollowLeaveAGap) {
  mat::tap::TargetProcess self{getpid(), "cipher_tap_test", 0};
  ASSERT_EQ(ErrorOf(tap_->AddSocketOnlyTarget(self)), "");
  int client, server;
  Connect(&client, &server);
  WriteAll(client, "first");
  EXPECT_EQ(ReadN(server, 5), "first");
  // sendmmsg is not followed: its bytes are a gap, counted.
  std::string mid = "middle";
  iovec v{mid.data(), mid.size()};
  mmsghdr mm{};
  mm.msg_hdr.msg_iov = &v;
  mm.msg_hdr.msg_iovlen = 1;
  ASSERT_EQ(sendmmsg(client, &mm, 1, 0), 1);
  EXPECT_EQ(ReadN(server, 6), "middle");
  WriteAll(client, "last");
  EXPECT_EQ(ReadN(server, 4), "last");
  const uint16_t client_port = LocalPort(client);
  Drain();
  uint64_t sk = SkWithPorts(client_port, port_);
  ASSERT_NE(sk, 0u);
  const Stream& s = captured_.streams[{sk, TAP_DIR_WRITE}];
  ASSERT_EQ(s.bytes.size(), 15u);
  EXPECT_EQ(s.bytes.substr(0, 5), "first");
  EXPECT_EQ(s.bytes.substr(11, 4), "last");
  EXPECT_FALSE(s.seen[5]) << "the sendmmsg bytes are a gap, not data";
  EXPECT_GE(tap_->ReadCounters()[TAP_CNT_CIPHER_UNCOVERED], 1u);
  close(client);
  close(server);
}

}  // namespace
