#include "tap/elf_file.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>

namespace mat::tap {
namespace {

template <typename T>
bool ReadAt(const std::string& data, uint64_t offset, T* out) {
  if (offset > data.size() || data.size() - offset < sizeof(T)) return false;
  std::memcpy(out, data.data() + offset, sizeof(T));
  return true;
}

}  // namespace

Result<ElfFile> ElfFile::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot open " + path};
  std::string data(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>{});
  return FromBytes(std::move(data), path);
}

Result<ElfFile> ElfFile::FromBytes(std::string data, const std::string& path) {
  ElfFile elf;
  elf.data_ = std::move(data);
  const std::string& d = elf.data_;
  Elf64_Ehdr eh;
  if (!ReadAt(d, 0, &eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
    return Error{path + " is not a 64-bit little-endian ELF file"};
  elf.machine_ = eh.e_machine;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    if (!ReadAt(d, eh.e_phoff + uint64_t{i} * eh.e_phentsize, &ph)) break;
    if (ph.p_type == PT_LOAD)
      elf.segments_.push_back({ph.p_vaddr, ph.p_filesz, ph.p_offset, ph.p_flags});
  }
  std::vector<Elf64_Shdr> shdrs;
  for (unsigned i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr sh;
    if (!ReadAt(d, eh.e_shoff + uint64_t{i} * eh.e_shentsize, &sh)) break;
    shdrs.push_back(sh);
  }
  auto string_at = [&](const Elf64_Shdr& strtab, uint64_t index) -> std::string_view {
    if (strtab.sh_offset > d.size() || index >= strtab.sh_size ||
        strtab.sh_size > d.size() - strtab.sh_offset)
      return {};
    const char* begin = d.data() + strtab.sh_offset + index;
    size_t max = strtab.sh_size - index;
    return std::string_view(begin, strnlen(begin, max));
  };
  if (eh.e_shstrndx < shdrs.size()) {
    for (const auto& sh : shdrs)
      elf.sections_.push_back({std::string(string_at(shdrs[eh.e_shstrndx], sh.sh_name)), sh.sh_addr,
                               sh.sh_size, sh.sh_type, sh.sh_flags, sh.sh_offset});
  }
  for (const auto& sh : shdrs) {
    if ((sh.sh_type != SHT_DYNSYM && sh.sh_type != SHT_SYMTAB) || sh.sh_link >= shdrs.size() ||
        sh.sh_entsize != sizeof(Elf64_Sym))
      continue;
    const Elf64_Shdr& strtab = shdrs[sh.sh_link];
    for (uint64_t off = 0; off + sizeof(Elf64_Sym) <= sh.sh_size; off += sizeof(Elf64_Sym)) {
      Elf64_Sym sym;
      if (!ReadAt(d, sh.sh_offset + off, &sym)) break;
      if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_shndx == SHN_UNDEF || sym.st_value == 0)
        continue;
      std::string_view name = string_at(strtab, sym.st_name);
      if (name.empty()) continue;
      auto offset = elf.AddressToOffset(sym.st_value);
      if (!offset) continue;
      elf.functions_.push_back({name, ElfSymbol{sym.st_value, sym.st_size, *offset}});
    }
  }
  return elf;
}

std::optional<ElfSymbol> ElfFile::FindFunction(std::string_view name) const {
  for (const auto& [sym_name, sym] : functions_) {
    if (sym_name == name) return sym;
    if (sym_name.size() > name.size() && sym_name.substr(0, name.size()) == name &&
        sym_name[name.size()] == '@')
      return sym;
  }
  return std::nullopt;
}

std::optional<uint64_t> ElfFile::AddressToOffset(uint64_t address) const {
  for (const auto& s : segments_)
    if (address >= s.vaddr && address < s.vaddr + s.filesz) return address - s.vaddr + s.offset;
  return std::nullopt;
}

std::string_view ElfFile::Bytes(uint64_t address, uint64_t size) const {
  auto offset = AddressToOffset(address);
  if (!offset || *offset >= data_.size()) return {};
  for (const auto& s : segments_) {
    if (address >= s.vaddr && address < s.vaddr + s.filesz) {
      uint64_t in_segment = s.vaddr + s.filesz - address;
      uint64_t n = std::min({size, in_segment, uint64_t{data_.size() - *offset}});
      return std::string_view(data_.data() + *offset, n);
    }
  }
  return {};
}

bool ElfFile::InPlt(uint64_t address) const {
  for (const auto& s : sections_)
    if (s.name.rfind(".plt", 0) == 0 && address >= s.addr && address < s.addr + s.size) return true;
  return false;
}

const ElfSection* ElfFile::FindSection(std::string_view name) const {
  for (const auto& s : sections_)
    if (s.name == name) return &s;
  return nullptr;
}

std::string_view ElfFile::SectionBytes(const ElfSection& section) const {
  if (section.type == SHT_NOBITS) return {};
  return FileBytes(section.offset, section.size);
}

std::string_view ElfFile::FileBytes(uint64_t offset, uint64_t size) const {
  if (offset >= data_.size()) return {};
  return std::string_view(data_.data() + offset, std::min(size, uint64_t{data_.size() - offset}));
}

std::vector<std::pair<uint64_t, uint64_t>> ElfFile::RelativeRelocations() const {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const auto& s : sections_) {
    if (s.type != SHT_RELA) continue;
    std::string_view bytes = SectionBytes(s);
    for (size_t off = 0; off + sizeof(Elf64_Rela) <= bytes.size(); off += sizeof(Elf64_Rela)) {
      Elf64_Rela rela;
      std::memcpy(&rela, bytes.data() + off, sizeof(rela));
      if (ELF64_R_TYPE(rela.r_info) == R_X86_64_RELATIVE)
        out.emplace_back(rela.r_offset, static_cast<uint64_t>(rela.r_addend));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace mat::tap
