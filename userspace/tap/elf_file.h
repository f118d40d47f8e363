// A minimal, bounds-checked reader of 64-bit little-endian ELF files: symbol lookup in
// .dynsym/.symtab and virtual address -> file offset, which is what uprobes need.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace mat::tap {

struct ElfSymbol {
  uint64_t address = 0;  // st_value (virtual address)
  uint64_t size = 0;
  uint64_t file_offset = 0;
};

struct ElfSection {
  std::string name;
  uint64_t addr = 0, size = 0;
  uint32_t type = 0;  // SHT_*
  uint64_t flags = 0, offset = 0;
};

struct ElfSegment {  // a PT_LOAD program header
  uint64_t vaddr = 0, filesz = 0, offset = 0;
  uint32_t flags = 0;  // PF_R | PF_W | PF_X
};

class ElfFile {
 public:
  // Reads the whole file. The error names the file when it is unreadable or not ELF64.
  static Result<ElfFile> Load(const std::string& path);
  // The same from bytes already in memory; `name` only appears in error messages.
  static Result<ElfFile> FromBytes(std::string data, const std::string& name);

  // A defined function symbol by exact name, or by name followed by "@" (versioned names).
  std::optional<ElfSymbol> FindFunction(std::string_view name) const;
  std::optional<uint64_t> AddressToOffset(uint64_t address) const;
  // The file bytes of [address, address+size), clipped to the file; empty when unmapped.
  std::string_view Bytes(uint64_t address, uint64_t size) const;
  // True when address lies in a section named like a PLT (.plt, .plt.sec, .plt.got).
  bool InPlt(uint64_t address) const;

  uint16_t Machine() const { return machine_; }  // e_machine, e.g. EM_X86_64
  const std::vector<ElfSection>& Sections() const { return sections_; }
  const std::vector<ElfSegment>& LoadSegments() const { return segments_; }
  // The first section with this exact name, or nullptr.
  const ElfSection* FindSection(std::string_view name) const;
  // A section's file bytes, clipped to the file; empty for SHT_NOBITS.
  std::string_view SectionBytes(const ElfSection& section) const;
  // Raw file bytes [offset, offset+size), clipped to the file.
  std::string_view FileBytes(uint64_t offset, uint64_t size) const;
  // R_X86_64_RELATIVE relocations of all SHT_RELA sections as (address, addend), sorted by
  // address. Position-independent executables may leave such words zero in the file.
  std::vector<std::pair<uint64_t, uint64_t>> RelativeRelocations() const;

 private:
  using Segment = ElfSegment;
  using Section = ElfSection;
  std::string data_;
  uint16_t machine_ = 0;
  std::vector<Segment> segments_;
  std::vector<Section> sections_;
  std::vector<std::pair<std::string_view, ElfSymbol>> functions_;
};

}  // namespace mat::tap
