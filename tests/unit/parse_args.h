// ParseOptions on a command line given as words (the program name is put first), for the tests
// of options, the configuration file and the admin API's flags.
#pragma once

#include <string>
#include <vector>

#include "options.h"

namespace mat::testing {

inline Result<Options> ParseArgs(std::vector<std::string> args) {
  std::vector<char*> argv;
  static std::string name = "mke-audit-tap";
  argv.push_back(name.data());
  for (auto& a : args) argv.push_back(a.data());
  return ParseOptions(static_cast<int>(argv.size()), argv.data());
}

}  // namespace mat::testing
