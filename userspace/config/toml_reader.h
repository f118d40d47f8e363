// Reads a TOML file (TOML 1.0, with toml++) into the plain values mke-audit-tap's options take:
// strings, booleans, integers and arrays of those, each with its line. The whole text must be
// valid TOML, so a whole MKE configuration file loads whatever its other sections hold (nested
// arrays, inline tables, multi-line strings, quoted or dotted table names, [[array tables]]);
// only the sections asked for are converted. Errors name the line, never a guess.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "util/result.h"

namespace mat::config {

// A value of a type the options never take (a float, a date or time, a table): its TOML type
// name, so an error can say what was found.
struct TomlOther {
  std::string type;
};

struct TomlValue;
using TomlArray = std::vector<TomlValue>;
struct TomlValue {
  std::variant<std::string, bool, int64_t, TomlArray, TomlOther> v;
  int line = 0;
};

// section name ("" for keys before any header) -> key -> value. A section is a table at the
// top level of the document; a table nested in it is a value of type TomlOther.
using TomlDocument = std::map<std::string, std::map<std::string, TomlValue>>;

// Parses text: the document, or the error "line N: what". When `only` is not empty, only the
// sections named in it are converted (the others are still checked as TOML).
Result<TomlDocument> ParseToml(const std::string& text, const std::vector<std::string>& only = {});

}  // namespace mat::config
