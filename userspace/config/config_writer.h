// Writes a setting back into a TOML configuration file by editing its one line, so that the
// operator's comments, layout and other sections stay as they were (the admin API's PUT uses it
// so that a restart keeps the level it set).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/result.h"

namespace mat::config {

// `text` with `key = value_literal` in [section]: the key's line is rewritten in place (its
// indentation and a trailing comment kept); a missing key is added right under the section's
// header; a missing section is appended. value_literal is TOML ("\"request\"", "false").
// Returns the edited text, or what prevents the edit (the key spans several lines, the section is
// defined as a dotted key or inline table, the result would not be valid TOML).
Result<std::string> SetTomlKey(std::string_view text, std::string_view section,
                               std::string_view key, std::string_view value_literal);

// A TOML basic string literal of `value` ("\"...\"", with quotes and control characters
// escaped).
std::string TomlString(std::string_view value);

// Reads `path`, applies SetTomlKey for each (key, literal) in order, and writes it back in place
// (same inode, mode and owner) when something changed. Fails with why not, naming the file.
Status WriteTomlKeys(const std::string& path, std::string_view section,
                     const std::vector<std::pair<std::string, std::string>>& settings);

}  // namespace mat::config
