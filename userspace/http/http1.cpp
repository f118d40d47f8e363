// HTTP/1.1 reassembly on top of nodejs' http-parser (2.9.x).
//
// Design notes:
// - One http_parser per direction. on_message_complete always pauses the parser, so every
//   message ends with a return from http_parser_execute; the parser is then re-initialised.
//   This gives one place for per-message follow-up (upgrade, tunnel) and keeps parsing after
//   "Connection: close" / HTTP/1.0 messages (the strict library would refuse further bytes).
// - A request enters the pending FIFO when its header block is complete; its body is then
//   appended in place. A response is paired with the first pending request without a verdict
//   when its (final) header block is complete. An exchange is handed to the sink when it has a
//   verdict and its request is done (a response may finish before its request's body did).
// - Unsynchronised streams are scanned for a plausible start line at the start of each OnData
//   call's bytes and after each LF; an undecided candidate keeps a bounded tail.
// - `owed_` counts responses that belong to requests we never queued (skipped while
//   unsynchronised, discarded on error/gap, dropped over the limit): that many responses are
//   treated as orphans before pairing resumes, so pairing does not shift by one.
// - Gaps inside a Content-Length body (the tap keeps only the head of a large write) do not
//   cost sync: http-parser's content_length holds the body bytes still expected while in
//   s_body_identity, so the lost bytes are taken off it directly (O(1), whatever the size)
//   and one filler byte is fed through the parser, which then completes the message if the
//   gap ended it. From the gap on, body bytes are counted but not stored (`body_frozen`), so
//   the kept body is exactly the bytes seen before the gap and never filler.
//   A gap that goes past the body's end provably lost the start of the next message. For a
//   request, a `lost` placeholder is queued in its FIFO place (not `owed_`, which is spent
//   before the requests already waiting): its response is dropped as an orphan and it is
//   never reported. For a response, the next waiting request gets kNoResponse.

#include "http/http1.h"

#include <http_parser.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace mat::http {

namespace {

constexpr size_t kMaxStartLine = 8 * 1024;  // longest start line found while unsynchronised
constexpr size_t kMaxMethodLen = 20;
constexpr size_t kMaxHeld = 64 * 1024;     // request bytes held while an upgrade is undecided
constexpr size_t kHeaderLineOverhead = 4;  // ": " and CRLF, counted per header line
constexpr size_t kNpos = static_cast<size_t>(-1);
// http-parser's content_length when no length is known (its ULLONG_MAX).
constexpr uint64_t kNoContentLength = std::numeric_limits<uint64_t>::max();

enum class Match : uint8_t { kNo, kYes, kNeedMore };

inline bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }
inline bool IsMethodChar(char c) { return IsUpper(c) || c == '-' || c == '_'; }
inline bool IsTargetChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u != 0x7f;
}

// Matches `lit` at p[i..]; advances i.
inline Match MatchLiteral(const char* p, size_t n, size_t& i, std::string_view lit) {
  for (char want : lit) {
    if (i >= n) return Match::kNeedMore;
    if (p[i] != want) return Match::kNo;
    ++i;
  }
  return Match::kYes;
}

// "HTTP/1." DIGIT
inline Match MatchVersion(const char* p, size_t n, size_t& i) {
  Match m = MatchLiteral(p, n, i, "HTTP/1.");
  if (m != Match::kYes) return m;
  if (i >= n) return Match::kNeedMore;
  if (!IsDigit(p[i])) return Match::kNo;
  ++i;
  return Match::kYes;
}

// METHOD SP target SP HTTP/1.x CRLF
Match MatchRequestLine(const char* p, size_t n) {
  size_t i = 0;
  if (n == 0) return Match::kNeedMore;
  if (!IsUpper(p[0])) return Match::kNo;
  while (i < n && IsMethodChar(p[i])) {
    if (++i > kMaxMethodLen) return Match::kNo;
  }
  if (i >= n) return Match::kNeedMore;
  if (p[i] != ' ') return Match::kNo;
  ++i;
  const size_t target_start = i;
  while (i < n && IsTargetChar(p[i])) ++i;
  if (i >= n) return Match::kNeedMore;
  if (i == target_start || p[i] != ' ') return Match::kNo;
  ++i;
  Match m = MatchVersion(p, n, i);
  if (m != Match::kYes) return m;
  return MatchLiteral(p, n, i, "\r\n");
}

// HTTP/1.x SP 3DIGIT (SP | CR)
Match MatchStatusLine(const char* p, size_t n) {
  size_t i = 0;
  Match m = MatchVersion(p, n, i);
  if (m != Match::kYes) return m;
  m = MatchLiteral(p, n, i, " ");
  if (m != Match::kYes) return m;
  for (int k = 0; k < 3; ++k, ++i) {
    if (i >= n) return Match::kNeedMore;
    if (!IsDigit(p[i])) return Match::kNo;
  }
  if (i >= n) return Match::kNeedMore;
  return (p[i] == ' ' || p[i] == '\r') ? Match::kYes : Match::kNo;
}

// Is p[0..n) the plausible start of a message? Never needs more than kMaxStartLine bytes.
Match MatchStart(Direction dir, const char* p, size_t n) {
  const size_t lim = std::min(n, kMaxStartLine);
  Match m = dir == Direction::kRequest ? MatchRequestLine(p, lim) : MatchStatusLine(p, lim);
  if (m == Match::kNeedMore && lim >= kMaxStartLine) return Match::kNo;
  return m;
}

inline bool IsOws(char c) { return c == ' ' || c == '\t'; }

void TrimValues(Headers& headers) {
  for (auto& h : headers) {
    std::string& v = h.second;
    size_t end = v.size();
    while (end > 0 && IsOws(v[end - 1])) --end;
    size_t begin = 0;
    while (begin < end && IsOws(v[begin])) ++begin;
    v.erase(end);
    v.erase(0, begin);
  }
}

void AppendBody(std::string& body, uint64_t& size, bool& truncated, const char* at, size_t len,
                size_t max) {
  size += len;
  if (body.size() < max) body.append(at, std::min(len, max - body.size()));
  truncated = size > body.size();
}

}  // namespace

struct Http1Connection::Impl {
  enum class Mode : uint8_t { kUnsynced, kSynced, kUpgradeWait, kDead };

  struct Pending {
    uint64_t seq = 0;
    HttpExchange ex;
    bool request_done = false;  // complete or abandoned; no more bytes go into it
    bool has_verdict = false;
    ExchangeEvent verdict = ExchangeEvent::kNoResponse;
    bool lost = false;  // placeholder for a request whose start a gap took: never reported
    bool timeout_reported = false;
    bool response_started = false;  // its response head arrived: it is not waiting any more
  };

  struct Ready {
    HttpExchange ex;
    ExchangeEvent event;
  };

  struct Stream {
    Impl* impl = nullptr;
    Direction dir = Direction::kRequest;
    http_parser parser{};
    Mode mode = Mode::kUnsynced;
    uint64_t ts = 0;  // ts of the bytes being parsed

    // Unsynchronised scanning.
    std::string tail;  // an undecided candidate start line (< kMaxStartLine bytes, no LF)
    uint64_t tail_ts = 0;
    bool skipped_significant = false;  // skipped something other than CR/LF since last sync
    bool skip_accounted = false;  // request: skipped bytes belong to an already counted message
    // Request: a gap took the start of a request (queued as a `lost` placeholder); the bytes
    // skipped or the malformed message start found next are its remains, not a new request.
    bool lost_head = false;

    // Request stream only: bytes after an upgrade request, until its response decides.
    std::string held;
    uint64_t held_ts = 0;
    bool held_lost = false;
    uint64_t upgrade_seq = 0;

    // Message in progress.
    bool in_message = false;
    bool headers_done = false;
    bool last_was_value = false;
    bool interim = false;       // response: 1xx (not 101)
    bool tunnel = false;        // response: 101, or 2xx to CONNECT
    bool message_done = false;  // on_message_complete ran during this execute
    bool body_frozen = false;   // a gap was skipped in this body: count bytes, keep none
    size_t header_bytes = 0;
    Headers* headers = nullptr;
    HttpRequest req;           // request: until its header block is complete
    Pending* entry = nullptr;  // request: queued, receiving its body
    uint64_t completed_seq = 0;
    bool completed_had_verdict = false;
    bool completed_upgrade = false;
    HttpResponse resp;  // response: the message being parsed
    uint64_t partner_seq = 0;
  };

  Http1Options opt;
  Sink sink;
  Http1Stats stats;
  Stream streams[2];
  std::deque<Pending> pending;
  uint64_t next_seq = 1;
  uint64_t owed = 0;
  std::vector<Ready> ready;
  std::vector<Ready> batch;
  bool resume_requests = false;
  bool go_dead = false;
  bool closed = false;

  Impl(Http1Options o, Sink s) : opt(o), sink(std::move(s)) {
    if (opt.max_pending_requests == 0) opt.max_pending_requests = 1;
    for (int i = 0; i < 2; ++i) {
      Stream& st = streams[i];
      st.impl = this;
      st.dir = static_cast<Direction>(i);
      st.parser.data = &st;
      ResetParser(st);
    }
  }

  static const http_parser_settings& Settings() {
    static const http_parser_settings settings = [] {
      http_parser_settings s;
      http_parser_settings_init(&s);
      s.on_message_begin = &Impl::CbMessageBegin;
      s.on_url = &Impl::CbUrl;
      s.on_status = &Impl::CbStatus;
      s.on_header_field = &Impl::CbHeaderField;
      s.on_header_value = &Impl::CbHeaderValue;
      s.on_headers_complete = &Impl::CbHeadersComplete;
      s.on_body = &Impl::CbBody;
      s.on_message_complete = &Impl::CbMessageComplete;
      return s;
    }();
    return settings;
  }

  static Stream& S(http_parser* p) { return *static_cast<Stream*>(p->data); }

  Stream& Req() { return streams[0]; }
  Stream& Resp() { return streams[1]; }

  // ---- parser state ----

  static void ResetParser(Stream& s) {
    http_parser_init(&s.parser, s.dir == Direction::kRequest ? HTTP_REQUEST : HTTP_RESPONSE);
    s.in_message = false;
    s.headers_done = false;
    s.last_was_value = false;
    s.interim = false;
    s.tunnel = false;
    s.body_frozen = false;
    s.header_bytes = 0;
    s.headers = nullptr;
    s.entry = nullptr;
    s.partner_seq = 0;
  }

  // ---- pending queue ----

  void BumpOwed() {
    if (owed < opt.max_pending_requests) ++owed;
  }

  Pending* FindBySeq(uint64_t seq) {
    if (seq == 0) return nullptr;
    for (Pending& e : pending) {
      if (e.seq == seq) return &e;
      if (e.seq > seq) break;
    }
    return nullptr;
  }

  // Moves finished exchanges at the head of the queue to `ready`, in order.
  void Drain() {
    while (!pending.empty() && pending.front().has_verdict && pending.front().request_done) {
      Pending& f = pending.front();
      if (!f.lost) ready.push_back(Ready{std::move(f.ex), f.verdict});
      pending.pop_front();
    }
  }

  // The request a final response starting at `first_byte_ns` answers; 0 for none.
  uint64_t ClaimPartner(uint64_t first_byte_ns) {
    if (owed > 0) {
      --owed;
      return 0;
    }
    for (const Pending& e : pending) {
      if (e.has_verdict) continue;
      // A server cannot answer a request before it was sent: this response belongs to a
      // request we did not see.
      // (Unknown times, 0, are not compared.)
      if (first_byte_ns != 0 && first_byte_ns < e.ex.request.first_byte_ns) return 0;
      return e.seq;
    }
    return 0;
  }

  // The entry `seq` will not get a tunnel: a request stream waiting on it may go on.
  void Resolved(uint64_t seq) {
    Stream& r = Req();
    if (r.mode == Mode::kUpgradeWait && r.upgrade_seq == seq) resume_requests = true;
  }

  void SetVerdict(Pending& e, ExchangeEvent ev) {
    e.has_verdict = true;
    e.verdict = ev;
    const uint64_t seq = e.seq;
    Drain();
    Resolved(seq);
  }

  void DropOverflow() {
    while (pending.size() >= opt.max_pending_requests) {
      Pending& f = pending.front();
      const uint64_t seq = f.seq;
      const Stream& rs = Resp();
      const bool answer_in_flight = rs.in_message && rs.headers_done && rs.partner_seq == seq;
      if (f.lost) {  // not a request we can report: its response just stays an orphan
        pending.pop_front();
        if (!answer_in_flight) BumpOwed();
        Resolved(seq);
        continue;
      }
      if (Req().entry == &f) Req().entry = nullptr;  // (cannot happen: it is the newest)
      f.ex.incomplete = true;
      f.ex.response.reset();
      ready.push_back(Ready{std::move(f.ex), ExchangeEvent::kNoResponse});
      pending.pop_front();
      ++stats.dropped_requests;
      if (!answer_in_flight) BumpOwed();
      Resolved(seq);
    }
  }

  // ---- http-parser callbacks ----

  bool AddHeaderBytes(Stream& s, size_t n) {
    s.header_bytes += n;
    return s.header_bytes <= opt.max_header_bytes;
  }

  static int CbMessageBegin(http_parser* p) {
    Stream& s = S(p);
    s.in_message = true;
    s.headers_done = false;
    s.last_was_value = false;
    s.interim = false;
    s.tunnel = false;
    s.body_frozen = false;
    s.header_bytes = 0;
    s.partner_seq = 0;
    if (s.dir == Direction::kRequest) {
      s.req = HttpRequest{};
      s.req.first_byte_ns = s.ts;
      s.headers = &s.req.headers;
      s.entry = nullptr;
    } else {
      s.resp = HttpResponse{};
      s.resp.first_byte_ns = s.ts;
      s.headers = &s.resp.headers;
    }
    return 0;
  }

  static int CbUrl(http_parser* p, const char* at, size_t len) {
    Stream& s = S(p);
    if (!s.impl->AddHeaderBytes(s, len)) return 1;
    s.req.target.append(at, len);
    return 0;
  }

  static int CbStatus(http_parser* p, const char*, size_t len) {
    Stream& s = S(p);
    return s.impl->AddHeaderBytes(s, len) ? 0 : 1;
  }

  static int CbHeaderField(http_parser* p, const char* at, size_t len) {
    Stream& s = S(p);
    if (s.headers_done || s.headers == nullptr) return 0;  // chunked trailers: ignored
    const bool fresh = s.last_was_value || s.headers->empty();
    if (!s.impl->AddHeaderBytes(s, len + (fresh ? kHeaderLineOverhead : 0))) return 1;
    if (fresh) {
      s.headers->emplace_back(std::string(at, len), std::string());
      s.last_was_value = false;
    } else {
      s.headers->back().first.append(at, len);
    }
    return 0;
  }

  static int CbHeaderValue(http_parser* p, const char* at, size_t len) {
    Stream& s = S(p);
    if (s.headers_done || s.headers == nullptr || s.headers->empty()) return 0;
    if (!s.impl->AddHeaderBytes(s, len)) return 1;
    s.headers->back().second.append(at, len);
    s.last_was_value = true;
    return 0;
  }

  static int CbHeadersComplete(http_parser* p) {
    Stream& s = S(p);
    Impl& im = *s.impl;
    s.headers_done = true;
    if (s.dir == Direction::kRequest) {
      HttpRequest& r = s.req;
      r.method = http_method_str(static_cast<http_method>(p->method));
      r.version_major = p->http_major;
      r.version_minor = p->http_minor;
      r.headers_done_ns = s.ts;
      TrimValues(r.headers);
      ++im.stats.requests;
      s.lost_head = false;
      im.DropOverflow();
      Pending& e = im.pending.emplace_back();
      e.seq = im.next_seq++;
      e.ex.sequence = e.seq;
      e.ex.request = std::move(r);
      s.entry = &e;
      s.headers = nullptr;
      return 0;
    }
    HttpResponse& r = s.resp;
    r.status = p->status_code;
    r.version_major = p->http_major;
    r.version_minor = p->http_minor;
    r.headers_done_ns = s.ts;
    TrimValues(r.headers);
    s.headers = nullptr;
    if (r.status >= 100 && r.status < 200 && r.status != 101) {
      s.interim = true;
      return 1;  // no body
    }
    s.partner_seq = im.ClaimPartner(r.first_byte_ns);
    bool no_body = r.status == 101 || r.status == 204 || r.status == 304;
    s.tunnel = r.status == 101;
    if (Pending* e = im.FindBySeq(s.partner_seq)) {
      e->response_started = true;
      if (im.opt.report_started && im.opt.report_started(e->ex.request)) {
        HttpExchange started;
        started.request = e->ex.request;
        started.response = r;
        started.incomplete = e->ex.incomplete;
        started.sequence = e->seq;
        im.ready.push_back(Ready{std::move(started), ExchangeEvent::kResponseStarted});
      }
      const std::string& m = e->ex.request.method;
      if (m == "HEAD") no_body = true;
      if (m == "CONNECT" && r.status >= 200 && r.status < 300) {
        no_body = true;
        s.tunnel = true;
      }
    }
    return no_body ? 1 : 0;
  }

  static int CbBody(http_parser* p, const char* at, size_t len) {
    Stream& s = S(p);
    // After a skipped gap, bytes are only counted: the kept body must not have a hole.
    const size_t max = s.body_frozen ? 0 : s.impl->opt.max_body_bytes;
    if (s.dir == Direction::kRequest) {
      if (s.entry == nullptr) return 0;
      HttpRequest& r = s.entry->ex.request;
      AppendBody(r.body, r.body_size, r.body_truncated, at, len, max);
    } else {
      HttpResponse& r = s.resp;
      AppendBody(r.body, r.body_size, r.body_truncated, at, len, max);
    }
    return 0;
  }

  static int CbMessageComplete(http_parser* p) {
    Stream& s = S(p);
    Impl& im = *s.impl;
    if (s.dir == Direction::kRequest) {
      s.completed_seq = 0;
      s.completed_had_verdict = false;
      s.completed_upgrade = p->upgrade != 0;
      if (Pending* e = s.entry) {
        e->ex.request.complete_ns = s.ts;
        e->request_done = true;
        if (im.opt.report_received && !e->lost) {
          HttpExchange received;
          received.request = e->ex.request;
          received.incomplete = e->ex.incomplete;
          received.sequence = e->seq;
          im.ready.push_back(Ready{std::move(received), ExchangeEvent::kRequestReceived});
        }
        s.completed_seq = e->seq;
        s.completed_had_verdict = e->has_verdict;
        s.entry = nullptr;
        im.Drain();
      }
    } else if (s.interim) {
      ++im.stats.interim_responses;
    } else {
      ++im.stats.responses;
      s.resp.complete_ns = s.ts;
      const uint64_t seq = s.partner_seq;
      Pending* e = im.FindBySeq(seq);
      if (e != nullptr && !e->lost) {
        e->ex.response = std::move(s.resp);
        im.SetVerdict(*e, ExchangeEvent::kResponseComplete);
      } else {
        ++im.stats.orphan_responses;
        if (e != nullptr) im.SetVerdict(*e, ExchangeEvent::kNoResponse);  // drops the placeholder
      }
      if (s.tunnel) im.go_dead = true;
    }
    s.in_message = false;
    s.message_done = true;
    http_parser_pause(p, 1);  // return from execute; the caller re-initialises the parser
    return 0;
  }

  // ---- stream processing ----

  void MarkSkipped(Stream& s, const char* p, size_t n) {
    if (n == 0) return;
    stats.skipped_bytes += n;
    if (!s.skipped_significant) {
      for (size_t i = 0; i < n; ++i) {
        if (p[i] != '\r' && p[i] != '\n') {
          s.skipped_significant = true;
          break;
        }
      }
    }
  }

  void Sync(Stream& s) {
    if (s.skipped_significant) {
      ++stats.resyncs;
      if (s.dir == Direction::kRequest && !s.skip_accounted && !s.lost_head) BumpOwed();
      s.lost_head = false;  // the lost request's remains were skipped
    }
    s.skipped_significant = false;
    s.skip_accounted = false;
    s.tail.clear();
    ResetParser(s);
    s.mode = Mode::kSynced;
  }

  // Looks for a message start in p[0..n): at 0 when `start_candidate`, and after each LF.
  // Returns its offset, or kNpos when all bytes were consumed (skipped, or kept as tail).
  size_t Scan(Stream& s, const char* p, size_t n, bool start_candidate, uint64_t ts) {
    size_t c = 0;
    if (!start_candidate) {
      const void* lf = std::memchr(p, '\n', n);
      c = lf ? static_cast<size_t>(static_cast<const char*>(lf) - p) + 1 : n;
    }
    while (c < n) {
      const Match m = MatchStart(s.dir, p + c, n - c);
      if (m == Match::kYes) {
        MarkSkipped(s, p, c);
        return c;
      }
      if (m == Match::kNeedMore) {
        MarkSkipped(s, p, c);
        s.tail.assign(p + c, n - c);
        s.tail_ts = ts;
        return kNpos;
      }
      const void* lf = std::memchr(p + c, '\n', n - c);
      c = lf ? static_cast<size_t>(static_cast<const char*>(lf) - p) + 1 : n;
    }
    MarkSkipped(s, p, n);
    return kNpos;
  }

  void Hold(Stream& s, const char* p, size_t n, uint64_t ts) {
    if (s.held_lost) return;
    if (s.held.empty()) s.held_ts = ts;
    const size_t room = kMaxHeld - s.held.size();
    s.held.append(p, std::min(n, room));
    if (n > room) s.held_lost = true;
  }

  // The message in progress is given up (gap or parse error); the stream then resynchronises.
  // A malformed request start counts as a message even when http-parser rejected its first
  // byte (an unknown method): the server may well answer it.
  // A response cut by a gap after its header block was complete still reports its status:
  // kResponseComplete with what was seen, marked incomplete (complete_ns stays 0).
  void Abandon(Stream& s, bool parse_error) {
    if (s.dir == Direction::kRequest) {
      if (Pending* e = s.entry) {
        e->ex.incomplete = true;
        e->request_done = true;
        s.entry = nullptr;
        Drain();
        s.skip_accounted = true;
      } else if (s.in_message || parse_error) {
        if (!s.lost_head) BumpOwed();  // its response will still come (else: already queued)
        s.lost_head = false;
        s.skip_accounted = true;
      } else {
        s.skip_accounted = false;
      }
    } else if (s.in_message && !s.interim && s.headers_done && !parse_error) {
      if (Pending* e = FindBySeq(s.partner_seq)) {
        e->ex.incomplete = true;
        e->ex.response = std::move(s.resp);
        SetVerdict(*e, ExchangeEvent::kResponseComplete);
      }
    } else if (s.in_message && !s.interim) {
      const uint64_t seq = s.headers_done ? s.partner_seq : ClaimPartner(s.resp.first_byte_ns);
      if (Pending* e = FindBySeq(seq)) {
        e->ex.incomplete = true;
        e->ex.response.reset();
        SetVerdict(*e, ExchangeEvent::kNoResponse);
      }
    }
    ResetParser(s);
    s.tail.clear();
    s.mode = Mode::kUnsynced;
  }

  void GoDead() {
    go_dead = false;
    ++stats.upgrades;
    for (Stream& s : streams) {
      if (s.entry != nullptr) s.entry->request_done = true;
      ResetParser(s);
      s.mode = Mode::kDead;
      s.tail.clear();
      s.tail.shrink_to_fit();
      s.held.clear();
      s.held.shrink_to_fit();
    }
    resume_requests = false;
    Drain();
  }

  // After on_message_complete paused the parser.
  void AfterMessage(Stream& s) {
    s.message_done = false;
    ResetParser(s);
    if (go_dead) {
      GoDead();
      return;
    }
    if (s.dir == Direction::kRequest && s.completed_upgrade && s.completed_seq != 0 &&
        !s.completed_had_verdict) {
      // Upgrade / CONNECT request: what follows is HTTP only if the server declines.
      s.mode = Mode::kUpgradeWait;
      s.upgrade_seq = s.completed_seq;
      s.held.clear();
      s.held_lost = false;
    }
  }

  void ProcessChunk(Stream& s, const char* p, size_t n, uint64_t ts, bool start_candidate) {
    size_t pos = 0;
    bool candidate = start_candidate;
    while (pos < n) {
      switch (s.mode) {
        case Mode::kDead:
          return;
        case Mode::kUpgradeWait:
          Hold(s, p + pos, n - pos, ts);
          return;
        case Mode::kUnsynced: {
          const size_t off = Scan(s, p + pos, n - pos, candidate, ts);
          if (off == kNpos) return;
          pos += off;
          Sync(s);
          break;
        }
        case Mode::kSynced: {
          s.ts = ts;
          s.message_done = false;
          const size_t used = http_parser_execute(&s.parser, &Settings(), p + pos, n - pos);
          pos += std::min(used, n - pos);
          if (s.message_done) {
            AfterMessage(s);
          } else if (HTTP_PARSER_ERRNO(&s.parser) != HPE_OK || pos < n) {
            ++stats.parse_errors;
            Abandon(s, true);
            candidate = false;  // resynchronise strictly after the error point
          }
          // A declined upgrade: parse the held requests before the next response pairs.
          if (resume_requests && s.dir == Direction::kResponse) {
            resume_requests = false;
            Resume();
          }
          break;
        }
      }
    }
  }

  void FeedChunk(Stream& s, const char* p, size_t n, uint64_t ts) {
    if (n == 0) return;
    if (s.mode == Mode::kUnsynced && !s.tail.empty()) {
      const size_t old = s.tail.size();
      s.tail.append(p, std::min(n, kMaxStartLine - old));
      const Match m = MatchStart(s.dir, s.tail.data(), s.tail.size());
      if (m == Match::kNeedMore) return;  // all of p was appended (MatchStart caps the line)
      s.tail.resize(old);
      std::string t;
      t.swap(s.tail);
      const uint64_t tts = s.tail_ts;
      if (m == Match::kYes) {
        Sync(s);
        ProcessChunk(s, t.data(), t.size(), tts, false);
        // The tail holds no LF, so this cannot leave a new tail behind: no deep recursion.
        FeedChunk(s, p, n, ts);
        return;
      }
      MarkSkipped(s, t.data(), t.size());
    }
    ProcessChunk(s, p, n, ts, true);
  }

  void Resume() {
    Stream& s = Req();
    if (s.mode != Mode::kUpgradeWait) return;
    std::string held;
    held.swap(s.held);
    const bool lost = s.held_lost;
    s.held_lost = false;
    ResetParser(s);
    s.mode = Mode::kSynced;
    FeedChunk(s, held.data(), held.size(), s.held_ts);
    if (lost) Lose(s);  // bytes after the held ones were dropped
  }

  // Bytes of this stream were lost at its current position.
  void Lose(Stream& s) {
    switch (s.mode) {
      case Mode::kDead:
        break;
      case Mode::kUpgradeWait:
        s.held_lost = true;
        break;
      case Mode::kUnsynced:
        s.tail.clear();
        break;
      case Mode::kSynced:
        Abandon(s, false);
        break;
    }
  }

  void Flush() {
    while (!ready.empty()) {
      batch.swap(ready);
      for (Ready& r : batch) {
        if (sink) sink(std::move(r.ex), r.event);
      }
      batch.clear();
    }
  }

  void AfterCall() {
    for (int guard = 0; resume_requests && guard < 64; ++guard) {
      resume_requests = false;
      Resume();
    }
    resume_requests = false;
    Flush();
  }

  // ---- public operations ----

  void OnData(Direction dir, std::string_view bytes, uint64_t ts) {
    if (closed) return;
    FeedChunk(streams[static_cast<int>(dir)], bytes.data(), bytes.size(), ts);
    AfterCall();
  }

  // ---- gaps ----

  // Is the stream inside a body delimited by Content-Length (http-parser's s_body_identity),
  // so that parser.content_length is the number of body bytes still expected?
  // After on_headers_complete ran and the execute call returned without completing the
  // message or failing, the parser is past s_headers_done: in a chunked body, a read-until-
  // close body (no length, or a non-chunked Transfer-Encoding) or a length-delimited one.
  bool InLengthBody(const Stream& s) const {
    if (s.mode != Mode::kSynced || !s.in_message || !s.headers_done || s.interim) return false;
    const http_parser& p = s.parser;
    if (HTTP_PARSER_ERRNO(&p) != HPE_OK) return false;
    const unsigned flags = p.flags;
    if ((flags & (F_CHUNKED | F_SKIPBODY)) != 0 || (flags & F_CONTENTLENGTH) == 0) return false;
    if (p.content_length == 0 || p.content_length == kNoContentLength) return false;
    const Headers* headers = nullptr;
    if (s.dir == Direction::kRequest) {
      if (s.entry != nullptr) headers = &s.entry->ex.request.headers;
    } else {
      headers = &s.resp.headers;
    }
    return headers != nullptr && FindHeader(*headers, "transfer-encoding") == nullptr;
  }

  // `missing` lost bytes all fall inside the Content-Length body in progress: counts them as
  // body and stays synchronised. O(1) whatever `missing` is. False when not applicable.
  bool SkipInBody(Stream& s, uint64_t missing, uint64_t ts) {
    if (missing == 0 || !InLengthBody(s) || missing > s.parser.content_length) return false;
    uint64_t* size = nullptr;
    bool* truncated = nullptr;
    if (s.dir == Direction::kRequest) {
      size = &s.entry->ex.request.body_size;  // InLengthBody: entry is set
      truncated = &s.entry->ex.request.body_truncated;
    } else {
      size = &s.resp.body_size;
      truncated = &s.resp.body_truncated;
    }
    ++stats.gaps_skipped_in_body;
    s.body_frozen = true;
    // All but one lost byte: off the parser's remaining count (it stays >= 1, so the parser
    // is still in s_body_identity). The last one goes through the parser as a filler byte
    // (counted, not kept) so that the parser itself completes the message when the gap
    // reached the body's end.
    s.parser.content_length -= missing - 1;
    *size += missing - 1;
    *truncated = true;
    static constexpr char kFiller[1] = {'\0'};
    ProcessChunk(s, kFiller, 1, ts, false);
    return true;
  }

  // A gap went past the end of a Content-Length body: the start of the next message of this
  // direction was lost with it.
  void LostMessageStart(Stream& s) {
    if (s.dir == Direction::kRequest) {
      // That request's response will come after those of the requests already waiting.
      DropOverflow();
      Pending& e = pending.emplace_back();
      e.seq = next_seq++;
      e.ex.sequence = e.seq;
      e.lost = true;
      e.request_done = true;
      s.skip_accounted = true;  // the bytes skipped until the next start are that request
      s.lost_head = true;
      return;
    }
    // That response answers the next request waiting for one.
    if (Pending* e = FindBySeq(ClaimPartner(0))) {
      e->ex.incomplete = true;
      e->ex.response.reset();
      SetVerdict(*e, ExchangeEvent::kNoResponse);
    }
  }

  void OnGap(Direction dir, uint64_t missing, uint64_t ts) {
    if (closed) return;
    Stream& s = streams[static_cast<int>(dir)];
    if (!SkipInBody(s, missing, ts)) {
      // Not after an upgrade request: what follows it need not be HTTP.
      const bool lost_start = missing != 0 && InLengthBody(s) &&
                              missing > s.parser.content_length && s.parser.upgrade == 0;
      Lose(s);
      if (lost_start) LostMessageStart(s);
    }
    AfterCall();
  }

  void MarkStreamStart(Direction dir) {
    if (closed) return;
    Stream& s = streams[static_cast<int>(dir)];
    if (s.mode != Mode::kUnsynced) return;
    s.skipped_significant = false;
    s.skip_accounted = false;
    s.lost_head = false;
    Sync(s);
  }

  void Expire(uint64_t complete_before_ns) {
    if (closed) return;
    for (Pending& e : pending) {
      if (e.lost || e.has_verdict || e.timeout_reported || e.response_started || !e.request_done)
        continue;
      const uint64_t done = e.ex.request.complete_ns;
      if (done == 0 || done >= complete_before_ns) continue;
      e.timeout_reported = true;
      HttpExchange waiting;
      waiting.request = e.ex.request;
      waiting.incomplete = e.ex.incomplete;
      waiting.sequence = e.seq;
      ready.push_back(Ready{std::move(waiting), ExchangeEvent::kRequestTimedOut});
    }
    Flush();
  }

  void OnClose(uint64_t ts) {
    if (closed) return;
    // A response delimited by the end of the connection completes now.
    Stream& rs = Resp();
    if (rs.mode == Mode::kSynced && rs.in_message) {
      rs.ts = ts;
      rs.message_done = false;
      http_parser_execute(&rs.parser, &Settings(), nullptr, 0);
      if (rs.message_done) AfterMessage(rs);
    }
    Stream& qs = Req();
    if (qs.entry != nullptr) qs.entry->request_done = true;  // body still in flight
    for (Pending& e : pending) {
      if (e.lost) continue;
      ready.push_back(
          Ready{std::move(e.ex), e.has_verdict ? e.verdict : ExchangeEvent::kNoResponse});
    }
    pending.clear();
    for (Stream& s : streams) {
      ResetParser(s);
      s.mode = Mode::kDead;
      s.tail.clear();
      s.held.clear();
    }
    closed = true;
    resume_requests = false;
    Flush();
  }
};

Http1Connection::Http1Connection(Http1Options options, Sink sink)
    : impl_(std::make_unique<Impl>(options, std::move(sink))) {}

Http1Connection::~Http1Connection() = default;

void Http1Connection::OnData(Direction dir, std::string_view bytes, uint64_t ts_ns) {
  impl_->OnData(dir, bytes, ts_ns);
}

void Http1Connection::OnGap(Direction dir, uint64_t missing, uint64_t ts_ns) {
  impl_->OnGap(dir, missing, ts_ns);
}

void Http1Connection::MarkStreamStart(Direction dir) { impl_->MarkStreamStart(dir); }

void Http1Connection::Expire(uint64_t complete_before_ns) { impl_->Expire(complete_before_ns); }

void Http1Connection::OnClose(uint64_t ts_ns) { impl_->OnClose(ts_ns); }

const Http1Stats& Http1Connection::stats() const { return impl_->stats; }

}  // namespace mat::http
