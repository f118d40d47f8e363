// A small, strict reader for the subset of TOML that mke-audit-tap's configuration uses:
// [section] headers, `key = value` with basic "strings" (escapes \" \\ \n \t \uXXXX),
// 'literal strings', true/false, decimal integers and arrays of those (which may span lines),
// and # comments. Anything else is an error with its line number, never a guess.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace mat::config {

struct TomlValue;
using TomlArray = std::vector<TomlValue>;
struct TomlValue {
  std::variant<std::string, bool, int64_t, TomlArray> v;
  int line = 0;
};

// section name ("" for keys before any header) -> key -> value
using TomlDocument = std::map<std::string, std::map<std::string, TomlValue>>;

// Parses text; on error returns nullopt and sets *error to "line N: what". When `only` is not
// empty, sections not named in it (and [[array tables]]) are skipped line by line unread, so a
// whole MKE configuration file can be given and only our sections are held to the subset.
std::optional<TomlDocument> ParseToml(const std::string& text, std::string* error,
                                      const std::vector<std::string>& only = {});

}  // namespace mat::config
