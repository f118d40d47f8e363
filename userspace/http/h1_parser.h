// One direction of an HTTP/1.x byte stream, parsed into messages: a pure parser (bytes in,
// message events out), with no knowledge of pairing, gaps or audit. Http1Connection drives two
// of them, one per direction.
//
// Replaces nodejs' http-parser, whose byte-at-a-time state machine and per-fragment callbacks
// were the largest cost of the pipeline. A header block is found whole (one memchr walk over
// its lines) and parsed at once, in place when it arrived in one piece and from a bounded
// buffer otherwise; bodies are delivered in the largest pieces the framing allows.
//
// Accepted as http-parser 2.9 did: the same methods, Content-Length and Transfer-Encoding
// rules (a repeated Content-Length, or one with chunked, is an error; a request with a
// non-chunked Transfer-Encoding is an error, a response with one is read until the
// connection's end), obs-fold continuation lines, bare LF line ends. Chunk-size lines may end
// in a bare LF, as nginx before 1.29.4 and Go before 1.23.8 accept (both reject it now:
// which server answered decides, see the faithful-HTTP issue). Except where failing would hide
// a request Go's net/http serves: a request may repeat the same Content-Length or send an
// empty one (ignored), a request's Transfer-Encoding drops every Content-Length unread, an
// HTTP/1.0 request's Transfer-Encoding is ignored, and a request's header line with an empty
// name is skipped. Nor one nginx serves: a request's header line whose name has bytes other
// than a token's (but no control byte or space), or that has no colon, is skipped, and its
// values may hold any byte but NUL and CR.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mat::http {

// A message's start line and header block, as views into the parser's input; valid only during
// H1Listener::OnHead. Header values have their leading and trailing whitespace removed.
struct H1Head {
  std::string_view method;  // request
  std::string_view target;  // request
  int status = 0;           // response
  int version_major = 1;
  int version_minor = 1;
  std::vector<std::pair<std::string_view, std::string_view>> fields;
  // target, reason phrase, names and values, and 4 bytes a header line (": " and CRLF): the
  // measure that max_head_bytes limits.
  size_t counted_bytes = 0;
};

enum class H1HeadVerdict : uint8_t {
  kBody,    // the message's framing decides its body
  kNoBody,  // the message has no body whatever its headers say (HEAD, 1xx, 204, 304, ...)
};

// A method http-parser 2.9 knew.
bool IsKnownMethod(std::string_view method);
// A request method H1Parser accepts: any token, as Go's net/http does (nginx takes A-Z, '_' and
// '-', answers the others 400 and closes: the response decides, see http1.h).
bool IsMethodToken(std::string_view method);

class H1Listener {
 public:
  virtual ~H1Listener() = default;
  // The first byte of a message (after the CR/LF that may separate messages).
  virtual void OnMessageBegin() = 0;
  virtual H1HeadVerdict OnHead(const H1Head& head) = 0;
  virtual void OnBody(const char* at, size_t n) = 0;
  virtual void OnMessageComplete() = 0;
};

class H1Parser {
 public:
  enum class Kind : uint8_t { kRequest, kResponse };

  H1Parser(Kind kind, size_t max_head_bytes) : kind_(kind), max_head_(max_head_bytes) {}

  // Back to the start of a message: after a completed message, or to resynchronise.
  void Reset();

  // Parses p[0..n) and stops right after a message completes (message_done()), at an error
  // (failed()), or when every byte is used. Returns the bytes used. After an error the return
  // value is where parsing could not go on (a good place to resynchronise from).
  size_t Execute(H1Listener& listener, const char* p, size_t n);
  // The stream ended: a message delimited by the connection's end completes.
  void Finish(H1Listener& listener);

  bool failed() const { return state_ == State::kError; }
  // The error was a header block over max_head_bytes (a request's may still be named): its
  // start line as far as it was seen (at most kMaxTooLargeLine bytes, without the line end).
  bool head_too_large() const { return state_ == State::kError && too_large_; }
  std::string_view too_large_start_line() const { return too_large_line_; }
  static constexpr size_t kMaxTooLargeLine = 8 * 1024;
  bool message_done() const { return state_ == State::kDone; }
  // Inside a head that came in pieces: its start line when whole (without the line end), else
  // empty.
  std::string_view partial_start_line() const {
    if (state_ != State::kHead) return {};
    std::string_view b = buf_;
    const size_t lf = b.find('\n');
    if (lf == std::string_view::npos) return {};
    b = b.substr(0, lf);
    if (!b.empty() && b.back() == '\r') b.remove_suffix(1);
    return b;
  }
  // The message's head says the connection closes after it: "Connection: close", or HTTP/1.0
  // without "Connection: keep-alive", or an HTTP/0.9 request. Valid once its head was parsed.
  bool closes() const { return closes_; }
  // The error came after a request's start line was read, or in a start line that still named
  // a method and a target (NameRejectedLine): its head was reported (OnHead) with the fields
  // read so far, and the server answers it (nginx and Go: 400, then close).
  bool head_rejected() const { return state_ == State::kError && head_rejected_; }
  // The message asked to leave HTTP/1.1 (CONNECT, or Upgrade with Connection: upgrade).
  bool upgrade() const { return upgrade_; }
  // The head has a Content-Length or a Transfer-Encoding (valid from OnHead on).
  bool framed() const { return has_length_ || has_te_; }
  // Inside a body delimited by Content-Length, with remaining() > 0 bytes still expected.
  bool in_length_body() const { return state_ == State::kBodyLength; }
  uint64_t remaining() const { return remaining_; }
  // Takes `k` (< remaining()) body bytes off the rest expected, as if they had been delivered.
  void SkipBodyBytes(uint64_t k) { remaining_ -= k; }

 private:
  enum class State : uint8_t {
    kStart,         // before a message's first byte (CR/LF skipped)
    kHead,          // inside the start line and header block
    kBodyLength,    // Content-Length body, remaining_ bytes to go
    kBodyEof,       // body read until the connection's end
    kChunkSize,     // chunk-size line (extensions skipped), in line_
    kChunkData,     // remaining_ bytes of chunk data
    kChunkDataEnd,  // the CRLF after chunk data
    kTrailers,      // trailer lines after the last chunk, in line_
    kDone,
    kError,
  };

  // Parses the complete header block `block` (ending in its empty line). Returns false on error.
  bool ParseHead(H1Listener& listener, std::string_view block);
  bool ParseStartLine(std::string_view line);
  // A request line ParseStartLine rejects that still names a method (a token) and a target
  // (its first two fields, split at SP or HTAB): sets them in the head; false when it does not.
  static bool NameRejectedLine(std::string_view line);
  // An HTTP/0.9 request line "GET target" (nginx serves it): reports it and completes.
  static std::string_view Http09Target(std::string_view line);
  bool Head09(H1Listener& listener, std::string_view line);
  void StartBody(H1Listener& listener, H1HeadVerdict verdict);
  void Complete(H1Listener& listener) {
    state_ = State::kDone;
    listener.OnMessageComplete();
  }
  size_t Fail(size_t at) {
    state_ = State::kError;
    return at;
  }
  size_t FailTooLarge(size_t at, std::string_view head) {
    too_large_ = true;
    head = head.substr(0, std::min(head.find('\n'), kMaxTooLargeLine));
    while (!head.empty() && head.back() == '\r') head.remove_suffix(1);
    too_large_line_.assign(head);
    return Fail(at);
  }

  Kind kind_;
  size_t max_head_;
  State state_ = State::kStart;
  bool upgrade_ = false;
  bool chunked_ = false;
  bool has_length_ = false;
  bool has_te_ = false;
  bool connection_upgrade_ = false;
  bool upgrade_header_ = false;
  bool connect_ = false;
  bool connection_close_ = false;
  bool connection_keep_alive_ = false;
  bool closes_ = false;
  bool head_rejected_ = false;
  bool too_large_ = false;      // the header block is over max_head_ (set by ParseHead too)
  std::string too_large_line_;  // its start line, when the error is that
  uint64_t length_ = 0;
  uint64_t remaining_ = 0;
  std::string buf_;     // a header block (or chunk/trailer line) that spans calls
  size_t scanned_ = 0;  // bytes of buf_ already searched for the block's end
  // The head being parsed and the obs-fold values joined for it (they must not move): scratch
  // that lives only during ParseHead and OnHead, shared by the thread's parsers so an idle
  // connection keeps none of it.
  struct Scratch {
    H1Head head;
    std::deque<std::string> folds;
  };
  static Scratch& SharedScratch();
};

}  // namespace mat::http
