#include "config/toml_lite.h"

#include <cctype>
#include <cstdlib>
#include <set>

namespace mat::config {
namespace {

class Parser {
 public:
  Parser(const std::string& text, std::string* error, const std::vector<std::string>& only)
      : t_(text), error_(error), only_(only) {}

  bool Wanted(const std::string& section) const {
    if (only_.empty()) return true;
    for (const auto& s : only_)
      if (s == section) return true;
    return false;
  }

  // Skips lines up to the next one that starts with '[' (a section header).
  void SkipForeignSection() {
    while (!AtEnd()) {
      size_t eol = t_.find('\n', i_);
      i_ = eol == std::string::npos ? t_.size() : eol + 1;
      size_t k = i_;
      while (k < t_.size() && (t_[k] == ' ' || t_[k] == '\t')) ++k;
      if (k < t_.size() && t_[k] == '[') {
        i_ = k;
        return;
      }
    }
  }

  std::optional<TomlDocument> Parse() {
    TomlDocument doc;
    std::string section;
    doc[section];
    if (!Wanted("")) {  // keys before the first header belong to no section of ours
      SkipBlankAndComments(true);
      if (!AtEnd() && Peek() != '[') SkipForeignSection();
    }
    while (true) {
      SkipBlankAndComments(true);
      if (AtEnd()) break;
      if (Peek() == '[') {
        if (i_ + 1 < t_.size() && t_[i_ + 1] == '[') {  // [[array table]]: never ours
          if (only_.empty()) return Fail("array tables are not supported");
          SkipForeignSection();
          continue;
        }
        ++i_;
        SkipSpaces();
        std::string name;
        while (!AtEnd() && (std::isalnum(static_cast<unsigned char>(Peek())) || Peek() == '_' ||
                            Peek() == '-' || Peek() == '.'))
          name.push_back(t_[i_++]);
        SkipSpaces();
        if (name.empty() || AtEnd() || Peek() != ']') return Fail("bad section header");
        ++i_;
        if (!seen_.insert(name).second) return Fail("section [" + name + "] repeated");
        section = name;
        if (!Wanted(section)) {
          SkipForeignSection();
          continue;
        }
        doc[section];
        if (!EndOfLine()) return std::nullopt;
        continue;
      }
      std::string key;
      while (!AtEnd() &&
             (std::isalnum(static_cast<unsigned char>(Peek())) || Peek() == '_' || Peek() == '-'))
        key.push_back(t_[i_++]);
      if (key.empty()) return Fail("expected a key");
      SkipSpaces();
      if (AtEnd() || Peek() != '=') return Fail("expected '=' after " + key);
      ++i_;
      SkipSpaces();
      auto value = Value(0);
      if (!value) return std::nullopt;
      if (doc[section].count(key)) return Fail("key " + key + " repeated");
      doc[section][key] = std::move(*value);
      if (!EndOfLine()) return std::nullopt;
    }
    return doc;
  }

 private:
  bool AtEnd() const { return i_ >= t_.size(); }
  char Peek() const { return t_[i_]; }
  int Line() const {
    int line = 1;
    for (size_t k = 0; k < i_ && k < t_.size(); ++k) line += t_[k] == '\n';
    return line;
  }
  std::nullopt_t Fail(const std::string& what) {
    *error_ = "line " + std::to_string(Line()) + ": " + what;
    return std::nullopt;
  }
  void SkipSpaces() {
    while (!AtEnd() && (Peek() == ' ' || Peek() == '\t')) ++i_;
  }
  void SkipBlankAndComments(bool newlines) {
    while (!AtEnd()) {
      char c = Peek();
      if (c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n')) {
        ++i_;
      } else if (c == '#') {
        while (!AtEnd() && Peek() != '\n') ++i_;
      } else {
        break;
      }
    }
  }
  bool EndOfLine() {
    SkipSpaces();
    if (!AtEnd() && Peek() == '#')
      while (!AtEnd() && Peek() != '\n') ++i_;
    if (!AtEnd() && Peek() == '\r') ++i_;
    if (AtEnd() || Peek() == '\n') return true;
    Fail("unexpected text after the value");
    return false;
  }

  std::optional<TomlValue> Value(int depth) {
    if (depth > 8) return Fail("arrays nested too deep");
    TomlValue value;
    value.line = Line();
    if (AtEnd()) return Fail("missing value");
    char c = Peek();
    if (c == '"') {
      ++i_;
      std::string s;
      while (true) {
        if (AtEnd() || Peek() == '\n') return Fail("unterminated string");
        char ch = t_[i_++];
        if (ch == '"') break;
        if (ch != '\\') {
          s.push_back(ch);
          continue;
        }
        if (AtEnd()) return Fail("unterminated string");
        char e = t_[i_++];
        switch (e) {
          case '"':
            s.push_back('"');
            break;
          case '\\':
            s.push_back('\\');
            break;
          case 'n':
            s.push_back('\n');
            break;
          case 't':
            s.push_back('\t');
            break;
          case 'r':
            s.push_back('\r');
            break;
          case 'u': {
            if (i_ + 4 > t_.size()) return Fail("bad \\u escape");
            char* end = nullptr;
            std::string hex = t_.substr(i_, 4);
            unsigned long cp = std::strtoul(hex.c_str(), &end, 16);
            if (end != hex.c_str() + 4) return Fail("bad \\u escape");
            i_ += 4;
            if (cp < 0x80) {
              s.push_back(static_cast<char>(cp));
            } else if (cp < 0x800) {
              s.push_back(static_cast<char>(0xc0 | (cp >> 6)));
              s.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
            } else {
              s.push_back(static_cast<char>(0xe0 | (cp >> 12)));
              s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
              s.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
            }
            break;
          }
          default:
            return Fail(std::string("unknown escape \\") + e);
        }
      }
      value.v = std::move(s);
      return value;
    }
    if (c == '\'') {
      ++i_;
      std::string s;
      while (true) {
        if (AtEnd() || Peek() == '\n') return Fail("unterminated string");
        char ch = t_[i_++];
        if (ch == '\'') break;
        s.push_back(ch);
      }
      value.v = std::move(s);
      return value;
    }
    if (c == '[') {
      ++i_;
      TomlArray items;
      while (true) {
        SkipBlankAndComments(true);
        if (AtEnd()) return Fail("unterminated array");
        if (Peek() == ']') {
          ++i_;
          break;
        }
        auto item = Value(depth + 1);
        if (!item) return std::nullopt;
        items.push_back(std::move(*item));
        SkipBlankAndComments(true);
        if (!AtEnd() && Peek() == ',') {
          ++i_;
          continue;
        }
        SkipBlankAndComments(true);
        if (AtEnd()) return Fail("unterminated array");
        if (Peek() != ']') return Fail("expected ',' or ']' in array");
      }
      value.v = std::move(items);
      return value;
    }
    if (t_.compare(i_, 4, "true") == 0) {
      i_ += 4;
      value.v = true;
      return value;
    }
    if (t_.compare(i_, 5, "false") == 0) {
      i_ += 5;
      value.v = false;
      return value;
    }
    if (c == '-' || c == '+' || std::isdigit(static_cast<unsigned char>(c))) {
      std::string digits;
      if (c == '-' || c == '+') digits.push_back(t_[i_++]);
      while (!AtEnd() && (std::isdigit(static_cast<unsigned char>(Peek())) || Peek() == '_'))
        if (char d = t_[i_++]; d != '_') digits.push_back(d);
      if (digits.empty() || digits == "-" || digits == "+" || digits.size() > 19)
        return Fail("bad integer");
      value.v = static_cast<int64_t>(std::strtoll(digits.c_str(), nullptr, 10));
      return value;
    }
    return Fail("unsupported value (strings, booleans, integers and arrays only)");
  }

  const std::string& t_;
  std::string* error_;
  const std::vector<std::string>& only_;
  std::set<std::string> seen_;
  size_t i_ = 0;
};

}  // namespace

std::optional<TomlDocument> ParseToml(const std::string& text, std::string* error,
                                      const std::vector<std::string>& only) {
  return Parser(text, error, only).Parse();
}

}  // namespace mat::config
