#include "tap/go_binary.h"

#include <capstone/capstone.h>
#include <elf.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <utility>

#include "tap/elf_file.h"
#include "tap/ssl_probes.h"

namespace mat::tap {
namespace {

constexpr std::string_view kReadName = "crypto/tls.(*Conn).Read";
constexpr std::string_view kWriteName = "crypto/tls.(*Conn).Write";
constexpr std::string_view kCloseName = "crypto/tls.(*Conn).Close";
constexpr std::string_view kCertsFromClientName = "crypto/tls.(*Conn).processCertsFromClient";
constexpr std::string_view kParseCertName = "crypto/x509.ParseCertificate";
constexpr std::string_view kFull13Name =
    "crypto/tls.(*serverHandshakeStateTLS13).sendServerCertificate";
constexpr std::string_view kFull12Name = "crypto/tls.(*serverHandshakeState).doFullHandshake";
constexpr std::string_view kKeyLogName = "crypto/tls.(*Config).writeKeyLog";
constexpr std::string_view kServerHandshakeName = "crypto/tls.(*Conn).serverHandshake";
constexpr std::string_view kClientHandshakeName = "crypto/tls.(*Conn).clientHandshake";
constexpr uint64_t kMaxFunctionSize = 1 << 20;    // sanity bound for one function
constexpr uint64_t kMaxFunctions = 10'000'000;    // sanity bound for pclntab's nfunc
constexpr uint64_t kBuildInfoSearch = 64 * 1024;  // as debug/buildinfo: first 64 KiB of data
constexpr size_t kEntryScan = 16;                 // instructions searched for the entry site

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Little-endian reads; callers check bounds first.
uint64_t Le64(std::string_view b, uint64_t off) {
  uint64_t v;
  std::memcpy(&v, b.data() + off, sizeof(v));
  return v;
}
uint32_t Le32(std::string_view b, uint64_t off) {
  uint32_t v;
  std::memcpy(&v, b.data() + off, sizeof(v));
  return v;
}
bool Fits(std::string_view b, uint64_t off, uint64_t n) {
  return off <= b.size() && n <= b.size() - off;
}

// Reads pointer-sized words. Position-independent executables may leave a pointer zero in the
// file and carry its value in an R_X86_64_RELATIVE relocation; Resolve() falls back on those.
class Words {
 public:
  explicit Words(const ElfFile& elf) : elf_(elf) {}

  uint64_t Resolve(uint64_t value, uint64_t address) {
    if (value != 0) return value;
    if (!loaded_) {
      relocs_ = elf_.RelativeRelocations();
      loaded_ = true;
    }
    auto it =
        std::lower_bound(relocs_.begin(), relocs_.end(), std::make_pair(address, uint64_t{0}));
    return it != relocs_.end() && it->first == address ? it->second : 0;
  }
  std::optional<uint64_t> Pointer(uint64_t address) {
    std::string_view b = elf_.Bytes(address, 8);
    if (b.size() != 8) return std::nullopt;
    return Resolve(Le64(b, 0), address);
  }

 private:
  const ElfFile& elf_;
  bool loaded_ = false;
  std::vector<std::pair<uint64_t, uint64_t>> relocs_;
};

// ---------------------------------------------------------------------------------------------
// Build info: a 32-byte header "\xff Go buildinf:", pointer size, flags, then either two
// pointers to Go strings (version, module info; before Go 1.18) or, with flag 2, the two
// strings inline as uvarint length + bytes (Go 1.18+).

struct BuildInfo {
  std::string version;
  std::string modinfo;
};

bool ReadUvarint(std::string_view data, uint64_t* pos, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*pos >= data.size()) return false;
    auto byte = static_cast<uint8_t>(data[(*pos)++]);
    v |= uint64_t{byte & 0x7fu} << shift;
    if (!(byte & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

bool ReadInlineString(std::string_view data, uint64_t* pos, std::string* out) {
  uint64_t n;
  if (!ReadUvarint(data, pos, &n) || !Fits(data, *pos, n)) return false;
  out->assign(data.substr(*pos, n));
  *pos += n;
  return true;
}

// A Go string header {ptr, len} at `address`, followed to its bytes.
bool ReadStringAt(const ElfFile& elf, Words& words, uint64_t address, uint64_t max_len,
                  std::string* out) {
  auto ptr = words.Pointer(address);
  auto len = words.Pointer(address + 8);
  if (!ptr || !len || *len > max_len) return false;
  std::string_view bytes = elf.Bytes(*ptr, *len);
  if (bytes.size() != *len) return false;
  out->assign(bytes);
  return true;
}

Result<BuildInfo> ReadBuildInfo(const ElfFile& elf, Words& words) {
  std::string_view data;
  uint64_t vaddr = 0;
  if (const ElfSection* s = elf.FindSection(".go.buildinfo")) {
    data = elf.SectionBytes(*s).substr(0, kBuildInfoSearch);
    vaddr = s->addr;
  } else {
    for (const auto& seg : elf.LoadSegments()) {
      if ((seg.flags & (PF_X | PF_W)) == PF_W) {  // the first data segment
        data = elf.FileBytes(seg.offset, std::min(seg.filesz, kBuildInfoSearch));
        vaddr = seg.vaddr;
        break;
      }
    }
  }
  constexpr std::string_view kMagic("\xff Go buildinf:", 14);
  constexpr uint64_t kHeaderSize = 32;
  uint64_t at = std::string_view::npos;
  for (uint64_t pos = 0;;) {
    uint64_t i = data.find(kMagic, pos);
    if (i == std::string_view::npos || data.size() - i < kHeaderSize) break;
    if (i % 16 == 0) {
      at = i;
      break;
    }
    pos = i + 1;
  }
  if (at == std::string_view::npos) return Error{"is not a Go program (no Go build info)"};
  auto ptr_size = static_cast<uint8_t>(data[at + 14]);
  auto flags = static_cast<uint8_t>(data[at + 15]);
  if (ptr_size != 8 || (flags & 1))
    return Error{"is a Go program for a 32-bit or big-endian target; only x86-64 is supported"};
  BuildInfo info;
  if (flags & 2) {
    uint64_t pos = at + kHeaderSize;
    if (!ReadInlineString(data, &pos, &info.version))
      return Error{"has a malformed Go build info (inline version string)"};
    ReadInlineString(data, &pos, &info.modinfo);  // optional
  } else {
    uint64_t version_ptr = words.Resolve(Le64(data, at + 16), vaddr + at + 16);
    uint64_t modinfo_ptr = words.Resolve(Le64(data, at + 24), vaddr + at + 24);
    if (!ReadStringAt(elf, words, version_ptr, 256, &info.version))
      return Error{"has a malformed Go build info (version string pointer)"};
    ReadStringAt(elf, words, modinfo_ptr, 1 << 20, &info.modinfo);  // optional
  }
  if (info.version.empty() || info.version.size() > 256)
    return Error{"has an empty or oversized Go version string"};
  return info;
}

// The "path" line of the module info, which is framed by 16-byte sentinels.
std::string MainModule(std::string_view modinfo) {
  if (modinfo.size() >= 32) modinfo = modinfo.substr(16, modinfo.size() - 32);
  while (!modinfo.empty()) {
    size_t nl = modinfo.find('\n');
    std::string_view line = modinfo.substr(0, nl);
    if (line.substr(0, 5) == "path\t") return std::string(line.substr(5));
    if (nl == std::string_view::npos) break;
    modinfo.remove_prefix(nl + 1);
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// pclntab, Go's function table (runtime/symtab.go pcHeader, debug/gosym/pclntab.go):
//   magic u32 (0xfffffffa Go 1.16/1.17, 0xfffffff0 Go 1.18/1.19, 0xfffffff1 Go 1.20+),
//   pad u8 u8 (0), minLC u8 (1 on x86), ptrSize u8 (8), then pointer-sized words:
//   nfunc, nfiles, [textStart (1.18+)], funcnameOffset, cuOffset, filetabOffset, pctabOffset,
//   pclnOffset -- offsets relative to the header.
// functab at pclnOffset: nfunc pairs + one final entry (the end of the last function):
//   1.16: {entry uintptr, funcoff uintptr}; 1.18+: {entryoff u32 (from textStart), funcoff u32}.
// funcoff is relative to pclnOffset and points at the _func: 1.16 {entry uintptr, nameoff i32},
// 1.18+ {entryoff u32, nameoff i32}; nameoff indexes NUL-terminated names in funcnametab.

constexpr uint32_t kMagic116 = 0xfffffffa, kMagic118 = 0xfffffff0, kMagic120 = 0xfffffff1;
constexpr uint32_t kMagic12 = 0xfffffffb;

struct PclnTab {
  bool go118 = false;     // 32-bit entry offsets from text_start (1.18 and later)
  std::string_view data;  // from the header to the end of its section or segment
  uint64_t vaddr = 0;     // of the header
  uint64_t nfunc = 0, text_start = 0, funcnametab = 0, pclntab = 0;
  std::string format;  // for the log
};

Result<PclnTab> ParsePclnHeader(const ElfFile& elf, Words& words, std::string_view data,
                                uint64_t vaddr) {
  if (data.size() < 8) return Error{"pclntab too short"};
  uint32_t magic = Le32(data, 0);
  PclnTab t;
  t.data = data;
  t.vaddr = vaddr;
  if (magic == kMagic116) {
    t.format = "Go 1.16/1.17 pclntab";
  } else if (magic == kMagic118 || magic == kMagic120) {
    t.go118 = true;
    t.format = magic == kMagic118 ? "Go 1.18/1.19 pclntab" : "Go 1.20+ pclntab";
  } else if (magic == kMagic12) {
    return Error{"has a Go 1.2-1.15 pclntab (stack-based calling convention, unsupported)"};
  } else {
    return Error{"has an unknown pclntab magic " + Hex(magic)};
  }
  if (data[4] != 0 || data[5] != 0 || data[6] != 1 || data[7] != 8)
    return Error{"has a pclntab header that is not for x86-64 (quantum/pointer size)"};
  const uint64_t words_in_header = t.go118 ? 8 : 7;
  if (!Fits(data, 8, words_in_header * 8)) return Error{"has a truncated pclntab header"};
  auto word = [&](uint64_t i) { return Le64(data, 8 + 8 * i); };
  t.nfunc = word(0);
  t.funcnametab = word(t.go118 ? 3 : 2);
  t.pclntab = word(t.go118 ? 7 : 6);
  const uint64_t field = t.go118 ? 4 : 8;
  if (t.nfunc == 0 || t.nfunc > kMaxFunctions || t.funcnametab >= data.size() ||
      !Fits(data, t.pclntab, (2 * t.nfunc + 1) * field))
    return Error{"has a pclntab header with out-of-range counts or offsets"};
  if (t.go118) {
    t.text_start = words.Resolve(word(2), vaddr + 8 + 16);
    if (t.text_start == 0) {
      // Unrelocated and no relocation: the Go text starts at runtime.text, else at .text.
      if (auto sym = elf.FindFunction("runtime.text"))
        t.text_start = sym->address;
      else if (const ElfSection* text = elf.FindSection(".text"))
        t.text_start = text->addr;
    }
    if (t.text_start == 0) return Error{"has a pclntab without a usable text start"};
  }
  return t;
}

// Entry address of functab slot i (0..nfunc; slot nfunc is the end of the last function).
uint64_t FunctabEntry(const PclnTab& t, Words& words, uint64_t i) {
  if (t.go118) return t.text_start + Le32(t.data, t.pclntab + i * 8);
  uint64_t off = t.pclntab + i * 16;
  return words.Resolve(Le64(t.data, off), t.vaddr + off);
}

// Fills `funcs` (address and size) for the functions named in `names`, by scanning functab.
Status FindInPclnTab(const PclnTab& t, Words& words, const std::vector<std::string_view>& names,
                     std::vector<GoFunc*> funcs) {
  const uint64_t name_field = t.go118 ? 4 : 8;
  for (uint64_t i = 0; i < t.nfunc; ++i) {
    uint64_t funcoff =
        t.go118 ? Le32(t.data, t.pclntab + i * 8 + 4) : Le64(t.data, t.pclntab + i * 16 + 8);
    if (funcoff > t.data.size() - t.pclntab || !Fits(t.data, t.pclntab + funcoff, name_field + 4))
      return Error{"has a corrupt pclntab (function " + std::to_string(i) + " out of range)"};
    const uint64_t func = t.pclntab + funcoff;
    int32_t nameoff;
    std::memcpy(&nameoff, t.data.data() + func + name_field, sizeof(nameoff));
    if (nameoff < 0 || uint64_t(nameoff) >= t.data.size() - t.funcnametab) continue;
    const uint64_t name = t.funcnametab + uint64_t(nameoff);
    for (size_t k = 0; k < names.size(); ++k) {
      std::string_view want = names[k];
      if (!Fits(t.data, name, want.size() + 1) || t.data.compare(name, want.size(), want) != 0 ||
          t.data[name + want.size()] != '\0')
        continue;
      uint64_t entry = FunctabEntry(t, words, i);
      uint64_t end = FunctabEntry(t, words, i + 1);
      uint64_t func_entry = t.go118 ? t.text_start + Le32(t.data, func)
                                    : words.Resolve(Le64(t.data, func), t.vaddr + func);
      if (func_entry != entry || end <= entry || end - entry > kMaxFunctionSize)
        return Error{"has an inconsistent pclntab entry for " + std::string(want)};
      funcs[k]->address = entry;
      funcs[k]->size = end - entry;
    }
  }
  return {};
}

// The pclntab: its section when the section headers name it (".gopclntab", or
// ".data.rel.ro.gopclntab" in position-independent executables), else the first valid header
// found by its magic in the loaded segments.
Result<PclnTab> FindPclnTab(const ElfFile& elf, Words& words) {
  for (const char* name : {".gopclntab", ".data.rel.ro.gopclntab"}) {
    if (const ElfSection* s = elf.FindSection(name)) {
      auto t = ParsePclnHeader(elf, words, elf.SectionBytes(*s), s->addr);
      if (t) t->format += " (section " + std::string(name) + ")";
      return t;
    }
  }
  constexpr std::string_view kTail("\xff\xff\xff\x00\x00\x01\x08", 7);
  std::string last_why;
  for (const auto& seg : elf.LoadSegments()) {
    std::string_view bytes = elf.FileBytes(seg.offset, seg.filesz);
    for (uint64_t pos = 1;;) {
      uint64_t hit = bytes.find(kTail, pos);
      if (hit == std::string_view::npos) break;
      pos = hit + 1;
      uint64_t start = hit - 1;
      auto first = static_cast<uint8_t>(bytes[start]);
      if ((seg.vaddr + start) % 8 != 0 || (first != 0xfa && first != 0xf0 && first != 0xf1))
        continue;
      auto t = ParsePclnHeader(elf, words, bytes.substr(start), seg.vaddr + start);
      if (t) {
        t->format += " (found by magic at file offset " + Hex(seg.offset + start) + ")";
        return t;
      }
      last_why = t.error();
    }
  }
  return Error{last_why.empty() ? "has no Go function table (pclntab)" : last_why};
}

// ---------------------------------------------------------------------------------------------
// Probe sites.

struct CsHandle {
  csh handle = 0;
  bool ok = false;
  CsHandle() {
    ok = cs_open(CS_ARCH_X86, CS_MODE_64, &handle) == CS_ERR_OK &&
         cs_option(handle, CS_OPT_DETAIL, CS_OPT_ON) == CS_ERR_OK;
  }
  ~CsHandle() {
    if (handle) cs_close(&handle);
  }
};

// The integer argument registers of Go's ABI (AX, BX, CX, DI, SI, R8-R11) and g (R14), in any
// width: the entry site must come before any of them is written.
bool IsArgumentRegister(uint16_t reg) {
  switch (reg) {
    case X86_REG_RDI:
    case X86_REG_EDI:
    case X86_REG_DI:
    case X86_REG_DIL:
    case X86_REG_RSI:
    case X86_REG_ESI:
    case X86_REG_SI:
    case X86_REG_SIL:
    case X86_REG_R8:
    case X86_REG_R8D:
    case X86_REG_R8W:
    case X86_REG_R8B:
    case X86_REG_R9:
    case X86_REG_R9D:
    case X86_REG_R9W:
    case X86_REG_R9B:
    case X86_REG_R10:
    case X86_REG_R10D:
    case X86_REG_R10W:
    case X86_REG_R10B:
    case X86_REG_R11:
    case X86_REG_R11D:
    case X86_REG_R11W:
    case X86_REG_R11B:
    case X86_REG_RAX:
    case X86_REG_EAX:
    case X86_REG_AX:
    case X86_REG_AL:
    case X86_REG_AH:
    case X86_REG_RBX:
    case X86_REG_EBX:
    case X86_REG_BX:
    case X86_REG_BL:
    case X86_REG_BH:
    case X86_REG_RCX:
    case X86_REG_ECX:
    case X86_REG_CX:
    case X86_REG_CL:
    case X86_REG_CH:
    case X86_REG_R14:
    case X86_REG_R14D:
    case X86_REG_R14W:
    case X86_REG_R14B:
      return true;
    default:
      return false;
  }
}

bool EndsStraightLine(const cs_insn& insn) {
  for (uint8_t i = 0; i < insn.detail->groups_count; ++i) {
    switch (insn.detail->groups[i]) {
      case CS_GRP_JUMP:
      case CS_GRP_CALL:
      case CS_GRP_RET:
      case CS_GRP_INT:
      case CS_GRP_IRET:
        return true;
      default:
        break;
    }
  }
  return false;
}

GoProbeSite MakeSite(const ElfFile& elf, const cs_insn& insn) {
  GoProbeSite site;
  site.address = insn.address;
  site.file_offset = elf.AddressToOffset(insn.address).value_or(0);
  std::string relative_text;  // disassembled at address 0; ours has the real branch targets
  site.emulated = IsEmulatedInstruction(insn.bytes, insn.size, &relative_text);
  site.instruction = std::string(insn.mnemonic) + (insn.op_str[0] ? " " : "") + insn.op_str;
  return site;
}

// Any part of the register: an epilogue that writes eax or al changes the result as well.
bool IsRax(x86_reg reg) {
  return reg == X86_REG_RAX || reg == X86_REG_EAX || reg == X86_REG_AX || reg == X86_REG_AL ||
         reg == X86_REG_AH;
}

bool IsRsp(x86_reg reg) {
  return reg == X86_REG_RSP || reg == X86_REG_ESP || reg == X86_REG_SP || reg == X86_REG_SPL;
}

// `mov rax, qword ptr [rsp + K]`: K, else -1.
int64_t LoadsRaxFromStack(const cs_insn& insn) {
  if (insn.id != X86_INS_MOV) return -1;
  const cs_x86& x = insn.detail->x86;
  if (x.op_count != 2 || x.operands[0].type != X86_OP_REG || !IsRax(x.operands[0].reg) ||
      x.operands[1].type != X86_OP_MEM || x.operands[1].size != 8)
    return -1;
  const x86_op_mem& m = x.operands[1].mem;
  if (!IsRsp(m.base) || m.index != X86_REG_INVALID || m.segment != X86_REG_INVALID || m.disp < 0 ||
      m.disp > (1 << 20))
    return -1;
  return m.disp;
}

// An epilogue instruction between the load of n and the RET: loads of other result registers
// and of rbp from the frame, and the frame's release. Nothing that writes rax or memory.
bool IsEpilogueInstruction(const cs_insn& insn) {
  const cs_x86& x = insn.detail->x86;
  if (insn.id == X86_INS_MOV && x.op_count == 2 && x.operands[0].type == X86_OP_REG &&
      !IsRax(x.operands[0].reg) && !IsRsp(x.operands[0].reg) &&
      (x.operands[1].type == X86_OP_REG || x.operands[1].type == X86_OP_MEM ||
       x.operands[1].type == X86_OP_IMM))
    return true;
  if (insn.id == X86_INS_XOR && x.op_count == 2 && x.operands[0].type == X86_OP_REG &&
      x.operands[1].type == X86_OP_REG && x.operands[0].reg == x.operands[1].reg &&
      !IsRax(x.operands[0].reg) && !IsRsp(x.operands[0].reg))
    return true;
  if (insn.id == X86_INS_ADD && x.op_count == 2 && x.operands[0].type == X86_OP_REG &&
      IsRsp(x.operands[0].reg) && x.operands[1].type == X86_OP_IMM)
    return true;
  if (insn.id == X86_INS_POP && x.op_count == 1 && x.operands[0].type == X86_OP_REG &&
      x.operands[0].reg == X86_REG_RBP)
    return true;
  return false;
}

// For each RET: the site that stands for it (see the header): an emulated call right before
// `mov rax, [rsp+K]` on a straight-line path to the RET, or the RET itself.
std::vector<GoProbeSite> PlanReturns(const ElfFile& elf, const cs_insn* insn, size_t n) {
  std::set<uint64_t> targets;  // every address a branch of the function can reach
  bool indirect_jump = false;
  for (size_t i = 0; i < n; ++i) {
    const cs_x86& x = insn[i].detail->x86;
    bool jump = false;
    for (uint8_t g = 0; g < insn[i].detail->groups_count; ++g)
      jump |= insn[i].detail->groups[g] == CS_GRP_JUMP;
    if (!jump) continue;
    if (x.op_count == 1 && x.operands[0].type == X86_OP_IMM)
      targets.insert(static_cast<uint64_t>(x.operands[0].imm));
    else
      indirect_jump = true;
  }
  std::vector<GoProbeSite> sites;
  for (size_t r = 0; r < n; ++r) {
    if (insn[r].id != X86_INS_RET) continue;
    GoProbeSite site = MakeSite(elf, insn[r]);
    site.ret_address = insn[r].address;
    // Walk back over the epilogue to the load of n, then one more to the call.
    size_t j = r;
    bool entered = targets.count(insn[r].address) != 0;
    while (j > 0 && !entered && IsEpilogueInstruction(insn[j - 1])) {
      --j;
      entered = targets.count(insn[j].address) != 0;
    }
    if (!indirect_jump && !entered && j >= 2) {
      const cs_insn& load = insn[j - 1];
      const cs_insn& call = insn[j - 2];
      int64_t k = LoadsRaxFromStack(load);
      GoProbeSite at_call = MakeSite(elf, call);
      if (k >= 0 && call.id == X86_INS_CALL && at_call.emulated &&
          targets.count(load.address) == 0) {
        at_call.result_rsp_offset = static_cast<int32_t>(k);
        at_call.ret_address = insn[r].address;
        site = at_call;
      }
    }
    sites.push_back(site);
  }
  return sites;
}

// Disassembles the whole function; the entry site is the first emulated instruction reached on
// every path with AX/BX/CX/R14 not yet written (straight-line code from the entry), else the
// entry itself. Every RET is a return site.
Status PlanFunction(const ElfFile& elf, GoFunc* fn) {
  bool executable = false;
  for (const auto& seg : elf.LoadSegments())
    if ((seg.flags & PF_X) && fn->address >= seg.vaddr && fn->address - seg.vaddr < seg.filesz &&
        fn->size <= seg.filesz - (fn->address - seg.vaddr))
      executable = true;
  auto offset = elf.AddressToOffset(fn->address);
  std::string_view code = elf.Bytes(fn->address, fn->size);
  if (!executable || !offset || fn->size == 0 || code.size() != fn->size)
    return Error{"has " + fn->name + " at " + Hex(fn->address) + "+" + std::to_string(fn->size) +
                 " outside its executable code"};
  fn->file_offset = *offset;
  CsHandle cs;
  if (!cs.ok) return Error{"cannot be disassembled (capstone unavailable)"};
  cs_insn* insn = nullptr;
  size_t n = cs_disasm(cs.handle, reinterpret_cast<const uint8_t*>(code.data()), code.size(),
                       fn->address, 0, &insn);
  uint64_t decoded = 0;
  for (size_t i = 0; i < n; ++i) decoded += insn[i].size;
  Status planned;
  if (n == 0 || decoded != code.size()) {
    planned = Error{"has undecodable code in " + fn->name + " at +" + Hex(decoded)};
  } else {
    fn->entry = MakeSite(elf, insn[0]);
    for (size_t i = 0; i < n && i < kEntryScan; ++i) {
      GoProbeSite site = MakeSite(elf, insn[i]);
      if (site.emulated) {
        fn->entry = site;
        break;
      }
      if (EndsStraightLine(insn[i])) break;
      cs_regs read, written;
      uint8_t nread = 0, nwritten = 0;
      if (cs_regs_access(cs.handle, &insn[i], read, &nread, written, &nwritten) != CS_ERR_OK) break;
      if (std::any_of(written, written + nwritten, IsArgumentRegister)) break;
    }
    fn->returns = PlanReturns(elf, insn, n);
    if (fn->returns.empty()) planned = Error{"has no RET instruction in " + fn->name};
  }
  if (n) cs_free(insn, n);
  return planned;
}

std::string DescribeFunc(const GoFunc& fn) {
  std::string out = fn.name + " @" + Hex(fn.address) + "+" + std::to_string(fn.size) +
                    ": entry probe +" + Hex(fn.entry.address - fn.address) + " [" +
                    fn.entry.instruction +
                    (fn.entry.emulated ? ", emulated]" : ", single-stepped]");
  size_t stepped = std::count_if(fn.returns.begin(), fn.returns.end(),
                                 [](const GoProbeSite& s) { return !s.emulated; });
  out += ", " + std::to_string(fn.returns.size()) + " RET (" +
         std::to_string(fn.returns.size() - stepped) + " probed at the call before, " +
         std::to_string(stepped) + " single-stepped)";
  return out;
}

}  // namespace

bool ParseGoVersion(std::string_view v, int* major, int* minor) {
  for (size_t pos = v.find("go"); pos != std::string_view::npos; pos = v.find("go", pos + 1)) {
    if (pos > 0 && v[pos - 1] != ' ') continue;
    size_t i = pos + 2;
    auto number = [&](int* out) {
      size_t start = i;
      int value = 0;
      while (i < v.size() && i - start < 6 && v[i] >= '0' && v[i] <= '9')
        value = value * 10 + (v[i++] - '0');
      *out = value;
      return i > start;
    };
    int a, b;
    if (!number(&a) || i >= v.size() || v[i] != '.') continue;
    ++i;
    if (!number(&b)) continue;
    *major = a;
    *minor = b;
    return true;
  }
  return false;
}

std::vector<uint64_t> GoFunc::ReturnOffsets() const {
  std::vector<uint64_t> out;
  for (const auto& r : returns) out.push_back(r.file_offset);
  return out;
}

std::string GoTlsProbePlan::Describe() const {
  std::string out = go_version + ": " + DescribeFunc(read) + "; " + DescribeFunc(write);
  for (const GoFunc* fn : {&close, &certs_from_client, &parse_certificate, &full_handshake_tls13,
                           &full_handshake_tls12, &key_log, &server_handshake, &client_handshake})
    out += "; " + (fn->address ? fn->name + " entry [" + fn->entry.instruction +
                                     (fn->entry.emulated ? ", emulated]" : ", single-stepped]")
                               : fn->name + " absent");
  return out;
}

std::string GoBinaryInfo::Describe() const {
  return path + (main_module.empty() ? "" : " (" + main_module + ")") + " " + tls.Describe() +
         "; functions from " + functions_from;
}

Result<GoBinaryInfo> InspectGoBinary(const std::string& path) {
  auto elf = ElfFile::Load(path);
  if (!elf) return Error{elf.error()};
  return InspectGoBinary(*elf, path, GoInspectOptions{});
}

Result<GoBinaryInfo> InspectGoBinary(const ElfFile& elf, const std::string& path,
                                     const GoInspectOptions& options) {
  auto fail = [&](const std::string& reason) { return Error{path + " " + reason}; };
  Words words(elf);
  auto build = ReadBuildInfo(elf, words);
  if (!build) return fail(build.error());
  GoBinaryInfo info;
  info.path = path;
  info.go_version = build->version;
  info.main_module = MainModule(build->modinfo);
  if (elf.Machine() != EM_X86_64)
    return fail("is a Go program for e_machine " + std::to_string(elf.Machine()) + ", not x86-64");
  int major = 0;
  if (!ParseGoVersion(info.go_version, &major, &info.go_minor))
    return fail("has an unrecognised Go version \"" + info.go_version + "\"");
  if (major < 1 || (major == 1 && info.go_minor < 17))
    return fail("is built with " + info.go_version +
                ", which predates the register calling convention (need Go 1.17 or later)");

  GoTlsProbePlan& plan = info.tls;
  plan.go_version = info.go_version;
  plan.read.name = std::string(kReadName);
  plan.write.name = std::string(kWriteName);
  plan.close.name = std::string(kCloseName);
  plan.certs_from_client.name = std::string(kCertsFromClientName);
  plan.parse_certificate.name = std::string(kParseCertName);
  plan.full_handshake_tls13.name = std::string(kFull13Name);
  plan.full_handshake_tls12.name = std::string(kFull12Name);
  plan.key_log.name = std::string(kKeyLogName);
  plan.server_handshake.name = std::string(kServerHandshakeName);
  plan.client_handshake.name = std::string(kClientHandshakeName);
  auto sym_read = elf.FindFunction(kReadName);
  auto sym_write = elf.FindFunction(kWriteName);
  if (!options.ignore_elf_symbols && sym_read && sym_write && sym_read->size && sym_write->size) {
    plan.read.address = sym_read->address;
    plan.read.size = sym_read->size;
    plan.write.address = sym_write->address;
    plan.write.size = sym_write->size;
    for (GoFunc* fn : {&plan.close, &plan.certs_from_client, &plan.parse_certificate,
                       &plan.full_handshake_tls13, &plan.full_handshake_tls12, &plan.key_log,
                       &plan.server_handshake, &plan.client_handshake}) {
      if (auto sym = elf.FindFunction(fn->name); sym && sym->size) {
        fn->address = sym->address;
        fn->size = sym->size;
      }
    }
    info.functions_from = "ELF symbols";
  } else {
    auto table = FindPclnTab(elf, words);
    if (!table) return fail(table.error());
    if (Status found = FindInPclnTab(
            *table, words,
            {kReadName, kWriteName, kCloseName, kCertsFromClientName, kParseCertName, kFull13Name,
             kFull12Name, kKeyLogName, kServerHandshakeName, kClientHandshakeName},
            {&plan.read, &plan.write, &plan.close, &plan.certs_from_client, &plan.parse_certificate,
             &plan.full_handshake_tls13, &plan.full_handshake_tls12, &plan.key_log,
             &plan.server_handshake, &plan.client_handshake});
        !found)
      return fail(found.error());
    info.functions_from = table->format;
  }
  for (const GoFunc* fn : {&plan.read, &plan.write})
    if (fn->address == 0)
      return fail("has no " + fn->name + " (the program does not use crypto/tls)");
  for (GoFunc* fn : {&plan.read, &plan.write})
    if (Status planned = PlanFunction(elf, fn); !planned) return fail(planned.error());
  for (GoFunc* fn :
       {&plan.close, &plan.certs_from_client, &plan.parse_certificate, &plan.full_handshake_tls13,
        &plan.full_handshake_tls12, &plan.key_log, &plan.server_handshake, &plan.client_handshake})
    if (fn->address && !PlanFunction(elf, fn)) fn->address = 0;
  return info;
}

}  // namespace mat::tap
