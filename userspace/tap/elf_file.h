// A minimal, bounds-checked reader of 64-bit little-endian ELF files: symbol lookup in
// .dynsym/.symtab and virtual address -> file offset, which is what uprobes need.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mat::tap {

struct ElfSymbol {
  uint64_t address = 0;  // st_value (virtual address)
  uint64_t size = 0;
  uint64_t file_offset = 0;
};

class ElfFile {
 public:
  // Reads the whole file. Returns nullopt with *error set for unreadable or non-ELF64 files.
  static std::optional<ElfFile> Load(const std::string& path, std::string* error);

  // A defined function symbol by exact name, or by name followed by "@" (versioned names).
  std::optional<ElfSymbol> FindFunction(std::string_view name) const;
  std::optional<uint64_t> AddressToOffset(uint64_t address) const;
  // The file bytes of [address, address+size), clipped to the file; empty when unmapped.
  std::string_view Bytes(uint64_t address, uint64_t size) const;
  // True when address lies in a section named like a PLT (.plt, .plt.sec, .plt.got).
  bool InPlt(uint64_t address) const;

 private:
  struct Segment {
    uint64_t vaddr, filesz, offset;
  };
  struct Section {
    std::string name;
    uint64_t addr, size;
  };
  std::string data_;
  std::vector<Segment> segments_;
  std::vector<Section> sections_;
  std::vector<std::pair<std::string_view, ElfSymbol>> functions_;
};

}  // namespace mat::tap
