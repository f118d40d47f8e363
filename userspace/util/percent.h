// Percent-encoding (RFC 3986 "%XX") of request targets, read as Go's net/url reads it: the one
// decoder for paths, query components and credentials' fields.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mat {

// The value of a hex digit (either case), -1 for anything else.
constexpr int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Go's unescape fails when a '%' is not followed by two hex digits.
inline bool PercentEscapesValid(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') continue;
    if (i + 2 >= s.size() || HexDigitValue(s[i + 1]) < 0 || HexDigitValue(s[i + 2]) < 0) {
      return false;
    }
    i += 2;
  }
  return true;
}

// True when AppendPercentDecoded would change `s`.
inline bool NeedsPercentDecoding(std::string_view s, bool query) {
  return s.find('%') != std::string_view::npos || (query && s.find('+') != std::string_view::npos);
}

// Appends `s` with each valid "%XX" decoded (and '+' as ' ' in a query component); a malformed
// escape is copied as written. Lenient on purpose: what a router might still match.
inline void AppendPercentDecoded(std::string_view s, bool query, std::string& out) {
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const int hi = c == '%' && i + 2 < s.size() ? HexDigitValue(s[i + 1]) : -1;
    const int lo = hi >= 0 ? HexDigitValue(s[i + 2]) : -1;
    if (lo >= 0) {
      out.push_back(static_cast<char>(hi << 4 | lo));
      i += 2;
    } else if (c == '+' && query) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
}

// A path (or any non-query text) with its valid escapes decoded; malformed ones kept as written.
inline std::string PercentDecoded(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  AppendPercentDecoded(s, false, out);
  return out;
}

// url.PathUnescape: nothing when an escape is malformed (Go's error), else the decoded text.
inline std::optional<std::string> GoPathUnescape(std::string_view s) {
  if (!PercentEscapesValid(s)) return std::nullopt;
  return PercentDecoded(s);
}

}  // namespace mat
