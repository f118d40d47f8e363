// Which process a fork or exec event names as a target (ReadTarget), and the TLS library files
// a process maps (TlsLibrarySignature), against a fake /proc tree.
#include "tap/targets.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace {

class TargetsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/mat_targets_testXXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    root_ = dir;
  }
  void TearDown() override { std::system(("rm -rf " + root_).c_str()); }
  // A process: /proc/PID/stat with comm, ppid and start time (field 22).
  void Proc(int pid, const std::string& comm, int ppid, const std::string& maps = "") {
    std::string d = root_ + "/" + std::to_string(pid);
    ::mkdir(d.c_str(), 0755);
    std::ofstream(d + "/stat") << pid << " (" << comm << ") S " << ppid
                               << " 0 0 0 -1 0 0 0 0 0 0 0 0 20 0 1 0 0 " << pid * 10 << " 0 0\n";
    std::ofstream(d + "/maps") << maps;
  }
  std::string root_;
};

TEST_F(TargetsTest, DescendantOfAPidAtAnyDepth) {
  Proc(1, "init", 0);
  Proc(100, "launcher", 1);
  Proc(200, "nginx", 100);
  Proc(300, "nginx", 200);
  Proc(400, "other", 1);
  mat::tap::TargetSpec spec;
  spec.pids = {100};
  auto t = mat::tap::ReadTarget(300, spec, root_);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->pid, 300);
  EXPECT_EQ(t->comm, "nginx");
  EXPECT_EQ(t->start_time, 3000u);
  EXPECT_TRUE(mat::tap::ReadTarget(100, spec, root_));
  EXPECT_FALSE(mat::tap::ReadTarget(400, spec, root_));
  EXPECT_FALSE(mat::tap::ReadTarget(999, spec, root_)) << "gone";
}

TEST_F(TargetsTest, CommMatchesTheKernelsFifteenBytes) {
  Proc(1, "init", 0);
  Proc(10, "a-very-long-ser", 1);  // the kernel keeps 15 bytes of "a-very-long-server"
  Proc(11, "a-very-long", 1);
  mat::tap::TargetSpec spec;
  spec.comms = {"a-very-long-server"};
  EXPECT_TRUE(mat::tap::ReadTarget(10, spec, root_));
  EXPECT_FALSE(mat::tap::ReadTarget(11, spec, root_));
}

TEST_F(TargetsTest, SignatureNamesTheTlsLibraryFilesOnly) {
  Proc(1, "init", 0);
  Proc(50, "nginx", 1,
       "7f00-7f10 r--p 00000000 fd:01 111 /usr/lib/libssl.so.3\n"
       "7f10-7f20 r-xp 00010000 fd:01 111 /usr/lib/libssl.so.3\n"
       "7f20-7f30 r--p 00000000 fd:01 222 /usr/lib/libcrypto.so.3\n"
       "7f30-7f40 r--p 00000000 fd:01 333 /usr/lib/libz.so.1\n");
  Proc(51, "nginx", 1,
       "7f00-7f10 r--p 00000000 fd:01 444 /usr/lib/libssl.so.3 (deleted)\n"
       "7f20-7f30 r--p 00000000 fd:01 222 /usr/lib/libcrypto.so.3\n");
  Proc(52, "go", 1, "0040-0050 r-xp 00000000 fd:01 555 /usr/bin/dockerd\n");
  std::string a = mat::tap::TlsLibrarySignature(50, root_);
  EXPECT_EQ(a, "fd:01 111;fd:01 222;");
  // An upgrade: a new inode at the same path is another signature.
  EXPECT_NE(mat::tap::TlsLibrarySignature(51, root_), a);
  EXPECT_EQ(mat::tap::TlsLibrarySignature(52, root_), "");
  EXPECT_EQ(mat::tap::TlsLibrarySignature(999, root_), "");
}

}  // namespace
