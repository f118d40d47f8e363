#include "config/config_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

#include "config/toml_reader.h"

namespace mat::config {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// The table name of a header line "[name]" (spaces allowed inside the brackets, a comment
// after), unquoted; "" when the line is no [table] header ([[array]] headers count as tables).
std::optional<std::string> HeaderName(std::string_view line) {
  line = Trim(line);
  if (line.empty() || line.front() != '[') return std::nullopt;
  bool array = line.size() > 1 && line[1] == '[';
  size_t close = line.find(']');
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view name = Trim(line.substr(array ? 2 : 1, close - (array ? 2 : 1)));
  if (name.size() >= 2 && (name.front() == '"' || name.front() == '\'') &&
      name.back() == name.front())
    name = name.substr(1, name.size() - 2);
  return array ? "[[" + std::string(name) + "]]" : std::string(name);
}

// True when the line assigns `key` ("key =", "\"key\" =").
bool AssignsKey(std::string_view line, std::string_view key) {
  line = Trim(line);
  for (std::string_view quote : {"", "\"", "'"}) {
    std::string k = std::string(quote) + std::string(key) + std::string(quote);
    if (line.substr(0, k.size()) != k) continue;
    std::string_view rest = Trim(line.substr(k.size()));
    if (!rest.empty() && rest.front() == '=') return true;
  }
  return false;
}

// The position of a '#' that starts a comment after a simple value (outside quotes).
size_t CommentStart(std::string_view line, size_t from) {
  char quote = 0;
  for (size_t i = from; i < line.size(); ++i) {
    char c = line[i];
    if (quote) {
      if (c == '\\' && quote == '"')
        ++i;
      else if (c == quote)
        quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '#') {
      return i;
    }
  }
  return std::string_view::npos;
}

}  // namespace

std::string TomlString(std::string_view value) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

Result<std::string> SetTomlKey(std::string_view text, std::string_view section,
                               std::string_view key, std::string_view value_literal) {
  // Lines, each with its end.
  std::vector<std::string_view> lines;
  for (size_t at = 0; at < text.size();) {
    size_t nl = text.find('\n', at);
    size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
    lines.push_back(text.substr(at, end - at));
    at = end;
  }
  long header = -1, key_line = -1;
  size_t section_end = lines.size();
  for (size_t i = 0; i < lines.size(); ++i) {
    auto name = HeaderName(lines[i]);
    if (!name) {
      if (header >= 0 && key_line < 0 && AssignsKey(lines[i], key)) key_line = static_cast<long>(i);
      continue;
    }
    if (header >= 0) {
      section_end = i;
      break;
    }
    if (*name == section) header = static_cast<long>(i);
  }
  std::string result;
  std::string assignment = std::string(key) + " = " + std::string(value_literal);
  if (key_line >= 0) {
    std::string_view line = lines[key_line];
    size_t indent = line.find_first_not_of(" \t");
    size_t eq = line.find('=');
    bool nl = !line.empty() && line.back() == '\n';
    std::string_view body = nl ? line.substr(0, line.size() - 1) : line;
    size_t comment = CommentStart(body, eq + 1);
    std::string_view value_text = Trim(body.substr(
        eq + 1, comment == std::string_view::npos ? std::string_view::npos : comment - eq - 1));
    if (value_text.empty() || value_text.front() == '[' || value_text.front() == '{' ||
        value_text.substr(0, 3) == "\"\"\"" || value_text.substr(0, 3) == "'''")
      return Error{"line " + std::to_string(key_line + 1) + ": " + std::string(key) +
                   " is not a one-line value; edit it by hand"};
    std::string rewritten = std::string(line.substr(0, indent)) + assignment;
    if (comment != std::string_view::npos) {
      // Keep the spacing before the comment, and the comment.
      size_t gap = body.find_last_not_of(" \t", comment - 1);
      rewritten += std::string(body.substr(gap + 1));
    }
    if (nl) rewritten += '\n';
    for (size_t i = 0; i < lines.size(); ++i)
      result += i == static_cast<size_t>(key_line) ? std::string_view(rewritten) : lines[i];
  } else if (header >= 0) {
    // Under the header, indented as the section's first key is (MKE's files indent by two).
    std::string indent = "  ";
    for (size_t i = header + 1; i < section_end; ++i) {
      std::string_view t = Trim(lines[i]);
      if (t.empty() || t.front() == '#') continue;
      indent = std::string(lines[i].substr(0, lines[i].find_first_not_of(" \t")));
      break;
    }
    for (size_t i = 0; i < lines.size(); ++i) {
      result += lines[i];
      if (i == static_cast<size_t>(header)) {
        if (result.empty() || result.back() != '\n') result += '\n';
        result += indent + assignment + "\n";
      }
    }
  } else {
    result = std::string(text);
    if (!result.empty() && result.back() != '\n') result += '\n';
    if (!result.empty()) result += '\n';
    result += "[" + std::string(section) + "]\n  " + assignment + "\n";
  }
  // The edit must leave valid TOML that says what was meant (it would not, e.g., when the
  // section is also defined by dotted keys elsewhere).
  auto doc = ParseToml(result, {std::string(section)});
  if (!doc)
    return Error{"the edited file would not be valid TOML (" + doc.error() + "); edit it by hand"};
  return result;
}

Status WriteTomlKeys(const std::string& path, std::string_view section,
                     const std::vector<std::pair<std::string, std::string>>& settings) {
  // In place (not a new file renamed over it): the file keeps its inode, mode and owner, and a
  // symbolic link to it stays one.
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Error{"cannot open " + path + " for writing: " + std::strerror(errno)};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (4 << 20)) {
    ::close(fd);
    return Error{path + " is not a regular file of at most 4 MiB"};
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::pread(fd, text.data() + got, text.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  std::string edited = text;
  for (const auto& [key, literal] : settings) {
    auto next = SetTomlKey(edited, section, key, literal);
    if (!next) {
      ::close(fd);
      return Error{path + ": " + next.error()};
    }
    edited = std::move(*next);
  }
  std::string error;
  if (edited != text) {
    size_t put = 0;
    while (put < edited.size()) {
      ssize_t n = ::pwrite(fd, edited.data() + put, edited.size() - put, static_cast<off_t>(put));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error = "cannot write " + path + ": " + std::strerror(errno);
        break;
      }
      put += static_cast<size_t>(n);
    }
    if (error.empty() && ::ftruncate(fd, static_cast<off_t>(edited.size())) != 0)
      error = "cannot write " + path + ": " + std::strerror(errno);
    if (error.empty() && ::fsync(fd) != 0)
      error = "cannot write " + path + ": " + std::strerror(errno);
  }
  ::close(fd);
  if (!error.empty()) return Error{error};
  return {};
}

}  // namespace mat::config
