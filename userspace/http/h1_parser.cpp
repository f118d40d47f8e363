#include "http/h1_parser.h"

#include <algorithm>
#include <cstring>
#include <deque>

#include "util/ascii.h"

namespace mat::http {

namespace {

// A chunk-size or trailer line longer than this is an error.
constexpr size_t kMaxChunkLine = 4096;
// Start-line bytes a buffered header block may hold beyond max_head_bytes before it fails.
constexpr size_t kHeadSlack = 8 * 1024;

// The methods http-parser 2.9 knows; anything else is a parse error.
constexpr std::string_view kMethods[] = {
    "DELETE",     "GET",      "HEAD",       "POST",     "PUT",    "CONNECT",   "OPTIONS",
    "TRACE",      "COPY",     "LOCK",       "MKCOL",    "MOVE",   "PROPFIND",  "PROPPATCH",
    "SEARCH",     "UNLOCK",   "BIND",       "REBIND",   "UNBIND", "ACL",       "REPORT",
    "MKACTIVITY", "CHECKOUT", "MERGE",      "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE",
    "PATCH",      "PURGE",    "MKCALENDAR", "LINK",     "UNLINK", "SOURCE"};

}  // namespace

bool IsKnownMethod(std::string_view m) {
  // The common ones first, by length and first byte, before the table.
  switch (m.size()) {
    case 3:
      if (m == "GET" || m == "PUT") return true;
      break;
    case 4:
      if (m == "POST" || m == "HEAD") return true;
      break;
    case 6:
      if (m == "DELETE") return true;
      break;
    default:
      break;
  }
  for (std::string_view k : kMethods)
    if (k == m) return true;
  return false;
}

namespace {

struct TokenTable {
  bool token[256] = {};
  constexpr TokenTable() {
    for (int c = 0; c < 256; ++c) token[c] = IsHttpTokenChar(static_cast<unsigned char>(c));
  }
};
constexpr TokenTable kTokens;

inline bool IsOws(char c) { return c == ' ' || c == '\t'; }

inline std::string_view Trim(std::string_view v) {
  size_t b = 0, e = v.size();
  while (b < e && IsOws(v[b])) ++b;
  while (e > b && IsOws(v[e - 1])) --e;
  return v.substr(b, e - b);
}

// A line without its LF and the CR before it.
inline std::string_view StripEol(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// A header value's bytes: any but the control characters other than HTAB.
inline bool ValidValue(std::string_view v) {
  for (char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

// ValidValue over [p, end), eight bytes at a time: a word with no byte below 0x20 and none
// equal to 0x7f needs no closer look (bytes from 0x80 are obs-text, allowed).
inline bool ValidValueBytes(const char* p, const char* end) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  while (end - p >= 8) {
    uint64_t w;
    std::memcpy(&w, p, sizeof w);
    const uint64_t below_space = (w - 0x20 * kOnes) & ~w & kHigh;
    const uint64_t x = w ^ (0x7f * kOnes);
    const uint64_t del = (x - kOnes) & ~x & kHigh;
    if ((below_space | del) != 0 && !ValidValue(std::string_view(p, 8))) return false;
    p += 8;
  }
  return ValidValue(std::string_view(p, static_cast<size_t>(end - p)));
}

// "HTTP/" DIGIT "." DIGIT
inline bool ParseVersion(std::string_view v, int& major, int& minor) {
  if (v.size() != 8 || v.compare(0, 5, "HTTP/") != 0 || v[6] != '.') return false;
  if (v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9') return false;
  major = v[5] - '0';
  minor = v[7] - '0';
  return true;
}

// A request's version: "HTTP/" DIGIT "." 1*3DIGIT, as nginx reads it (it serves HTTP/1.10 or
// HTTP/1.00; Go answers 400).
inline bool ParseRequestVersion(std::string_view v, int& major, int& minor) {
  if (v.size() < 8 || v.size() > 10 || v.compare(0, 5, "HTTP/") != 0 || v[6] != '.') return false;
  if (v[5] < '0' || v[5] > '9') return false;
  int m = 0;
  for (size_t i = 7; i < v.size(); ++i) {
    if (v[i] < '0' || v[i] > '9') return false;
    m = m * 10 + (v[i] - '0');
  }
  major = v[5] - '0';
  minor = m;
  return true;
}

// Does the comma-separated list `v` hold `token` (case-insensitive)?
bool ListHas(std::string_view v, std::string_view token) {
  while (!v.empty()) {
    const size_t comma = v.find(',');
    std::string_view item = Trim(v.substr(0, comma));
    if (EqualsIgnoreCase(item, token)) return true;
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return false;
}

// The last item of a comma-separated list.
std::string_view LastItem(std::string_view v) {
  const size_t comma = v.rfind(',');
  return Trim(comma == std::string_view::npos ? v : v.substr(comma + 1));
}

// Where the block that starts at p[0] ends (just past its empty line), or 0 when p[0..n) does
// not hold its end. Lines may end in CRLF or a bare LF. Searching resumes at `from`.
size_t FindBlockEnd(const char* p, size_t n, size_t from) {
  size_t i = from;
  while (i < n) {
    const void* lf = std::memchr(p + i, '\n', n - i);
    if (lf == nullptr) return 0;
    const size_t at = static_cast<size_t>(static_cast<const char*>(lf) - p);
    if (at + 1 < n && p[at + 1] == '\n') return at + 2;
    if (at + 2 < n && p[at + 1] == '\r' && p[at + 2] == '\n') return at + 3;
    if (at + 1 >= n || (at + 2 >= n && p[at + 1] == '\r')) return 0;
    i = at + 1;
  }
  return 0;
}

}  // namespace

bool IsMethodToken(std::string_view m) {
  if (m.empty()) return false;
  for (char c : m)
    if (!kTokens.token[static_cast<unsigned char>(c)]) return false;
  return true;
}

// An HTTP/0.9 request line, without its line end: "GET" SP+ target SP*, as nginx reads one
// (and serves it; a 0.9 line with another method gets a 400 from nginx, Go answers 400 to all).
std::string_view H1Parser::Http09Target(std::string_view line) {
  line = StripEol(line);
  while (!line.empty() && line.back() == ' ') line.remove_suffix(1);
  if (line.size() < 5 || line.compare(0, 4, "GET ") != 0) return {};
  line.remove_prefix(4);
  while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  if (line.empty()) return {};
  for (char ch : line) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == 0x7f) return {};
  }
  return line;
}

bool H1Parser::Head09(H1Listener& listener, std::string_view line) {
  const std::string_view target = Http09Target(line);
  if (target.empty()) return false;
  H1Head& head_ = SharedScratch().head;
  head_.method = std::string_view(line.data(), 3);
  head_.target = target;
  head_.status = 0;
  head_.version_major = 0;
  head_.version_minor = 9;
  head_.fields.clear();
  head_.counted_bytes = target.size();
  closes_ = true;  // the server answers with the body alone and closes
  listener.OnHead(head_);
  Complete(listener);
  return true;
}

H1Parser::Scratch& H1Parser::SharedScratch() {
  static thread_local Scratch scratch;
  return scratch;
}

void H1Parser::Reset() {
  state_ = State::kStart;
  upgrade_ = chunked_ = has_length_ = has_te_ = false;
  connection_upgrade_ = upgrade_header_ = connect_ = false;
  connection_close_ = connection_keep_alive_ = head_rejected_ = false;
  too_large_ = false;
  closes_ = false;
  too_large_line_.clear();
  length_ = remaining_ = 0;
  buf_.clear();
  scanned_ = 0;
}

bool H1Parser::ParseStartLine(std::string_view line) {
  H1Head& head_ = SharedScratch().head;
  if (kind_ == Kind::kRequest) {
    // METHOD SP+ target SP+ version: several spaces are accepted, as http-parser and nginx do.
    const size_t sp1 = line.find(' ');
    if (sp1 == std::string_view::npos || sp1 == 0) return false;
    const size_t t = line.find_first_not_of(' ', sp1);
    if (t == std::string_view::npos) return false;
    const size_t sp2 = line.find(' ', t);
    if (sp2 == std::string_view::npos) return false;
    const size_t v = line.find_first_not_of(' ', sp2);
    if (v == std::string_view::npos) return false;
    head_.method = line.substr(0, sp1);
    head_.target = line.substr(t, sp2 - t);
    if (!IsMethodToken(head_.method)) return false;
    for (char ch : head_.target) {
      const auto c = static_cast<unsigned char>(ch);
      if (c <= 0x20 || c == 0x7f) return false;
    }
    if (!ParseRequestVersion(line.substr(v), head_.version_major, head_.version_minor))
      return false;
    connect_ = head_.method == "CONNECT";
    head_.counted_bytes = head_.target.size();
    return true;
  }
  // HTTP/x.y SP 3DIGIT [SP reason]
  if (line.size() < 12 || line[8] != ' ') return false;
  if (!ParseVersion(line.substr(0, 8), head_.version_major, head_.version_minor)) return false;
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return false;
    status = status * 10 + (line[i] - '0');
  }
  if (line.size() > 12 && line[12] != ' ') return false;
  head_.status = status;
  const std::string_view reason = line.size() > 13 ? line.substr(13) : std::string_view();
  if (!ValidValue(reason)) return false;
  head_.counted_bytes = reason.size();
  return true;
}

bool H1Parser::NameRejectedLine(std::string_view line) {
  // Its first two fields, split at SP and HTAB runs (nginx's $request is the whole line).
  auto sep = [](char c) { return c == ' ' || c == '\t'; };
  size_t i = 0;
  while (i < line.size() && !sep(line[i])) ++i;
  const std::string_view method = line.substr(0, i);
  while (i < line.size() && sep(line[i])) ++i;
  const size_t t = i;
  // A bare CR ends the line for nginx (its next byte must be LF): not part of the target.
  while (i < line.size() && !sep(line[i]) && line[i] != '\r') ++i;
  const std::string_view target = line.substr(t, i - t);
  if (!IsMethodToken(method) || target.empty()) return false;
  H1Head& head_ = SharedScratch().head;
  head_.method = method;
  head_.target = target;
  head_.version_major = 1;
  head_.version_minor = 1;
  head_.fields.clear();
  head_.counted_bytes = target.size();
  return true;
}

bool H1Parser::ParseHead(H1Listener& listener, std::string_view block) {
  H1Head& head_ = SharedScratch().head;
  std::deque<std::string>& folds_ = SharedScratch().folds;
  head_.method = head_.target = {};
  head_.status = 0;
  head_.fields.clear();
  folds_.clear();
  // One pass over the lines. The block ends in an empty line, so every line has an LF and no
  // scan below can run past it (an LF is neither a token character nor OWS).
  const char* p = block.data();
  const char* const end = p + block.size();
  const auto* lf = static_cast<const char*>(std::memchr(p, '\n', block.size()));
  const std::string_view start_line = StripEol(std::string_view(p, static_cast<size_t>(lf - p)));
  if (!ParseStartLine(start_line)) {
    // nginx and Go answer a request line they cannot read (a bad version, tabs, a control byte
    // in the target) with 400 and close, and nginx logs that line: when it still names a
    // method and a target, the request is reported by them, as a bad header is below.
    if (kind_ == Kind::kRequest && NameRejectedLine(start_line)) {
      head_rejected_ = true;
      listener.OnHead(SharedScratch().head);
    }
    return false;
  }
  p = lf + 1;
  // A request whose start line is good but whose head is not: the server answers it (400 from
  // nginx and Go, and they close), so it is reported by what was read of it before failing.
  auto reject = [&]() {
    // Over the limit already: too large, as it would be at the end (reported by its start
    // line only), not a head whose fields beyond the limit are kept.
    if (head_.counted_bytes > max_head_) {
      too_large_ = true;
      return false;
    }
    if (kind_ == Kind::kRequest) {
      head_rejected_ = true;
      listener.OnHead(head_);
    }
    return false;
  };
  bool skipping = false;  // the line before was skipped: so are its continuation lines
  for (;;) {
    if (*p == '\n' || (*p == '\r' && p[1] == '\n')) break;  // the empty line: the end
    lf = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    if (IsOws(*p)) {
      // obs-fold: a continuation of the previous value, joined with a space (rare: the joined
      // value is kept apart, in folds_, whose strings do not move).
      const std::string_view line = StripEol(std::string_view(p, static_cast<size_t>(lf - p)));
      p = lf + 1;
      if (skipping) {
        head_.counted_bytes += line.size();
        continue;
      }
      if (head_.fields.empty() || !ValidValue(line)) return reject();
      const std::string_view more = Trim(line);
      head_.counted_bytes += more.size();
      if (more.empty()) continue;
      std::string_view& value = head_.fields.back().second;
      if (folds_.empty() || value.data() != folds_.back().data()) folds_.emplace_back(value);
      std::string& joined = folds_.back();
      if (!joined.empty()) joined.push_back(' ');
      joined.append(more);
      value = joined;
      continue;
    }
    const char* q = p;
    while (kTokens.token[static_cast<unsigned char>(*q)]) ++q;
    if (kind_ == Kind::kRequest && (q == p || *q != ':')) {
      // A name that is empty, or has bytes other than a token's but no control byte or space,
      // or a line of such bytes without a colon: Go's net/http skips an empty name, nginx
      // ignores the others, and either serves the request (the other answers 400). The line
      // and its continuation lines are skipped; failing here would hide the request.
      while (*q != ':' && static_cast<unsigned char>(*q) > 0x20 && *q != 0x7f) ++q;
      if (*q != ':') {
        if (q == p) return reject();  // not even a name
        while (*q == '\r') ++q;       // nginx ends a line at CRs before its LF, however many
        if (*q != '\n') return reject();
      }
      skipping = true;
      head_.counted_bytes += static_cast<size_t>(lf - p) + 3;
      p = lf + 1;
      continue;
    }
    if (q == p || *q != ':') return reject();
    skipping = false;
    const std::string_view name(p, static_cast<size_t>(q - p));
    ++q;
    const char* value_end = lf;
    if (value_end > q && value_end[-1] == '\r') --value_end;
    // nginx ends a request's line at CRs before its LF, however many (and serves it).
    if (kind_ == Kind::kRequest)
      while (value_end > q && value_end[-1] == '\r') --value_end;
    // A request's value may hold any byte but NUL and CR: nginx serves such requests (Go
    // answers 400); the others' values (from the server) stay strict.
    if (kind_ == Kind::kRequest
            ? (std::memchr(q, '\0', static_cast<size_t>(value_end - q)) != nullptr ||
               std::memchr(q, '\r', static_cast<size_t>(value_end - q)) != nullptr)
            : !ValidValueBytes(q, value_end))
      return reject();
    while (q < value_end && IsOws(*q)) ++q;
    while (value_end > q && IsOws(value_end[-1])) --value_end;
    const std::string_view value(q, static_cast<size_t>(value_end - q));
    head_.counted_bytes += name.size() + value.size() + 4;
    head_.fields.emplace_back(name, value);
    p = lf + 1;
  }
  if (head_.counted_bytes > max_head_) {
    too_large_ = true;
    return false;
  }
  // Framing headers. A bad Content-Length is an error only once it is known to count: a
  // request's Transfer-Encoding discards every Content-Length unread, as Go's net/http does.
  bool seen_length = false;
  bool length_ok = true;
  std::string_view length_text;
  for (const auto& [name, value] : head_.fields) {
    switch (name.size()) {
      case 14:  // content-length
        if (EqualsIgnoreCase(name, "content-length")) {
          if (seen_length) {
            // A request may repeat the same value: Go's net/http reads it as one (and serves
            // the request); a response, or another value, is an error.
            if (kind_ == Kind::kResponse || value != length_text) length_ok = false;
            break;
          }
          seen_length = true;
          length_text = value;
          if (value.empty()) {
            // Go's net/http ignores an empty one in a request (and serves it, without a body).
            if (kind_ == Kind::kResponse) length_ok = false;
            break;
          }
          uint64_t n = 0;
          for (char c : value) {
            if (c < '0' || c > '9' || n > (UINT64_MAX - 9) / 10) {
              length_ok = false;
              break;
            }
            n = n * 10 + static_cast<uint64_t>(c - '0');
          }
          has_length_ = length_ok;
          length_ = length_ok ? n : 0;
        }
        break;
      case 17:  // transfer-encoding
        if (EqualsIgnoreCase(name, "transfer-encoding")) {
          has_te_ = true;
          chunked_ = EqualsIgnoreCase(LastItem(value), "chunked");
        }
        break;
      case 10:  // connection
        if (EqualsIgnoreCase(name, "connection")) {
          if (ListHas(value, "upgrade")) connection_upgrade_ = true;
          if (ListHas(value, "close")) connection_close_ = true;
          if (ListHas(value, "keep-alive")) connection_keep_alive_ = true;
        }
        break;
      case 7:  // upgrade
        if (EqualsIgnoreCase(name, "upgrade")) upgrade_header_ = true;
        break;
      default:
        break;
    }
  }
  if (has_te_ && kind_ == Kind::kRequest &&
      (head_.version_major < 1 || (head_.version_major == 1 && head_.version_minor < 1))) {
    // Go's net/http ignores an HTTP/1.0 request's Transfer-Encoding (golang.org/issue/12785):
    // what follows the head (or its Content-Length body) is the next request, which it serves.
    has_te_ = chunked_ = false;
  }
  if (has_te_ && kind_ == Kind::kRequest) {
    // A request with both: the Transfer-Encoding decides (RFC 9112 6.3), as Go's net/http
    // reads it and serves the request (nginx answers 400). Failing here would hide it.
    has_length_ = false;
    length_ = 0;
    length_ok = true;
  }
  if (!length_ok || (has_te_ && has_length_)) return reject();
  const bool http11 =
      head_.version_major > 1 || (head_.version_major == 1 && head_.version_minor >= 1);
  closes_ = connection_close_ || (!http11 && !connection_keep_alive_);
  if (has_te_ && !chunked_ && kind_ == Kind::kRequest) {
    // Its body cannot be delimited, but the server answers it (501 from nginx and Go): the
    // head is reported before the error, as http-parser did, so that it is audited.
    head_rejected_ = true;
    listener.OnHead(head_);
    return false;
  }
  upgrade_ = kind_ == Kind::kRequest ? (connect_ || (upgrade_header_ && connection_upgrade_))
                                     : head_.status == 101;
  StartBody(listener, listener.OnHead(head_));
  return true;
}

void H1Parser::StartBody(H1Listener& listener, H1HeadVerdict verdict) {
  const bool has_body = chunked_ || (has_length_ && length_ > 0);
  if (kind_ == Kind::kRequest && upgrade_ &&
      (connect_ || verdict == H1HeadVerdict::kNoBody || !has_body)) {
    Complete(listener);
    return;
  }
  if (verdict == H1HeadVerdict::kNoBody) {
    Complete(listener);
  } else if (chunked_) {
    state_ = State::kChunkSize;
    buf_.clear();
  } else if (has_length_) {
    if (length_ == 0) {
      Complete(listener);
    } else {
      remaining_ = length_;
      state_ = State::kBodyLength;
    }
  } else if (kind_ == Kind::kRequest) {
    Complete(listener);  // a request without length or chunking has no body
  } else {
    state_ = State::kBodyEof;  // a response without them is delimited by the connection's end
  }
}

size_t H1Parser::Execute(H1Listener& listener, const char* p, size_t n) {
  size_t pos = 0;
  while (pos < n) {
    switch (state_) {
      case State::kDone:
      case State::kError:
        return pos;
      case State::kStart:
        while (pos < n && (p[pos] == '\r' || p[pos] == '\n')) ++pos;
        if (pos == n) return n;
        state_ = State::kHead;
        buf_.clear();
        scanned_ = 0;
        listener.OnMessageBegin();
        break;
      case State::kHead: {
        const size_t cap = max_head_ + kHeadSlack;
        if (buf_.empty()) {
          if (kind_ == Kind::kRequest && n - pos >= 4 && std::memcmp(p + pos, "GET ", 4) == 0) {
            const void* lf = std::memchr(p + pos, '\n', std::min(n - pos, kMaxTooLargeLine));
            if (lf != nullptr) {
              const size_t at = static_cast<size_t>(static_cast<const char*>(lf) - p);
              if (Head09(listener, std::string_view(p + pos, at - pos))) return at + 1;
            }
          }
          const size_t end = FindBlockEnd(p + pos, n - pos, 0);
          if (end == 0) {
            if (n - pos > cap) return FailTooLarge(pos, std::string_view(p + pos, n - pos));
            buf_.assign(p + pos, n - pos);
            scanned_ = buf_.size();
            return n;
          }
          // The same bound as for a block that comes in pieces (at most cap + 1 bytes held).
          if (end > cap + 1) return FailTooLarge(pos, std::string_view(p + pos, end));
          const size_t start = pos;
          pos += end;
          if (!ParseHead(listener, std::string_view(p + start, end)))
            return too_large_ ? FailTooLarge(start, std::string_view(p + start, end)) : Fail(start);
          break;
        }
        // The block began in an earlier call: search on where the last search stopped (less
        // the two bytes an end may straddle).
        const size_t old = buf_.size();
        const size_t take = std::min(n - pos, cap + 1 - std::min(cap + 1, old));
        buf_.append(p + pos, take);
        if (kind_ == Kind::kRequest && old < kMaxTooLargeLine && buf_.compare(0, 4, "GET ") == 0) {
          const size_t lf = buf_.find('\n');
          // Only when this call brought the first line's end.
          if (lf != std::string::npos && lf >= old && lf < kMaxTooLargeLine &&
              Head09(listener, std::string_view(buf_.data(), lf))) {
            const size_t used = lf + 1 - old;
            buf_.clear();
            return pos + used;
          }
        }
        const size_t end = FindBlockEnd(buf_.data(), buf_.size(), scanned_ > 2 ? scanned_ - 2 : 0);
        if (end == 0) {
          if (buf_.size() > cap) return FailTooLarge(pos, buf_);
          scanned_ = buf_.size();
          return n;
        }
        buf_.resize(end);
        const size_t used = end - old;
        const size_t start = pos;
        pos += used;
        if (!ParseHead(listener, std::string_view(buf_.data(), end)))
          return too_large_ ? FailTooLarge(start, buf_) : Fail(start);
        // A head that came in pieces leaves no buffer behind on an idle connection.
        if (buf_.capacity() > 1024)
          std::string().swap(buf_);
        else
          buf_.clear();
        break;
      }
      case State::kBodyLength:
      case State::kChunkData: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, n - pos));
        listener.OnBody(p + pos, take);
        pos += take;
        remaining_ -= take;
        if (remaining_ == 0) {
          if (state_ == State::kBodyLength) {
            Complete(listener);
            return pos;
          }
          state_ = State::kChunkDataEnd;
          buf_.clear();
        }
        break;
      }
      case State::kBodyEof:
        listener.OnBody(p + pos, n - pos);
        return n;
      case State::kChunkDataEnd:
        // CRLF (or a bare LF) after the chunk's data; buf_ holds a CR already seen.
        if (p[pos] == '\r' && buf_.empty()) {
          buf_.push_back('\r');
          ++pos;
          break;
        }
        if (p[pos] != '\n') return Fail(pos);
        ++pos;
        buf_.clear();
        state_ = State::kChunkSize;
        break;
      case State::kChunkSize:
      case State::kTrailers: {
        const void* lf = std::memchr(p + pos, '\n', n - pos);
        if (lf == nullptr) {
          if (buf_.size() + (n - pos) > kMaxChunkLine) return Fail(pos);
          buf_.append(p + pos, n - pos);
          return n;
        }
        const size_t at = static_cast<size_t>(static_cast<const char*>(lf) - p);
        std::string_view line;
        if (buf_.empty()) {
          if (at - pos > kMaxChunkLine) return Fail(pos);
          line = std::string_view(p + pos, at - pos);
        } else {
          if (buf_.size() + (at - pos) > kMaxChunkLine) return Fail(pos);
          buf_.append(p + pos, at - pos);
          line = buf_;
        }
        const size_t start = pos;
        pos = at + 1;
        line = StripEol(line);
        if (state_ == State::kTrailers) {
          buf_.clear();
          if (line.empty()) {
            Complete(listener);
            return pos;
          }
          continue;
        }
        // chunk-size [ OWS ] [ ";" extensions ]
        uint64_t size = 0;
        size_t i = 0;
        for (; i < line.size(); ++i) {
          const char c = line[i];
          int d;
          if (c >= '0' && c <= '9')
            d = c - '0';
          else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
          else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
          else
            break;
          if (size >> 56 != 0) return Fail(start);
          size = size * 16 + static_cast<uint64_t>(d);
        }
        if (i == 0) return Fail(start);
        while (i < line.size() && IsOws(line[i])) ++i;
        if (i < line.size() && line[i] != ';') return Fail(start);
        buf_.clear();
        if (size == 0) {
          state_ = State::kTrailers;
        } else {
          remaining_ = size;
          state_ = State::kChunkData;
        }
        break;
      }
    }
  }
  return pos;
}

void H1Parser::Finish(H1Listener& listener) {
  if (state_ == State::kBodyEof) Complete(listener);
}

}  // namespace mat::http
