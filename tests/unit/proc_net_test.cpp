// OpenTcpConnections: the connected TCP sockets of a process, read from /proc, against sockets
// this test opens itself.
#include "conn/proc_net.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

unsigned long InodeOf(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 ? st.st_ino : 0;
}

TEST(ProcNetTest, OpenTcpConnectionsNamesConnectedSocketsNotListeners) {
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  auto before = mat::conn::OpenTcpConnections(::getpid());
  EXPECT_EQ(before.count(InodeOf(listener)), 0u);

  int client = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  int accepted = ::accept(listener, nullptr, nullptr);
  ASSERT_GE(accepted, 0);

  auto open = mat::conn::OpenTcpConnections(::getpid());
  EXPECT_EQ(open.count(InodeOf(listener)), 0u);
  EXPECT_EQ(open.count(InodeOf(client)), 1u);
  EXPECT_EQ(open.count(InodeOf(accepted)), 1u);

  unsigned long gone = InodeOf(accepted);
  ::close(accepted);
  EXPECT_EQ(mat::conn::OpenTcpConnections(::getpid()).count(gone), 0u);
  ::close(client);
  ::close(listener);
}

TEST(ProcNetTest, OpenTcpConnectionsOfNoProcessIsEmpty) {
  EXPECT_TRUE(mat::conn::OpenTcpConnections(0x7ffffff0).empty());
}

}  // namespace
