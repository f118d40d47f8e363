#include "tap/ssl_probes.h"

#include <capstone/capstone.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>

#include "tap/elf_file.h"

namespace mat::tap {
namespace {

struct CsHandle {
  csh handle = 0;
  bool ok = false;
  CsHandle() { ok = cs_open(CS_ARCH_X86, CS_MODE_64, &handle) == CS_ERR_OK; }
  ~CsHandle() {
    if (ok) cs_close(&handle);
  }
};

constexpr uint64_t kMaxScan = 512;  // bytes of a wrapper function searched for its call

// Direct call targets in the first bytes of a function, in order, stopping at its first ret.
std::vector<uint64_t> DirectCalls(const ElfFile& elf, const ElfSymbol& fn) {
  std::vector<uint64_t> targets;
  CsHandle cs;
  if (!cs.ok) return targets;
  uint64_t size = fn.size ? std::min(fn.size, kMaxScan) : kMaxScan;
  std::string_view code = elf.Bytes(fn.address, size);
  cs_insn* insn = nullptr;
  size_t n = cs_disasm(cs.handle, reinterpret_cast<const uint8_t*>(code.data()), code.size(),
                       fn.address, 0, &insn);
  for (size_t i = 0; i < n; ++i) {
    if (insn[i].id == X86_INS_CALL && insn[i].size == 5 && insn[i].bytes[0] == 0xe8) {
      int32_t rel;
      std::memcpy(&rel, insn[i].bytes + 1, sizeof(rel));
      uint64_t target = insn[i].address + insn[i].size + static_cast<int64_t>(rel);
      if (!elf.InPlt(target)) targets.push_back(target);
    }
    if (insn[i].id == X86_INS_RET && fn.size == 0) break;
  }
  if (n) cs_free(insn, n);
  return targets;
}

// The one function that both wrappers call first, if any.
std::optional<uint64_t> CommonCallee(const ElfFile& elf, const ElfSymbol& a, const ElfSymbol& b) {
  std::vector<uint64_t> calls_b = DirectCalls(elf, b);
  for (uint64_t target : DirectCalls(elf, a))
    if (std::find(calls_b.begin(), calls_b.end(), target) != calls_b.end()) return target;
  return std::nullopt;
}

ProbeSite SiteAt(const ElfFile& elf, ProbeProgram program, uint64_t address, uint64_t offset,
                 std::string function) {
  ProbeSite site{program, offset, std::move(function), "", false};
  std::string_view code = elf.Bytes(address, 16);
  site.emulated = IsEmulatedInstruction(reinterpret_cast<const uint8_t*>(code.data()), code.size(),
                                        &site.instruction);
  return site;
}

// Plans one direction (read or write).
bool PlanDirection(const ElfFile& elf, const char* plain, const char* ex, const char* internal,
                   ProbeProgram enter_ptr4, ProbeProgram enter_ret, ProbeProgram exit,
                   SslProbePlan* plan, bool* used_internal) {
  auto f_plain = elf.FindFunction(plain);
  auto f_ex = elf.FindFunction(ex);
  if (!f_plain) return false;
  if (f_ex) {
    if (auto callee = CommonCallee(elf, *f_plain, *f_ex)) {
      std::string text;
      std::string_view code = elf.Bytes(*callee, 16);
      auto offset = elf.AddressToOffset(*callee);
      if (offset && IsEmulatedInstruction(reinterpret_cast<const uint8_t*>(code.data()),
                                          code.size(), &text)) {
        std::string name = std::string(internal) + " (called by " + plain + " and " + ex + ")";
        plan->sites.push_back(SiteAt(elf, enter_ptr4, *callee, *offset, name));
        plan->sites.push_back(SiteAt(elf, exit, *callee, *offset, name));
        *used_internal = true;
        return true;
      }
    }
  }
  // The public functions themselves: always right, but their first instruction may be slow.
  plan->sites.push_back(SiteAt(elf, enter_ret, f_plain->address, f_plain->file_offset, plain));
  plan->sites.push_back(SiteAt(elf, exit, f_plain->address, f_plain->file_offset, plain));
  if (f_ex) {
    plan->sites.push_back(SiteAt(elf, enter_ptr4, f_ex->address, f_ex->file_offset, ex));
    plan->sites.push_back(SiteAt(elf, exit, f_ex->address, f_ex->file_offset, ex));
  }
  return true;
}

}  // namespace

bool IsPerCallProbe(ProbeProgram program) {
  switch (program) {
    case ProbeProgram::kReadEnterPtr4:
    case ProbeProgram::kReadEnterRet:
    case ProbeProgram::kReadExit:
    case ProbeProgram::kWriteEnterPtr4:
    case ProbeProgram::kWriteEnterRet:
    case ProbeProgram::kWriteExit:
      return true;
    default:
      return false;
  }
}

bool IsEmulatedInstruction(const uint8_t* code, size_t size, std::string* text) {
  CsHandle cs;
  if (!cs.ok || size == 0) return false;
  cs_insn* insn = nullptr;
  size_t n = cs_disasm(cs.handle, code, size, 0, 1, &insn);
  if (n == 0) return false;
  *text = std::string(insn[0].mnemonic) + (insn[0].op_str[0] ? " " : "") + insn[0].op_str;
  bool emulated = false;
  switch (insn[0].id) {
    case X86_INS_NOP:
    case X86_INS_CALL:
    case X86_INS_JMP:
      emulated = true;
      break;
    case X86_INS_PUSH:
      // The kernel emulates push of a general-purpose register (opcodes 50-57, REX 41 50-57).
      emulated = (insn[0].bytes[0] >= 0x50 && insn[0].bytes[0] <= 0x57) ||
                 (insn[0].size == 2 && insn[0].bytes[0] == 0x41 && insn[0].bytes[1] >= 0x50 &&
                  insn[0].bytes[1] <= 0x57);
      break;
    default: {
      // Conditional jumps: 70-7f rel8 and 0f 80-8f rel32.
      uint8_t b0 = insn[0].bytes[0];
      emulated =
          (b0 >= 0x70 && b0 <= 0x7f) ||
          (b0 == 0x0f && insn[0].size >= 2 && insn[0].bytes[1] >= 0x80 && insn[0].bytes[1] <= 0x8f);
    }
  }
  cs_free(insn, n);
  return emulated;
}

namespace {

// d2i_X509 and i2d_X509 (libcrypto), both or none.
std::vector<ProbeSite> CertSites(const ElfFile& elf) {
  auto parse = elf.FindFunction("d2i_X509");
  auto send = elf.FindFunction("i2d_X509");
  if (!parse || !send) return {};
  return {SiteAt(elf, ProbeProgram::kCertParse, parse->address, parse->file_offset, "d2i_X509"),
          SiteAt(elf, ProbeProgram::kCertSend, send->address, send->file_offset, "i2d_X509")};
}

}  // namespace

Result<SslProbePlan> PlanSslProbes(const std::string& path) {
  auto elf = ElfFile::Load(path);
  if (!elf) return Error{elf.error()};
  SslProbePlan plan;
  plan.path = path;
  if (!PlanDirection(*elf, "SSL_read", "SSL_read_ex", "ssl_read_internal",
                     ProbeProgram::kReadEnterPtr4, ProbeProgram::kReadEnterRet,
                     ProbeProgram::kReadExit, &plan, &plan.internal_read) ||
      !PlanDirection(*elf, "SSL_write", "SSL_write_ex", "ssl_write_internal",
                     ProbeProgram::kWriteEnterPtr4, ProbeProgram::kWriteEnterRet,
                     ProbeProgram::kWriteExit, &plan, &plan.internal_write))
    return Error{path + " exports no SSL_read/SSL_write"};
  for (const char* fn : {"SSL_free", "SSL_shutdown"}) {
    if (auto sym = elf->FindFunction(fn))
      plan.sites.push_back(
          SiteAt(*elf, ProbeProgram::kConnEnd, sym->address, sym->file_offset, fn));
  }
  if (auto sym = elf->FindFunction("SSL_do_handshake")) {
    plan.sites.push_back(
        SiteAt(*elf, ProbeProgram::kHandshake, sym->address, sym->file_offset, "SSL_do_handshake"));
    plan.sites.push_back(SiteAt(*elf, ProbeProgram::kHandshakeExit, sym->address, sym->file_offset,
                                "SSL_do_handshake"));
  }
  // OpenSSL linked in statically: libcrypto's functions are in the same file.
  std::vector<ProbeSite> certs = CertSites(*elf);
  plan.sites.insert(plan.sites.end(), certs.begin(), certs.end());
  return plan;
}

Result<std::vector<ProbeSite>> PlanCertProbes(const std::string& path) {
  auto elf = ElfFile::Load(path);
  if (!elf) return Error{elf.error()};
  std::vector<ProbeSite> sites = CertSites(*elf);
  if (sites.empty()) return Error{path + " exports no d2i_X509/i2d_X509"};
  return sites;
}

std::string SslProbePlan::Describe() const {
  std::string out;
  for (const auto& site : sites) {
    if (site.program == ProbeProgram::kReadExit || site.program == ProbeProgram::kWriteExit ||
        site.program == ProbeProgram::kHandshakeExit)
      continue;  // same place as the entry
    out += " " + site.function + " @0x";
    char hex[32];
    std::snprintf(hex, sizeof(hex), "%llx", static_cast<unsigned long long>(site.file_offset));
    out += hex;
    out += " [" + site.instruction + (site.emulated ? ", emulated]" : ", single-stepped]");
    out += ";";
  }
  return out;
}

}  // namespace mat::tap
