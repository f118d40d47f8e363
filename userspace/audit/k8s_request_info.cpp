// Kubernetes request facts, following k8s.io/apiserver's RequestInfoFactory.NewRequestInfo
// (pkg/endpoints/request/requestinfo.go at kubernetes/apiserver 24a394e5) and the Go code it
// leans on: net/url's request-target and query parsing, the meta/v1 ListOptions query decode
// (k8s.io/apimachinery eed236ce: runtime conversions, fields.ParseSelector, labels.Parse) and
// content.IsPathSegmentName. Written from those rules; no regex, and views into the input
// wherever no decoding is needed.
#include "audit/k8s_request_info.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>

#include "util/ascii.h"
#include "util/url.h"

namespace mat::audit {
namespace {

constexpr std::size_t kNpos = std::string_view::npos;

// ---------------------------------------------------------------------------------------------
// Characters

bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsAlnum(unsigned char c) { return IsDigit(c) || IsAlpha(c); }
bool IsLowerAlnum(unsigned char c) { return IsDigit(c) || (c >= 'a' && c <= 'z'); }

std::string AsciiLowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

bool IsValidMethod(std::string_view method) {
  if (method.empty()) return false;
  return std::all_of(method.begin(), method.end(),
                     [](char c) { return IsHttpTokenChar(static_cast<unsigned char>(c)); });
}

// ---------------------------------------------------------------------------------------------
// net/url escapes

// `s` itself when nothing needs decoding, else the decoded text in `scratch`.
std::string_view Unescaped(std::string_view s, bool query, std::string& scratch) {
  if (!NeedsPercentDecoding(s, query)) return s;
  scratch.clear();
  scratch.reserve(s.size());
  AppendPercentDecoded(s, query, scratch);
  return scratch;
}

// ---------------------------------------------------------------------------------------------
// The request-target, as Go's net/http turns it into URL.Path and URL.RawQuery
// (url.ParseRequestURI, plus the server's CONNECT authority form).

struct RequestTarget {
  std::string_view path;   // still escaped
  std::string_view query;  // raw, without '?'
  bool rejected = false;   // net/http answers 400
};

RequestTarget SplitTarget(std::string_view method, std::string_view target) {
  RequestTarget out;
  if (target.empty()) {
    out.rejected = true;
    return out;
  }
  for (char c : target) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out.rejected = true;
      break;
    }
  }
  if (target == "*" && method != "CONNECT") {
    out.path = target;
    return out;
  }
  const auto cut_query = [&out](std::string_view rest) {
    const std::size_t q = rest.find('?');
    if (q == kNpos) return rest;
    out.query = rest.substr(q + 1);
    return rest.substr(0, q);
  };
  if (target.front() == '/') {
    out.path = cut_query(target);
    return out;
  }

  std::string_view rest;
  bool authority = false;
  if (method == "CONNECT") {
    // Go parses "http://" + target.
    rest = cut_query(target);
    authority = true;
  } else {
    // A scheme is [A-Za-z][A-Za-z0-9+.-]* followed by ':'.
    std::size_t colon = kNpos;
    for (std::size_t i = 0; i < target.size(); ++i) {
      const auto c = static_cast<unsigned char>(target[i]);
      if (IsAlpha(c)) continue;
      if ((IsDigit(c) || c == '+' || c == '-' || c == '.') && i > 0) continue;
      if (c == ':' && i > 0) colon = i;
      break;
    }
    if (colon == kNpos) {
      // "missing protocol scheme" or "invalid URI for request".
      out.rejected = true;
      out.path = cut_query(target);
      return out;
    }
    rest = cut_query(target.substr(colon + 1));
    if (rest.starts_with("//")) {
      rest.remove_prefix(2);
      authority = true;
    } else if (!rest.starts_with('/')) {
      return out;  // opaque ("scheme:x"): Go leaves Path empty
    }
  }
  if (authority) {
    const std::size_t slash = rest.find('/');
    rest = slash == kNpos ? std::string_view{} : rest.substr(slash);
  }
  out.path = rest;
  return out;
}

// ---------------------------------------------------------------------------------------------
// The query, as url.ParseQuery gives it, reduced to the keys ListOptions and RequestInfo read.

struct QueryFacts {
  // Raw (still escaped, already validated) first value of each key.
  std::optional<std::string_view> watch;
  std::optional<std::string_view> field_selector;
  std::optional<std::string_view> label_selector;
  std::optional<std::string_view> limit;
  std::optional<std::string_view> timeout_seconds;
};

constexpr std::size_t kGoMaxQueryParams = 10000;  // Go's urlmaxqueryparams default

// Decoded key, without allocating: none of the keys looked for is longer than 14 bytes, and a
// decoded key is at least a third of the raw one.
std::optional<std::string_view>* QuerySlot(QueryFacts& facts, std::string_view raw_key,
                                           char (&buffer)[48]) {
  std::string_view key = raw_key;
  if (NeedsPercentDecoding(raw_key, true)) {
    if (raw_key.size() > 3 * 14) return nullptr;
    std::size_t n = 0;
    for (std::size_t i = 0; i < raw_key.size(); ++i) {
      const char c = raw_key[i];
      if (c == '%') {
        buffer[n++] =
            static_cast<char>(HexDigitValue(raw_key[i + 1]) << 4 | HexDigitValue(raw_key[i + 2]));
        i += 2;
      } else {
        buffer[n++] = c == '+' ? ' ' : c;
      }
    }
    key = std::string_view(buffer, n);
  }
  if (key == "watch") return &facts.watch;
  if (key == "fieldSelector") return &facts.field_selector;
  if (key == "labelSelector") return &facts.label_selector;
  if (key == "limit") return &facts.limit;
  if (key == "timeoutSeconds") return &facts.timeout_seconds;
  return nullptr;
}

QueryFacts ParseQuery(std::string_view query) {
  QueryFacts facts;
  char buffer[48];
  ForEachQueryPair(
      query,
      [&](std::string_view key, std::string_view value) {
        std::optional<std::string_view>* slot = QuerySlot(facts, key, buffer);
        if (slot != nullptr && !slot->has_value()) *slot = value;
        return true;
      },
      kGoMaxQueryParams);
  return facts;
}

// ---------------------------------------------------------------------------------------------
// Scalar conversions of the ListOptions decode

// strconv.ParseInt(s, 10, 64) succeeds.
bool GoParsesInt64(std::string_view s) {
  bool negative = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return false;
  const std::uint64_t limit = negative ? (std::uint64_t{1} << 63) : (std::uint64_t{1} << 63) - 1;
  std::uint64_t value = 0;
  for (char c : s) {
    if (!IsDigit(c)) return false;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (limit - digit) / 10) return false;
    value = value * 10 + digit;
  }
  return true;
}

// strings.EqualFold(s, "false"): ASCII case folding, plus U+017F (long s) folding to 's'.
bool EqualFoldFalse(std::string_view s) {
  constexpr std::string_view kFalse = "false";
  std::size_t i = 0;
  for (std::size_t k = 0; k < kFalse.size(); ++k) {
    if (i < s.size() && AsciiLower(s[i]) == kFalse[k]) {
      ++i;
    } else if (kFalse[k] == 's' && s.substr(i, 2) == "\xC5\xBF") {
      i += 2;
    } else {
      return false;
    }
  }
  return i == s.size();
}

// runtime.Convert_Slice_string_To_bool of a present value.
bool GoQueryBool(std::string_view s) { return !(s == "0" || EqualFoldFalse(s)); }

// The fallback after a failed decode: strings.ToLower(v) is neither "false" nor "0".
bool FallbackWatch(std::string_view s) {
  if (s == "0") return false;
  if (s.size() != 5) return true;
  return AsciiLowered(s) != "false";
}

// ---------------------------------------------------------------------------------------------
// fields.ParseSelector, reduced to "does it parse" and RequiresExactMatch("metadata.name").

// The rhs of a term unescapes: '\' only before '\', ',' or '=', no bare ',' or '='.
bool FieldValueValid(std::string_view rhs) {
  bool escaped = false;
  for (char c : rhs) {
    if (escaped) {
      if (c != '\\' && c != ',' && c != '=') return false;
      escaped = false;
    } else if (c == '\\') {
      escaped = true;
    } else if (c == ',' || c == '=') {
      return false;
    }
  }
  return !escaped;
}

// Length of the UTF-8 sequence at s[i] as Go's utf8.DecodeRuneInString reads it; 0 when Go
// would decode U+FFFD of width 1.
std::size_t GoRuneLength(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 == 0xE0) {
    n = 3;
    lo = 0xA0;
  } else if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) {
    n = 3;
  } else if (b0 == 0xED) {
    n = 3;
    hi = 0x9F;
  } else if (b0 == 0xF0) {
    n = 4;
    lo = 0x90;
  } else if (b0 >= 0xF1 && b0 <= 0xF3) {
    n = 4;
  } else if (b0 == 0xF4) {
    n = 4;
    hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  const auto b1 = static_cast<unsigned char>(s[i + 1]);
  if (b1 < lo || b1 > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < 0x80 || b > 0xBF) return 0;
  }
  return n;
}

// fields.UnescapeValue of a valid rhs. Like Go, a value that needed unescaping is rebuilt rune
// by rune, so its invalid UTF-8 bytes come out as U+FFFD.
std::string UnescapeFieldValue(std::string_view rhs) {
  if (rhs.find_first_of("\\,=") == kNpos) return std::string(rhs);
  std::string out;
  out.reserve(rhs.size());
  bool escaped = false;
  for (std::size_t i = 0; i < rhs.size();) {
    const std::size_t n = GoRuneLength(rhs, i);
    if (!escaped && rhs[i] == '\\') {
      escaped = true;
    } else {
      escaped = false;
      if (n == 0) {
        out.append("\xEF\xBF\xBD");
      } else {
        out.append(rhs.substr(i, n));
      }
    }
    i += n == 0 ? 1 : n;
  }
  return out;
}

struct FieldSelectorName {
  bool valid = true;
  std::optional<std::string> name;  // what RequiresExactMatch("metadata.name") returns
};

// Go sorts the terms and returns the first "metadata.name" equality, so the value comes from
// the lexically smallest such term. A term splits at its first "!=", "==" or "=".
FieldSelectorName ParseFieldSelector(std::string_view selector) {
  FieldSelectorName out;
  std::optional<std::string_view> best_term;
  std::string_view best_rhs;
  const auto take_term = [&](std::string_view term) {
    if (term.empty()) return true;
    std::size_t at = 0;
    std::size_t op_size = 0;
    for (; at < term.size(); ++at) {
      const std::string_view rest = term.substr(at);
      if (rest.starts_with("!=") || rest.starts_with("==")) {
        op_size = 2;
        break;
      }
      if (rest.starts_with('=')) {
        op_size = 1;
        break;
      }
    }
    if (op_size == 0) return false;
    const std::string_view rhs = term.substr(at + op_size);
    if (!FieldValueValid(rhs)) return false;
    if (term[at] != '!' && term.substr(0, at) == "metadata.name" &&
        (!best_term || term < *best_term)) {
      best_term = term;
      best_rhs = rhs;
    }
    return true;
  };
  std::size_t start = 0;
  bool escaped = false;
  for (std::size_t i = 0; i < selector.size(); ++i) {
    if (escaped) {
      escaped = false;
    } else if (selector[i] == '\\') {
      escaped = true;
    } else if (selector[i] == ',') {
      if (!take_term(selector.substr(start, i - start))) {
        out.valid = false;
        return out;
      }
      start = i + 1;
    }
  }
  if (!take_term(selector.substr(start))) {
    out.valid = false;
    return out;
  }
  if (best_term) out.name = UnescapeFieldValue(best_rhs);
  return out;
}

// content.IsPathSegmentName
bool IsPathSegmentName(std::string_view name) {
  if (name == "." || name == "..") return false;
  return name.find_first_of("/%") == kNpos;
}

// ---------------------------------------------------------------------------------------------
// labels.Parse, reduced to "does it parse". The lexer reads bytes and, like Go's, treats a NUL
// byte as the end of input (a token-starting NUL ends the selector; one after an identifier or
// operator is swallowed).

// [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?
bool IsLabelName(std::string_view s) {
  if (s.empty() || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return IsAlnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

// content.IsDNS1123Subdomain
bool IsDns1123Subdomain(std::string_view s) {
  if (s.size() > 253) return false;
  while (true) {
    const std::size_t dot = s.find('.');
    const std::string_view label = s.substr(0, dot);
    if (label.empty() || !IsLowerAlnum(label.front()) || !IsLowerAlnum(label.back())) {
      return false;
    }
    for (char c : label) {
      if (!IsLowerAlnum(c) && c != '-') return false;
    }
    if (dot == kNpos) return true;
    s.remove_prefix(dot + 1);
  }
}

// content.IsLabelKey
bool IsLabelKey(std::string_view key) {
  std::string_view name = key;
  const std::size_t slash = key.find('/');
  if (slash != kNpos) {
    if (key.find('/', slash + 1) != kNpos) return false;
    const std::string_view prefix = key.substr(0, slash);
    if (prefix.empty() || !IsDns1123Subdomain(prefix)) return false;
    name = key.substr(slash + 1);
  }
  return !name.empty() && name.size() <= 63 && IsLabelName(name);
}

// content.IsLabelValue
bool IsLabelValue(std::string_view value) {
  return value.size() <= 63 && (value.empty() || IsLabelName(value));
}

enum class Tok {
  kError,
  kEnd,
  kClosePar,
  kComma,
  kNot,
  kDoubleEquals,
  kEquals,
  kGreater,
  kIdentifier,
  kIn,
  kLess,
  kNotEquals,
  kNotIn,
  kOpenPar,
};

struct Token {
  Tok tok = Tok::kEnd;
  std::string_view text;
};

bool IsSelectorSpace(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool IsSelectorSymbol(unsigned char c) {
  switch (c) {
    case '=':
    case '!':
    case '(':
    case ')':
    case ',':
    case '>':
    case '<':
      return true;
    default:
      return false;
  }
}

Tok SymbolToken(std::string_view s) {
  if (s == ")") return Tok::kClosePar;
  if (s == ",") return Tok::kComma;
  if (s == "!") return Tok::kNot;
  if (s == "==") return Tok::kDoubleEquals;
  if (s == "=") return Tok::kEquals;
  if (s == ">") return Tok::kGreater;
  if (s == "<") return Tok::kLess;
  if (s == "!=") return Tok::kNotEquals;
  if (s == "(") return Tok::kOpenPar;
  return Tok::kError;
}

class SelectorLexer {
 public:
  explicit SelectorLexer(std::string_view input) : input_(input) {}

  Token Next() {
    unsigned char c = Read();
    while (IsSelectorSpace(c)) c = Read();
    if (c == 0) return Token{Tok::kEnd, {}};
    --pos_;
    return IsSelectorSymbol(c) ? Symbol() : Word();
  }

 private:
  // 0 at the end, without moving; a NUL byte reads as 0 too, but is consumed.
  unsigned char Read() {
    if (pos_ >= input_.size()) return 0;
    return static_cast<unsigned char>(input_[pos_++]);
  }

  // Longest operator, one byte of lookahead at a time.
  Token Symbol() {
    const std::size_t start = pos_;
    Token last{Tok::kError, {}};
    while (true) {
      const unsigned char c = Read();
      if (c == 0) break;
      if (!IsSelectorSymbol(c)) {
        --pos_;
        break;
      }
      const std::string_view text = input_.substr(start, pos_ - start);
      const Tok tok = SymbolToken(text);
      if (tok != Tok::kError) {
        last = Token{tok, text};
      } else if (last.tok != Tok::kError) {
        --pos_;
        break;
      }
    }
    return last;
  }

  Token Word() {
    const std::size_t start = pos_;
    std::size_t length = 0;
    while (true) {
      const unsigned char c = Read();
      if (c == 0) break;
      if (IsSelectorSymbol(c) || IsSelectorSpace(c)) {
        --pos_;
        break;
      }
      ++length;
    }
    const std::string_view text = input_.substr(start, length);
    if (text == "in") return Token{Tok::kIn, text};
    if (text == "notin") return Token{Tok::kNotIn, text};
    return Token{Tok::kIdentifier, text};
  }

  std::string_view input_;
  std::size_t pos_ = 0;
};

class SelectorParser {
 public:
  explicit SelectorParser(std::string_view input) : lexer_(input), ahead_(lexer_.Next()) {}

  bool Parse() {
    while (true) {
      const Tok tok = Peek(true).tok;
      if (tok == Tok::kEnd) return true;
      if (tok != Tok::kIdentifier && tok != Tok::kNot) return false;
      if (!Requirement()) return false;
      const Tok after = Consume(true).tok;
      if (after == Tok::kEnd) return true;
      if (after != Tok::kComma) return false;
      const Tok next = Peek(true).tok;
      if (next != Tok::kIdentifier && next != Tok::kNot) return false;
    }
  }

 private:
  // In the values context the keywords "in" and "notin" are plain identifiers.
  Token Peek(bool values) const {
    Token t = ahead_;
    if (values && (t.tok == Tok::kIn || t.tok == Tok::kNotIn)) t.tok = Tok::kIdentifier;
    return t;
  }
  Token Consume(bool values) {
    const Token t = Peek(values);
    if (ahead_.tok != Tok::kEnd) ahead_ = lexer_.Next();
    return t;
  }

  bool Requirement() {
    Token key = Consume(true);
    bool does_not_exist = false;
    if (key.tok == Tok::kNot) {
      does_not_exist = true;
      key = Consume(true);
    }
    if (key.tok != Tok::kIdentifier || !IsLabelKey(key.text)) return false;
    const Tok next = Peek(true).tok;
    if (does_not_exist || next == Tok::kEnd || next == Tok::kComma) return true;

    switch (Consume(false).tok) {
      case Tok::kIn:
      case Tok::kNotIn:
        return ValueSet();
      case Tok::kEquals:
      case Tok::kDoubleEquals:
      case Tok::kNotEquals: {
        std::string_view value;
        return ExactValue(&value) && IsLabelValue(value);
      }
      case Tok::kGreater:
      case Tok::kLess: {
        std::string_view value;
        return ExactValue(&value) && GoParsesInt64(value) && IsLabelValue(value);
      }
      default:
        return false;
    }
  }

  bool ExactValue(std::string_view* value) {
    const Tok next = Peek(true).tok;
    if (next == Tok::kEnd || next == Tok::kComma) {
      *value = {};
      return true;
    }
    const Token t = Consume(true);
    if (t.tok != Tok::kIdentifier) return false;
    *value = t.text;
    return true;
  }

  // "(" values ")", where empty entries stand for "".
  bool ValueSet() {
    if (Consume(true).tok != Tok::kOpenPar) return false;
    const Tok first = Peek(true).tok;
    if (first == Tok::kClosePar) {
      Consume(true);
      return true;
    }
    if (first != Tok::kIdentifier && first != Tok::kComma) return false;
    while (true) {
      const Token t = Consume(true);
      if (t.tok == Tok::kIdentifier) {
        if (!IsLabelValue(t.text)) return false;
        const Tok next = Peek(true).tok;
        if (next == Tok::kClosePar) break;
        if (next != Tok::kComma) return false;
      } else if (t.tok == Tok::kComma) {
        if (Peek(true).tok == Tok::kClosePar) break;
      } else {
        return false;
      }
    }
    return Consume(true).tok == Tok::kClosePar;
  }

  SelectorLexer lexer_;
  Token ahead_;
};

bool LabelSelectorValid(std::string_view selector) { return SelectorParser(selector).Parse(); }

// ---------------------------------------------------------------------------------------------
// Path parts: the path trimmed of every leading and trailing '/', split on '/'.

class PathParts {
 public:
  explicit PathParts(std::string_view path) {
    const std::size_t first = path.find_first_not_of('/');
    if (first == kNpos) return;
    const std::size_t last = path.find_last_not_of('/');
    rest_ = path.substr(first, last - first + 1);
    size_ = static_cast<std::size_t>(std::count(rest_.begin(), rest_.end(), '/')) + 1;
  }

  std::size_t size() const { return size_; }

  std::string_view At(std::size_t index) const {
    std::string_view rest = rest_;
    for (; index > 0; --index) rest.remove_prefix(rest.find('/') + 1);
    return rest.substr(0, rest.find('/'));
  }

  void PopFront() {
    const std::size_t slash = rest_.find('/');
    rest_ = slash == kNpos ? std::string_view{} : rest_.substr(slash + 1);
    --size_;
  }

  std::vector<std::string> ToVector() const {
    std::vector<std::string> out;
    out.reserve(size_);
    std::string_view rest = rest_;
    for (std::size_t i = 0; i < size_; ++i) {
      const std::size_t slash = rest.find('/');
      out.emplace_back(rest.substr(0, slash));
      if (slash != kNpos) rest.remove_prefix(slash + 1);
    }
    return out;
  }

 private:
  std::string_view rest_;
  std::size_t size_ = 0;
};

std::string_view KubeVerbForMethod(std::string_view method) {
  if (method == "POST") return "create";
  if (method == "GET" || method == "HEAD") return "get";
  if (method == "PUT") return "update";
  if (method == "PATCH") return "patch";
  if (method == "DELETE") return "delete";
  return {};
}

// A GET or HEAD without a name: list or watch, and maybe a name from the field selector.
void ResolveListOrWatch(const QueryFacts& query, K8sRequestInfo& info) {
  std::string scratch;
  bool decoded = true;
  if (query.limit && !GoParsesInt64(Unescaped(*query.limit, true, scratch))) decoded = false;
  if (decoded && query.timeout_seconds &&
      !GoParsesInt64(Unescaped(*query.timeout_seconds, true, scratch))) {
    decoded = false;
  }
  if (decoded && query.label_selector &&
      !LabelSelectorValid(Unescaped(*query.label_selector, true, scratch))) {
    decoded = false;
  }
  std::optional<std::string> name;
  if (decoded && query.field_selector) {
    FieldSelectorName field = ParseFieldSelector(Unescaped(*query.field_selector, true, scratch));
    decoded = field.valid;
    name = std::move(field.name);
  }

  bool watch = false;
  if (query.watch) {
    const std::string_view value = Unescaped(*query.watch, true, scratch);
    watch = decoded ? GoQueryBool(value) : FallbackWatch(value);
  }
  info.verb = watch ? "watch" : "list";
  if (decoded && name && IsPathSegmentName(*name)) info.name = std::move(*name);
}

}  // namespace

K8sRequestInfo ParseK8sRequestInfo(std::string_view method, std::string_view target) {
  K8sRequestInfo info;
  const RequestTarget request_target = SplitTarget(method, target);
  info.malformed_request = request_target.rejected || !IsValidMethod(method) ||
                           !PercentEscapesValid(request_target.path);
  if (NeedsPercentDecoding(request_target.path, false)) {
    info.path.reserve(request_target.path.size());
    AppendPercentDecoded(request_target.path, false, info.path);
  } else {
    info.path.assign(request_target.path);
  }
  info.verb = AsciiLowered(method);

  // Views into info.path, which stays as it is from here on.
  PathParts parts(info.path);
  if (parts.size() < 3) return info;
  const std::string_view prefix = parts.At(0);
  if (prefix != "api" && prefix != "apis") return info;
  info.api_prefix.assign(prefix);
  parts.PopFront();
  if (prefix != "api") {
    // Grouped: the prefix, a group and a version before anything else.
    if (parts.size() < 3) return info;
    info.api_group.assign(parts.At(0));
    parts.PopFront();
  }
  info.is_resource_request = true;
  info.api_version.assign(parts.At(0));
  parts.PopFront();

  bool verb_from_path = false;
  const std::string_view special = parts.At(0);
  if (special == "proxy" || special == "watch") {
    if (parts.size() < 2) {
      info.resolver_error = true;
      return info;
    }
    info.verb.assign(special);
    parts.PopFront();
    verb_from_path = true;
  } else {
    info.verb.assign(KubeVerbForMethod(method));
  }

  // namespaces/{namespace}/{resource}/...: rebase onto the resource, unless the third part is
  // a subresource of the namespace itself.
  if (parts.At(0) == "namespaces" && parts.size() > 1) {
    info.namespace_.assign(parts.At(1));
    if (parts.size() > 2) {
      const std::string_view third = parts.At(2);
      if (third != "status" && third != "finalize") {
        parts.PopFront();
        parts.PopFront();
      }
    }
  }

  info.parts = parts.ToVector();
  const std::size_t n = info.parts.size();
  if (n >= 3 && info.verb != "proxy") info.subresource = info.parts[2];
  if (n >= 2) info.name = info.parts[1];
  if (n >= 1) info.resource = info.parts[0];

  std::optional<QueryFacts> query;
  const auto facts = [&]() -> const QueryFacts& {
    if (!query) query = ParseQuery(request_target.query);
    return *query;
  };
  if (info.name.empty() && info.verb == "get") ResolveListOrWatch(facts(), info);
  if (info.name.empty() && info.verb == "delete") info.verb = "deletecollection";

  if (!verb_from_path &&
      (info.verb == "list" || info.verb == "watch" || info.verb == "deletecollection")) {
    std::string scratch;
    if (facts().field_selector) {
      info.field_selector.assign(Unescaped(*facts().field_selector, true, scratch));
    }
    if (facts().label_selector) {
      info.label_selector.assign(Unescaped(*facts().label_selector, true, scratch));
    }
  }
  return info;
}

}  // namespace mat::audit
