// Go binaries: build info, function tables and probe sites, checked on programs built here with
// the installed Go toolchain (with symbols, and stripped), on Debian's dockerd (a stripped PIE)
// when installed, and on non-Go, truncated and corrupted files.
//
// The builds use Go's default cgo setting on purpose: that links against the precompiled
// standard library that Debian ships (about 2 s); CGO_ENABLED=0 or -buildmode=pie recompile
// it (15-50 s). The section-less path is exercised in memory instead (WithoutSectionHeaders).
#include "tap/go_binary.h"

#include <elf.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <random>
#include <set>

#include "tap/elf_file.h"
#include "test_support.h"

namespace mat::tap {
namespace {

namespace fs = std::filesystem;

bool InCi() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>{});
}

void WriteFile(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

bool GoOnPath() {
  const char* path = std::getenv("PATH");
  if (!path) return false;
  std::string_view rest(path);
  while (true) {
    size_t colon = rest.find(':');
    fs::path candidate = fs::path(std::string(rest.substr(0, colon))) / "go";
    if (access(candidate.c_str(), X_OK) == 0) return true;
    if (colon == std::string_view::npos) return false;
    rest.remove_prefix(colon + 1);
  }
}

// The test programs, each built at most once per test process (ctest runs every test in its
// own process, so only what a test asks for is built) into a temporary directory with private
// GOCACHE/GOPATH/HOME, offline (stdlib only).
enum GoProgram : unsigned { kNormal = 1, kStripped = 2, kHello = 4 };

struct GoBuilds {
  bool go_missing = false;
  std::string error;  // the first failure; empty while everything asked for was built
  fs::path dir;
  std::string go_version;  // `go env GOVERSION`
  std::string normal, stripped, hello;
  unsigned built = 0;

  ~GoBuilds() {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }

  std::string Env() const {
    return "env HOME='" + (dir / "home").string() + "' GOCACHE='" + (dir / "cache").string() +
           "' GOPATH='" + (dir / "gopath").string() +
           "' GOPROXY=off GOFLAGS=-mod=mod GO111MODULE=on GOWORK=off GOENV=off "
           "GOTOOLCHAIN=local GOTELEMETRY=off ";
  }

  bool Build(const std::string& program, const std::string& flags, const std::string& out) {
    std::string command = "cd '" + std::string(MAT_GO_TESTDATA_DIR) + "/" + program + "' && " +
                          Env() + "go build " + flags + " -o '" + out + "' .";
    std::string output;
    if (mat::testing::RunCommand(command, &output) != 0) {
      error = "go build failed: " + command + "\n" + output;
      return false;
    }
    return true;
  }

  bool Prepare() {
    if (!dir.empty()) return true;
    if (!GoOnPath()) {
      go_missing = true;
      error = "no `go` on PATH";
      return false;
    }
    char tmpl[] = "/tmp/go_binary_test.XXXXXX";
    if (!mkdtemp(tmpl)) {
      error = "mkdtemp failed";
      return false;
    }
    dir = tmpl;
    for (const char* sub : {"home", "cache", "gopath"}) fs::create_directories(dir / sub);
    normal = (dir / "tlsserver").string();
    stripped = (dir / "tlsserver-stripped").string();
    hello = (dir / "hello").string();
    std::string output;
    if (mat::testing::RunCommand(Env() + "go env GOVERSION", &output) != 0) {
      error = "go env GOVERSION failed: " + output;
      return false;
    }
    go_version = output.substr(0, output.find('\n'));
    return true;
  }

  void Need(unsigned programs) {
    if (!error.empty() || !Prepare()) return;
    struct {
      GoProgram program;
      const char* dir;
      const char* flags;
      const std::string& out;
    } const all[] = {{kNormal, "tlsserver", "", normal},
                     {kStripped, "tlsserver", "-ldflags='-s -w'", stripped},
                     {kHello, "hello", "", hello}};
    for (const auto& p : all) {
      if (!(programs & p.program) || (built & p.program)) continue;
      if (!Build(p.dir, p.flags, p.out)) return;
      built |= p.program;
    }
  }
};

const GoBuilds& Builds(unsigned programs) {
  static const std::unique_ptr<GoBuilds> builds = std::make_unique<GoBuilds>();
  builds->Need(programs);
  return *builds;
}

// Builds `programs` or skips the test when there is no Go toolchain (fails instead on CI).
#define REQUIRE_GO_BUILDS(b, programs)                           \
  const GoBuilds& b = Builds(programs);                          \
  if (!b.error.empty()) {                                        \
    if (b.go_missing && !InCi()) GTEST_SKIP() << b.error;        \
    FAIL() << b.error << (b.go_missing ? " (and CI=true)" : ""); \
  }

// What must hold for any plan: sites inside their function, file offsets consistent with the
// entry, every return site a RET byte in the file.
void ExpectSaneFunc(const GoFunc& fn, const std::string& file) {
  SCOPED_TRACE(fn.name);
  ASSERT_NE(fn.address, 0u);
  ASSERT_GT(fn.size, 0u);
  EXPECT_GE(fn.entry.address, fn.address);
  EXPECT_LT(fn.entry.address, fn.address + std::min<uint64_t>(fn.size, 64));
  EXPECT_EQ(fn.entry.file_offset - fn.file_offset, fn.entry.address - fn.address);
  // Go >= 1.17 functions begin with the stack check; its jbe is emulated, before any argument
  // register is touched.
  EXPECT_TRUE(fn.entry.emulated) << fn.entry.instruction;
  EXPECT_EQ(fn.entry.instruction.rfind("jbe ", 0), 0u) << fn.entry.instruction;
  ASSERT_FALSE(fn.returns.empty());
  std::ifstream in(file, std::ios::binary);
  std::set<uint64_t> rets;
  for (const auto& r : fn.returns) {
    EXPECT_GE(r.address, fn.address);
    EXPECT_LT(r.address, fn.address + fn.size);
    EXPECT_EQ(r.file_offset - fn.file_offset, r.address - fn.address);
    // Each site stands for one RET, which is a RET byte in the file.
    EXPECT_TRUE(rets.insert(r.ret_address).second) << "two sites for one RET";
    char byte = 0;
    in.seekg(static_cast<std::streamoff>(r.file_offset + (r.ret_address - r.address)));
    in.read(&byte, 1);
    EXPECT_EQ(static_cast<uint8_t>(byte), 0xc3) << "RET at " << r.ret_address;
    if (r.result_rsp_offset < 0) {
      // On the RET itself: n in AX, single-stepped.
      EXPECT_EQ(r.address, r.ret_address);
      EXPECT_EQ(r.instruction, "ret");
      EXPECT_FALSE(r.emulated);
    } else {
      // On an emulated call shortly before the RET, n in the stack slot AX is loaded from.
      EXPECT_LT(r.address, r.ret_address);
      EXPECT_LT(r.ret_address - r.address, 64u);  // a short epilogue
      EXPECT_EQ(r.instruction.rfind("call ", 0), 0u) << r.instruction;
      EXPECT_TRUE(r.emulated);
      EXPECT_LT(r.result_rsp_offset, 4096);
    }
  }
  EXPECT_EQ(fn.ReturnOffsets().size(), fn.returns.size());
}

void ExpectSanePlan(const GoBinaryInfo& info) {
  EXPECT_EQ(info.tls.read.name, "crypto/tls.(*Conn).Read");
  EXPECT_EQ(info.tls.write.name, "crypto/tls.(*Conn).Write");
  EXPECT_NE(info.tls.read.address, info.tls.write.address);
  ExpectSaneFunc(info.tls.read, info.path);
  ExpectSaneFunc(info.tls.write, info.path);
  EXPECT_EQ(info.tls.go_version, info.go_version);
  EXPECT_GE(info.go_minor, 17);
}

void ExpectSameSites(const GoFunc& a, const GoFunc& b) {
  EXPECT_EQ(a.address, b.address) << a.name;
  EXPECT_EQ(a.entry.address, b.entry.address) << a.name;
  ASSERT_EQ(a.returns.size(), b.returns.size()) << a.name;
  for (size_t i = 0; i < a.returns.size(); ++i)
    EXPECT_EQ(a.returns[i].address, b.returns[i].address) << a.name;
}

TEST(GoVersion, Parses) {
  struct Case {
    const char* text;
    bool ok;
    int major, minor;
  } cases[] = {
      {"go1.19.8", true, 1, 19},
      {"go1.17", true, 1, 17},
      {"go1.21rc2", true, 1, 21},
      {"devel go1.23-abcdef Tue Jan 2 15:04:05 2024 +0000", true, 1, 23},
      {"go1.16.15", true, 1, 16},
      {"gox", false, 0, 0},
      {"", false, 0, 0},
      {"cargo1.2", false, 0, 0},
      {"go1.", false, 0, 0},
  };
  for (const auto& c : cases) {
    int major = 0, minor = 0;
    EXPECT_EQ(ParseGoVersion(c.text, &major, &minor), c.ok) << c.text;
    if (c.ok) {
      EXPECT_EQ(major, c.major) << c.text;
      EXPECT_EQ(minor, c.minor) << c.text;
    }
  }
}

TEST(GoBinary, BuildWithSymbols) {
  REQUIRE_GO_BUILDS(b, kNormal);
  auto info = InspectGoBinary(b.normal);
  ASSERT_TRUE(info) << info.error();
  std::cout << info->Describe() << "\n";
  EXPECT_EQ(info->go_version, b.go_version);
  EXPECT_EQ(info->main_module, "example.com/tlsserver");
  EXPECT_EQ(info->functions_from, "ELF symbols");
  ExpectSanePlan(*info);
}

TEST(GoBinary, StrippedBuildUsesPclntabAndMatches) {
  REQUIRE_GO_BUILDS(b, kNormal | kStripped);
  auto full = InspectGoBinary(b.normal);
  ASSERT_TRUE(full) << full.error();
  auto stripped = InspectGoBinary(b.stripped);
  ASSERT_TRUE(stripped) << stripped.error();
  std::cout << stripped->Describe() << "\n";
  EXPECT_EQ(stripped->go_version, full->go_version);
  EXPECT_NE(stripped->functions_from.find("pclntab"), std::string::npos)
      << stripped->functions_from;
  ExpectSanePlan(*stripped);
  ExpectSameSites(stripped->tls.read, full->tls.read);
  ExpectSameSites(stripped->tls.write, full->tls.write);
  // The pclntab extent runs to the next function, so it includes the alignment padding.
  EXPECT_GE(stripped->tls.read.size, full->tls.read.size);
  EXPECT_LT(stripped->tls.read.size, full->tls.read.size + 64);
}

// The keys capture's probes: (*Config).writeKeyLog, whose nine argument registers must all be
// intact at the entry site, and the handshakes that name the connection; found alike through
// the symbols and, stripped, through pclntab.
TEST(GoBinary, KeyLogAndHandshakeEntries) {
  REQUIRE_GO_BUILDS(b, kNormal | kStripped);
  auto full = InspectGoBinary(b.normal);
  ASSERT_TRUE(full) << full.error();
  auto stripped = InspectGoBinary(b.stripped);
  ASSERT_TRUE(stripped) << stripped.error();
  for (const GoBinaryInfo* info : {&*full, &*stripped}) {
    const GoTlsProbePlan& tls = info->tls;
    EXPECT_TRUE(tls.HasKeyLog()) << info->functions_from;
    for (const GoFunc* fn : {&tls.key_log, &tls.server_handshake, &tls.client_handshake}) {
      SCOPED_TRACE(fn->name + " from " + info->functions_from);
      ASSERT_NE(fn->address, 0u);
      EXPECT_TRUE(fn->entry.emulated) << fn->entry.instruction;
      EXPECT_EQ(fn->entry.instruction.rfind("jbe ", 0), 0u) << fn->entry.instruction;
      EXPECT_LT(fn->entry.address, fn->address + 16);
    }
  }
  EXPECT_EQ(stripped->tls.key_log.entry.address, full->tls.key_log.entry.address);
  EXPECT_EQ(stripped->tls.key_log.entry.file_offset, full->tls.key_log.entry.file_offset);
  EXPECT_EQ(stripped->tls.server_handshake.entry.address, full->tls.server_handshake.entry.address);
  EXPECT_EQ(stripped->tls.client_handshake.entry.address, full->tls.client_handshake.entry.address);
}

TEST(GoBinary, PclntabAgreesWithSymbols) {
  REQUIRE_GO_BUILDS(b, kNormal);
  auto elf = ElfFile::Load(b.normal);
  ASSERT_TRUE(elf) << elf.error();
  auto by_symbols = InspectGoBinary(*elf, b.normal, GoInspectOptions{});
  ASSERT_TRUE(by_symbols) << by_symbols.error();
  auto by_table = InspectGoBinary(*elf, b.normal, GoInspectOptions{true});
  ASSERT_TRUE(by_table) << by_table.error();
  EXPECT_NE(by_table->functions_from.find("Go 1.18/1.19 pclntab (section .gopclntab)"),
            std::string::npos)
      << by_table->functions_from;
  ExpectSameSites(by_table->tls.read, by_symbols->tls.read);
  ExpectSameSites(by_table->tls.write, by_symbols->tls.write);
}

TEST(GoBinary, GoProgramWithoutTls) {
  REQUIRE_GO_BUILDS(b, kHello);
  auto info = InspectGoBinary(b.hello);
  ASSERT_FALSE(info);
  EXPECT_NE(info.error().find("does not use crypto/tls"), std::string::npos) << info.error();
}

constexpr char kDockerd[] = "/usr/sbin/dockerd";

TEST(GoBinary, DebianDockerd) {
  if (!fs::exists(kDockerd)) {
    // tools/setup.sh installs docker.io: on CI its absence is a set-up fault, not a skip.
    const char* ci = std::getenv("CI");
    if (ci != nullptr && std::string_view(ci) == "true") FAIL() << "no " << kDockerd;
    GTEST_SKIP() << "no " << kDockerd;
  }
  auto elf = ElfFile::Load(kDockerd);
  ASSERT_TRUE(elf) << elf.error();
  auto info = InspectGoBinary(*elf, kDockerd, GoInspectOptions{});
  ASSERT_TRUE(info) << info.error();
  std::cout << info->Describe() << "\n";
  EXPECT_EQ(info->go_version.rfind("go1.", 0), 0u) << info->go_version;
  ExpectSanePlan(*info);
  // Its Go function table, found by magic (the PIE keeps it inside .data.rel.ro), agrees with
  // the exported dynamic symbols.
  auto by_table = InspectGoBinary(*elf, kDockerd, GoInspectOptions{true});
  ASSERT_TRUE(by_table) << by_table.error();
  std::cout << by_table->Describe() << "\n";
  EXPECT_NE(by_table->functions_from.find("pclntab"), std::string::npos);
  ExpectSameSites(by_table->tls.read, info->tls.read);
  ExpectSameSites(by_table->tls.write, info->tls.write);
  // The keys capture: writeKeyLog and the handshakes, at their emulated jbe.
  for (const GoBinaryInfo* plan : {&*info, &*by_table}) {
    EXPECT_TRUE(plan->tls.HasKeyLog());
    EXPECT_TRUE(plan->tls.key_log.entry.emulated) << plan->tls.key_log.entry.instruction;
    EXPECT_NE(plan->tls.server_handshake.address, 0u);
  }
  EXPECT_EQ(by_table->tls.key_log.entry.address, info->tls.key_log.entry.address);
  // Go 1.19's Read returns 7 ways; the 5 that run its deferred unlock (every return with data)
  // are probed on that emulated call, the 2 early error returns on their RET.
  if (info->go_version.rfind("go1.19", 0) == 0) {
    const auto& returns = info->tls.read.returns;
    EXPECT_EQ(returns.size(), 7u);
    EXPECT_EQ(std::count_if(returns.begin(), returns.end(),
                            [](const GoProbeSite& r) { return r.emulated; }),
              5);
  }
}

// ---------------------------------------------------------------------------------------------
// Files that must be refused, without crashing.

TEST(GoBinary, NotGo) {
  auto not_go = InspectGoBinary("/bin/true");
  ASSERT_FALSE(not_go);
  EXPECT_NE(not_go.error().find("is not a Go program"), std::string::npos) << not_go.error();
  auto missing = InspectGoBinary("/nonexistent/file");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), "cannot open /nonexistent/file");
}

TEST(GoBinary, RandomBytes) {
  std::mt19937_64 rng(42);
  std::string data(256 * 1024, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  auto random = ElfFile::FromBytes(data, "random");
  ASSERT_FALSE(random);
  EXPECT_EQ(random.error(), "random is not a 64-bit little-endian ELF file");
  // The same behind a valid ELF header taken from /bin/true.
  std::string header = ReadFile("/bin/true").substr(0, sizeof(Elf64_Ehdr));
  ASSERT_EQ(header.size(), sizeof(Elf64_Ehdr));
  data.replace(0, header.size(), header);
  auto elf = ElfFile::FromBytes(data, "random-elf");
  if (elf) {
    auto info = InspectGoBinary(*elf, "random-elf");
    ASSERT_FALSE(info);
    EXPECT_FALSE(info.error().empty());
  }
}

TEST(GoBinary, TruncatedCopies) {
  REQUIRE_GO_BUILDS(b, kStripped);
  std::string full = ReadFile(b.stripped);
  ASSERT_GT(full.size(), 1u << 20);
  auto reference = InspectGoBinary(b.stripped);
  ASSERT_TRUE(reference) << reference.error();
  // Cut before the build info (which sits near the end): always refused.
  for (size_t size : {size_t{0}, size_t{16}, size_t{64}, size_t{4096}, full.size() / 4,
                      full.size() / 2, size_t(reference->tls.read.file_offset + 8)}) {
    auto elf = ElfFile::FromBytes(full.substr(0, size), "truncated");
    if (!elf) continue;
    auto info = InspectGoBinary(*elf, "truncated");
    ASSERT_FALSE(info) << size;
    EXPECT_FALSE(info.error().empty()) << size;
  }
  // Cut near the end (losing the section headers): either refused or the same plan.
  WriteFile((b.dir / "truncated").string(), std::string_view(full).substr(0, full.size() - 4096));
  auto info = InspectGoBinary((b.dir / "truncated").string());
  if (info) {
    ExpectSameSites(info->tls.read, reference->tls.read);
    ExpectSameSites(info->tls.write, reference->tls.write);
  }
  for (size_t cut = 1; cut < 64 * 1024; cut = cut * 3 + 1) {
    auto elf = ElfFile::FromBytes(full.substr(0, full.size() - cut), "truncated");
    if (!elf) continue;
    if (auto i = InspectGoBinary(*elf, "truncated")) {
      EXPECT_EQ(i->tls.read.address, reference->tls.read.address) << cut;
    } else {
      EXPECT_FALSE(i.error().empty());
    }
  }
}

// Targeted and random corruption of a stripped binary, in memory.
class GoBinaryCorrupted : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_GO_BUILDS(b, kStripped);
    original_ = ReadFile(b.stripped);
    auto elf = ElfFile::FromBytes(original_, "stripped");
    ASSERT_TRUE(elf) << elf.error();
    const ElfSection* pcln = elf->FindSection(".gopclntab");
    const ElfSection* build = elf->FindSection(".go.buildinfo");
    ASSERT_NE(pcln, nullptr);
    ASSERT_NE(build, nullptr);
    pclntab_ = pcln->offset;
    pclntab_size_ = pcln->size;
    buildinfo_ = build->offset;
    auto info = InspectGoBinary(*elf, "stripped");
    ASSERT_TRUE(info) << info.error();
    read_ = info->tls.read.address;
    write_ = info->tls.write.address;
  }

  // Inspects `data`; a result must be the original plan, a refusal must say why.
  Result<GoBinaryInfo> Inspect(std::string data, bool must_match = true) {
    auto elf = ElfFile::FromBytes(std::move(data), "corrupt");
    if (!elf) return Error{elf.error()};
    auto info = InspectGoBinary(*elf, "corrupt");
    if (info && must_match) {
      EXPECT_EQ(info->tls.read.address, read_);
      EXPECT_EQ(info->tls.write.address, write_);
    }
    if (!info) {
      EXPECT_FALSE(info.error().empty());
    }
    return info;
  }

  std::string original_;
  uint64_t pclntab_ = 0, pclntab_size_ = 0, buildinfo_ = 0, read_ = 0, write_ = 0;
};

// Without section headers the build info is searched in the first data segment and the
// pclntab by its magic, as for binaries whose section headers were stripped.
TEST_F(GoBinaryCorrupted, WithoutSectionHeaders) {
  std::string data = original_;
  Elf64_Ehdr eh;
  std::memcpy(&eh, data.data(), sizeof(eh));
  eh.e_shoff = 0;
  eh.e_shnum = 0;
  eh.e_shstrndx = 0;
  std::memcpy(data.data(), &eh, sizeof(eh));
  auto elf = ElfFile::FromBytes(data, "no-sections");
  ASSERT_TRUE(elf) << elf.error();
  ASSERT_TRUE(elf->Sections().empty());
  auto info = InspectGoBinary(*elf, "no-sections");
  ASSERT_TRUE(info) << info.error();
  EXPECT_NE(info->functions_from.find("found by magic"), std::string::npos) << info->functions_from;
  EXPECT_EQ(info->tls.read.address, read_);
  EXPECT_EQ(info->tls.write.address, write_);
  EXPECT_FALSE(info->go_version.empty());
}

TEST_F(GoBinaryCorrupted, OldGoVersion) {
  std::string data = original_;
  size_t at = data.find("go1.", buildinfo_);
  ASSERT_NE(at, std::string::npos);
  ASSERT_LT(at, buildinfo_ + 64);
  data[at + 4] = '1';
  data[at + 5] = '6';
  auto info = Inspect(data);
  ASSERT_FALSE(info);
  EXPECT_NE(info.error().find("need Go 1.17 or later"), std::string::npos) << info.error();
}

TEST_F(GoBinaryCorrupted, NotAmd64) {
  std::string data = original_;
  uint16_t machine = EM_AARCH64;
  std::memcpy(data.data() + offsetof(Elf64_Ehdr, e_machine), &machine, sizeof(machine));
  auto info = Inspect(data);
  ASSERT_FALSE(info);
  EXPECT_NE(info.error().find("not x86-64"), std::string::npos) << info.error();
}

TEST_F(GoBinaryCorrupted, BuildInfoLengths) {
  for (uint8_t b : {0x00, 0x7f, 0x80, 0xff}) {
    std::string data = original_;
    data[buildinfo_ + 32] = static_cast<char>(b);  // the version's varint length
    (void)Inspect(data, false);
    data.replace(buildinfo_ + 32, 10, std::string(10, '\xff'));  // varint that never ends
    EXPECT_FALSE(Inspect(data));
  }
  std::string data = original_;
  data[buildinfo_ + 15] = 0;  // old pointer format, pointers now garbage
  auto info = Inspect(data);
  ASSERT_FALSE(info);
  EXPECT_NE(info.error().find("build info"), std::string::npos) << info.error();
}

TEST_F(GoBinaryCorrupted, PclntabHeaderFields) {
  const uint64_t values[] = {
      0,          1,          7,          0x7fffffff, 0x80000000,    0xffffffff,
      0xfffffffa, 1ull << 40, 1ull << 62, ~0ull,      pclntab_size_, pclntab_size_ - 4};
  for (uint64_t field = 0; field < 72; field += 8) {
    for (uint64_t v : values) {
      std::string data = original_;
      std::memcpy(data.data() + pclntab_ + field, &v, sizeof(v));
      SCOPED_TRACE("field " + std::to_string(field) + " = " + std::to_string(v));
      (void)Inspect(std::move(data));
    }
  }
}

TEST_F(GoBinaryCorrupted, RandomFlips) {
  std::mt19937_64 rng(7);
  int refused = 0;
  constexpr int kRounds = 100;
  for (int round = 0; round < kRounds; ++round) {
    std::string data = original_;
    // Flips concentrated on the pclntab header, function table and names, and the build info.
    for (int k = 0; k < 16; ++k) {
      uint64_t region = rng() % 3;
      uint64_t at = region == 0   ? pclntab_ + rng() % 4096
                    : region == 1 ? pclntab_ + rng() % pclntab_size_
                                  : buildinfo_ + rng() % 64;
      data[at] = static_cast<char>(rng());
    }
    if (!Inspect(std::move(data), false)) ++refused;
  }
  std::cout << refused << " of " << kRounds << " corrupted copies refused\n";
}

TEST_F(GoBinaryCorrupted, SectionHeaderFlips) {
  std::mt19937_64 rng(11);
  Elf64_Ehdr eh;
  std::memcpy(&eh, original_.data(), sizeof(eh));
  uint64_t table = eh.e_shoff, size = uint64_t{eh.e_shnum} * eh.e_shentsize;
  ASSERT_LE(table + size, original_.size());
  for (int round = 0; round < 50; ++round) {
    std::string data = original_;
    for (int k = 0; k < 8; ++k) data[table + rng() % size] = static_cast<char>(rng());
    (void)Inspect(std::move(data), false);
  }
}

}  // namespace
}  // namespace mat::tap
