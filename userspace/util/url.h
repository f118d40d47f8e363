// Request-target pieces read as Go's net/url reads them (the servers audited are Go's, or agree
// with it here): the one percent-decoder (RFC 3986 "%XX") for paths, query components and
// credentials' fields, and the one query splitter.
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

// url.ParseQuery's walk over a raw query (without '?'): pairs split on '&', empty ones and
// those holding a ';' skipped (Go 1.17 and later), and those whose key or value has a malformed
// escape skipped (Go records the error and goes on). Calls fn(raw_key, raw_value) for each
// other pair, in order, still escaped; a pair without '=' has an empty value. fn returns false
// to stop. Go refuses a query of more than `max_pairs` pairs outright: then fn is never called.
template <typename Fn>
void ForEachQueryPair(std::string_view query, Fn&& fn, size_t max_pairs = 10000) {
  size_t pairs = 1;
  for (char c : query) pairs += c == '&';
  if (pairs > max_pairs) return;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty() || pair.find(';') != std::string_view::npos) continue;
    const size_t eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    const std::string_view value =
        eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (!PercentEscapesValid(key) || !PercentEscapesValid(value)) continue;
    if (!fn(key, value)) return;
  }
}

// r.Form.Get(name) for a request-target: the first value of `name` in its query, decoded;
// nothing when the query has no such key.
inline std::optional<std::string> GoQueryValue(std::string_view target, std::string_view name) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  const std::string_view query = target.substr(q + 1);  // a '#' is part of it, as in Go's
  std::optional<std::string> found;
  std::string key;
  ForEachQueryPair(query, [&](std::string_view raw_key, std::string_view raw_value) {
    key.clear();
    AppendPercentDecoded(raw_key, true, key);
    if (key != name) return true;
    found.emplace();
    AppendPercentDecoded(raw_value, true, *found);
    return false;
  });
  return found;
}

}  // namespace mat
