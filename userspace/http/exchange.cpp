#include "http/exchange.h"

namespace mat::http {

namespace {

inline char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

}  // namespace

const std::string* FindHeader(const Headers& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (key.size() != name.size()) continue;
    bool equal = true;
    for (size_t i = 0; i < key.size(); ++i) {
      if (AsciiLower(key[i]) != AsciiLower(name[i])) {
        equal = false;
        break;
      }
    }
    if (equal) return &value;
  }
  return nullptr;
}

}  // namespace mat::http
