// OpenTcpConnections: the connected TCP sockets of a process, read from /proc, against sockets
// this test opens itself; ListeningPortCache: which side of a connection a target is.
#include "conn/proc_net.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loopback.h"

namespace {

using mat::testing::LoopbackListener;

unsigned long InodeOf(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 ? st.st_ino : 0;
}

TEST(ProcNetTest, OpenTcpConnectionsNamesConnectedSocketsNotListeners) {
  LoopbackListener listener;
  ASSERT_TRUE(listener.ok());

  auto before = mat::conn::OpenTcpConnections(::getpid());
  EXPECT_EQ(before.count(InodeOf(listener.fd())), 0u);

  int client = listener.Connect();
  ASSERT_GE(client, 0);
  int accepted = listener.Accept();
  ASSERT_GE(accepted, 0);

  auto open = mat::conn::OpenTcpConnections(::getpid());
  EXPECT_EQ(open.count(InodeOf(listener.fd())), 0u);
  EXPECT_EQ(open.count(InodeOf(client)), 1u);
  EXPECT_EQ(open.count(InodeOf(accepted)), 1u);

  unsigned long gone = InodeOf(accepted);
  ::close(accepted);
  EXPECT_EQ(mat::conn::OpenTcpConnections(::getpid()).count(gone), 0u);
  ::close(client);
}

// A connection is first looked at when its first record is read, which can be after its
// server closed the listener (a worker exiting under nginx -s quit, or gone): the port seen
// listening a moment ago still makes it the server side; not for ever.
TEST(ProcNetTest, ListeningPortSeenRecentlyStillCountsOnceTheListenerIsGone) {
  LoopbackListener listener;
  ASSERT_TRUE(listener.ok());
  const uint16_t port = listener.port();
  const uint64_t second = 1000000000ull, t0 = 1000 * second;
  const int gone = 0x7ffffff0;

  mat::conn::ListeningPortCache cache(second);
  EXPECT_FALSE(cache.IsListening(gone, port, t0));  // never seen listening
  EXPECT_TRUE(cache.IsListening(::getpid(), port, t0));
  listener.Close();
  EXPECT_TRUE(cache.IsListening(gone, port, t0 + 2 * second));
  EXPECT_TRUE(cache.IsListening(::getpid(), port, t0 + 3 * second));
  EXPECT_FALSE(cache.IsListening(gone, port, t0 + mat::conn::ListeningPortCache::kRecentNs + 1));
}

TEST(ProcNetTest, OpenTcpConnectionsOfNoProcessIsEmpty) {
  EXPECT_TRUE(mat::conn::OpenTcpConnections(0x7ffffff0).empty());
}

}  // namespace
