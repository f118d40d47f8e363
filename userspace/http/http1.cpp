// HTTP/1.1 reassembly on top of H1Parser (http/h1_parser.h), one per direction.
//
// Design notes:
// - Every message ends with a return from H1Parser::Execute; the parser is then reset. This
//   gives one place for per-message follow-up (upgrade, tunnel) and keeps parsing after
//   "Connection: close" / HTTP/1.0 messages.
// - A request enters the pending queue (a Stitcher, stitcher.h, in request order) when its
//   header block is complete; its body is then appended in place. A response is paired with
//   the first pending request without a verdict when its (final) header block is complete.
//   The Stitcher hands an exchange to the sink when it has a verdict, its request is done (a
//   response may finish before its request's body did) and every earlier one was handed.
// - Unsynchronised streams are scanned for a plausible start line at the start of each OnData
//   call's bytes and after each LF; an undecided candidate keeps a bounded tail.
// - `owed_` counts responses that belong to requests we never queued (skipped while
//   unsynchronised, discarded on error/gap, dropped over the limit): that many responses are
//   treated as orphans before pairing resumes, so pairing does not shift by one.
// - Gaps inside a Content-Length body (the tap keeps only the head of a large write) do not
//   cost sync: the parser knows the body bytes still expected while in a Content-Length
//   body, so the lost bytes are taken off them directly (O(1), whatever the size)
//   and one filler byte is fed through the parser, which then completes the message if the
//   gap ended it. From the gap on, body bytes are counted but not stored (`body_frozen`), so
//   the kept body is exactly the bytes seen before the gap and never filler.
//   A gap that goes past the body's end provably lost the start of the next message. For a
//   request, a `lost` placeholder is queued in its FIFO place (not `owed_`, which is spent
//   before the requests already waiting): its response is dropped as an orphan and it is
//   never reported. For a response, the next waiting request gets kNoResponse.

#include "http/http1.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "http/h1_parser.h"
#include "http/stitcher.h"

namespace mat::http {

namespace {

constexpr size_t kMaxStartLine = 8 * 1024;  // longest start line found while unsynchronised
constexpr size_t kMaxMethodLen = 20;
constexpr size_t kMaxHeld = 64 * 1024;  // request bytes held while an upgrade is undecided
constexpr size_t kNpos = static_cast<size_t>(-1);
constexpr std::string_view kHttp09Note = "HTTP/0.9 answer: no status line";

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

void AppendBody(std::string& body, uint64_t& size, bool& truncated, const char* at, size_t len,
                size_t max) {
  size += len;
  if (body.size() < max) body.append(at, std::min(len, max - body.size()));
  truncated = size > body.size();
}

}  // namespace

struct Http1Connection::Impl final : HttpConnection::Engine {
  // kAfterClose: the server closes after a message (its own, or the request that asked for
  // it): what follows in this direction was never read by it, only counted. kCut: over the
  // connection's budget, the request stream is no longer parsed (counted). kRaw09: a response
  // to an HTTP/0.9 request, the body alone until the connection's end.
  enum class Mode : uint8_t { kUnsynced, kSynced, kUpgradeWait, kDead, kAfterClose, kCut, kRaw09 };
  // Where the message in progress is: none; its start line and header block (an HTTP/0.9
  // answer stays here); its body; complete (on_message_complete ran during this Execute: the
  // caller then runs AfterMessage, which resets the parser).
  enum class Phase : uint8_t { kIdle, kHead, kBody, kComplete };
  // What the response in progress is: final, 1xx (not 101: not paired, not reported), or a
  // tunnel's start (101, or a 2xx to CONNECT without framing).
  enum class Kind : uint8_t { kFinal, kInterim, kTunnel };
  // What the stream does after the message just completed: go on, stop (the server closes
  // after it), or hold the requests after it until its response decides (upgrade, CONNECT).
  enum class Then : uint8_t { kGoOn, kClose, kAwaitUpgrade };

  // A request waiting for its response, kept by the Stitcher (in request order). Its
  // `placeholder` is a request whose start a gap took (never reported); its `depends_on` is
  // the seq of a request the parser rejected before it, which the server has not answered
  // yet: if that answer closes the connection (nginx and Go close after a 400), or never
  // comes, the server never read this one, and it is never reported.
  using Pending = Stitcher::Entry;

  struct Stream final : H1Listener {
    Impl* impl = nullptr;
    Direction dir = Direction::kRequest;
    H1Parser parser{H1Parser::Kind::kRequest, 0};
    Mode mode = Mode::kUnsynced;
    uint64_t ts = 0;  // ts of the bytes being parsed

    // Unsynchronised scanning.
    std::string tail;  // an undecided candidate start line (< kMaxStartLine bytes, no LF)
    uint64_t tail_ts = 0;
    bool skipped_significant = false;  // skipped something other than CR/LF since last sync
    bool skip_accounted = false;  // request: skipped bytes belong to an already counted message
    // Request: a gap took the start of a request (queued as a placeholder); the bytes
    // skipped or the malformed message start found next are its remains, not a new request.
    bool lost_head = false;

    // Request stream only: bytes after an upgrade request, until its response decides.
    std::string held;
    uint64_t held_ts = 0;
    bool held_lost = false;
    uint64_t upgrade_seq = 0;

    // Message in progress.
    Phase phase = Phase::kIdle;
    Kind kind = Kind::kFinal;
    bool body_frozen = false;    // a gap was skipped in this body: count bytes, keep none
    HttpRequest req;             // request: until its header block is complete
    Pending* entry = nullptr;    // request: queued, receiving its body
    Then then = Then::kGoOn;     // set when the message completes, for AfterMessage
    uint64_t completed_seq = 0;  // request: the seq of the one just completed (0: not queued)
    HttpResponse resp;           // response: the message being parsed
    uint64_t partner_seq = 0;

    void OnMessageBegin() override { impl->MessageBegin(*this); }
    H1HeadVerdict OnHead(const H1Head& head) override { return impl->HeadersComplete(*this, head); }
    void OnBody(const char* at, size_t n) override { impl->Body(*this, at, n); }
    void OnMessageComplete() override { impl->MessageComplete(*this); }
  };

  Http1Options opt;
  Http1Stats stats;
  Stream streams[2];
  // The requests waiting for responses, in order, and their reports. What they hold is
  // within opt.max_connection_bytes; their bodies also within opt.max_total_bytes of what all
  // connections' waiting exchanges hold.
  Stitcher stitcher;
  uint64_t owed = 0;
  uint64_t rejected_seq = 0;  // the last request the parser rejected, while it waits
  bool resume_requests = false;
  bool go_dead = false;
  bool closed = false;

  Impl(Http1Options o, Sink s)
      : opt(std::move(o)),
        stitcher(Stitcher::OptionsFor(Stitcher::Order::kRequestOrder, opt), std::move(s)) {
    if (opt.max_pending_requests == 0) opt.max_pending_requests = 1;
    for (int i = 0; i < 2; ++i) {
      Stream& st = streams[i];
      st.impl = this;
      st.dir = static_cast<Direction>(i);
      st.parser = H1Parser(i == 0 ? H1Parser::Kind::kRequest : H1Parser::Kind::kResponse,
                           opt.max_header_bytes);
      ResetParser(st);
    }
  }

  Stream& Req() { return streams[0]; }
  Stream& Resp() { return streams[1]; }

  // ---- parser state ----

  static bool InMessage(const Stream& s) {
    return s.phase == Phase::kHead || s.phase == Phase::kBody;
  }

  static void ResetParser(Stream& s) {
    s.parser.Reset();
    s.phase = Phase::kIdle;
    s.kind = Kind::kFinal;
    s.body_frozen = false;
    s.entry = nullptr;
    s.partner_seq = 0;
  }

  // ---- pending queue ----

  void BumpOwed() {
    if (owed < opt.max_pending_requests) ++owed;
  }

  Pending* FindBySeq(uint64_t seq) { return stitcher.Find(seq); }

  // Reports finished exchanges at the head of the queue, in order.
  void Drain() { stitcher.Drain(); }

  // The request a final response starting at `first_byte_ns` answers; 0 for none.
  uint64_t ClaimPartner(uint64_t first_byte_ns) {
    if (owed > 0) {
      --owed;
      return 0;
    }
    for (const auto& [k, e] : stitcher.entries()) {
      if (e.has_verdict) continue;
      // A server cannot answer a request before it was sent: this response belongs to a
      // request we did not see.
      // (Unknown times, 0, are not compared.)
      if (first_byte_ns != 0 && first_byte_ns < e.ex.request.first_byte_ns) return 0;
      return e.seq;
    }
    return 0;
  }

  bool AnyWaiting() const {
    for (const auto& [k, e] : stitcher.entries())
      if (!e.has_verdict) return true;
    return false;
  }

  // The request whose head is in progress (not yet whole), queued by its start line when it
  // names a method and a target, incomplete, done; its seq, or 0.
  uint64_t NamePartialRequest() {
    Stream& s = Req();
    if (s.mode != Mode::kSynced || s.phase != Phase::kHead || s.lost_head) return 0;
    const std::string_view line = s.parser.partial_start_line();
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos || !IsMethodToken(line.substr(0, sp))) return 0;
    std::string_view target = line.substr(sp + 1);
    target = target.substr(0, target.find(' '));
    if (target.empty()) return 0;
    for (char c : target)
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return 0;
    if (!Admit()) return 0;
    ++stats.requests;
    Pending& e = stitcher.Admit();
    e.ex.incomplete = true;
    e.request_done = true;
    e.depends_on = Tentative();
    HttpRequest& r = e.ex.request;
    r.method.assign(line.substr(0, sp));
    r.target.assign(target);
    r.first_byte_ns = s.req.first_byte_ns;
    r.headers_done_ns = s.req.first_byte_ns;
    return e.seq;
  }

  // The entry `seq` will not get a tunnel: a request stream waiting on it may go on.
  void Resolved(uint64_t seq) {
    Stream& r = Req();
    if (r.mode == Mode::kUpgradeWait && r.upgrade_seq == seq) resume_requests = true;
  }

  // The seq of the rejected request a request queued now depends on (0: none).
  uint64_t Tentative() {
    if (rejected_seq == 0) return 0;
    const Pending* x = FindBySeq(rejected_seq);
    if (x == nullptr || x->has_verdict) rejected_seq = 0;
    return rejected_seq;
  }

  void SetVerdict(Pending& e, ExchangeEvent ev) {
    const uint64_t seq = e.seq;
    // Answered without closing (a closing answer discarded them first): the server read on.
    for (auto& [k, w] : stitcher.entries())
      if (w.depends_on != 0 && w.depends_on <= seq) w.depends_on = 0;
    stitcher.Answer(e, ev);  // reports what is ready, in order
    Resolved(seq);
  }

  // Room for one more request of `incoming` header bytes, within max_pending_requests and
  // max_connection_bytes? The bodies kept for the waiting requests are given up first (oldest
  // first, counted in budget_bodies_cut). Never reports a request early: a waiting request
  // has no status until the server answers, and may never be read by it (a response that
  // closes the connection). When there is no room the request stream is cut (see Cut).
  bool Admit(size_t incoming = 0) {
    if (Req().mode == Mode::kCut) return false;
    auto fits = [&] {
      return stitcher.size() < opt.max_pending_requests &&
             stitcher.held() + incoming <= opt.max_connection_bytes;
    };
    if (fits()) return true;
    for (auto& [k, e] : stitcher.entries()) {
      if (stitcher.held() + incoming <= opt.max_connection_bytes) break;
      std::string& body = e.ex.request.body;
      if (body.empty()) continue;
      const size_t b = body.size();
      std::string().swap(body);
      e.ex.request.body_truncated = true;
      stitcher.Release(e, b);
      ++stats.budget_bodies_cut;
    }
    if (fits()) return true;
    Cut(stitcher.size() < opt.max_pending_requests);
    return false;
  }

  // The connection is over its budget: the request stream is no longer parsed (its bytes are
  // counted in cut_bytes). The requests already waiting still pair with their responses; the
  // responses to requests not parsed are orphans.
  void Cut(bool budget) {
    Stream& r = Req();
    if (r.mode == Mode::kCut) return;
    ++stats.connections_cut;
    ++stats.dropped_requests;
    if (budget) ++stats.budget_drops;
    if (r.entry != nullptr) r.entry->request_done = true;
    r.entry = nullptr;
    // Not ResetParser: this may run inside the request parser's OnHead. Its message ends as it
    // would (nothing queued); from then on the stream's bytes are only counted.
    r.tail.clear();
    stats.cut_bytes += r.held.size();
    std::string().swap(r.held);
    r.mode = Mode::kCut;
    Drain();
  }

  // A placeholder in the queue's order for a request whose bytes could not be read (a gap
  // took its head, or the parser rejected it before its start line was known): its response
  // is dropped as an orphan (pairing does not shift) and it is never reported. 0 when over
  // the budget (the stream is then cut).
  uint64_t QueuePlaceholder() {
    if (!Admit()) return 0;
    Pending& e = stitcher.Admit();
    e.placeholder = true;
    e.request_done = true;
    return e.seq;
  }

  // The server closes the connection after its answer to `seq` (0: to a request before every
  // waiting one): the requests after it were never read. They are never reported (counted in
  // requests_after_close), and the request stream's later bytes are only counted.
  void CloseAfter(uint64_t seq) {
    Stream& r = Req();
    for (auto& [k, e] : stitcher.entries()) {
      if (e.has_verdict || (seq != 0 && e.seq <= seq)) continue;
      if (!e.placeholder) ++stats.requests_after_close;
      e.placeholder = true;
      e.has_verdict = true;
      e.verdict = ExchangeEvent::kNoResponse;
      e.request_done = true;
    }
    if (r.entry != nullptr) r.entry->request_done = true;  // its body is not read further
    if (r.mode == Mode::kUpgradeWait) stats.bytes_after_close += r.held.size();
    std::string().swap(r.held);
    ResetParser(r);
    r.tail.clear();
    if (r.mode != Mode::kDead && r.mode != Mode::kCut) r.mode = Mode::kAfterClose;
    if (r.mode == Mode::kAfterClose) resume_requests = false;
    Drain();
  }

  // ---- parser events ----

  void MessageBegin(Stream& s) {
    s.phase = Phase::kHead;
    s.kind = Kind::kFinal;
    s.body_frozen = false;
    s.partner_seq = 0;
    if (s.dir == Direction::kRequest) {
      s.req = HttpRequest{};
      s.req.first_byte_ns = s.ts;
      s.entry = nullptr;
    } else {
      s.resp = HttpResponse{};
      s.resp.first_byte_ns = s.ts;
    }
  }

  static void CopyHeaders(const H1Head& head, Headers& out) {
    out.reserve(head.fields.size());
    for (const auto& [name, value] : head.fields) out.emplace_back(name, value);
  }

  H1HeadVerdict HeadersComplete(Stream& s, const H1Head& head) {
    Impl& im = *this;
    s.phase = Phase::kBody;
    if (s.dir == Direction::kRequest) {
      HttpRequest& r = s.req;
      r.method.assign(head.method);
      r.target.assign(head.target);
      r.version_major = head.version_major;
      r.version_minor = head.version_minor;
      CopyHeaders(head, r.headers);
      r.headers_done_ns = s.ts;
      if (s.lost_head && !IsKnownMethod(head.method)) {
        // The remains of the request whose start a gap took ("ET /x ..." is a token method
        // too): its placeholder is queued already.
        s.lost_head = false;
        return H1HeadVerdict::kBody;
      }
      s.lost_head = false;
      if (!im.Admit(head.counted_bytes)) return H1HeadVerdict::kBody;  // cut: not queued
      ++im.stats.requests;
      if (head.version_major == 0) ++im.stats.http09_requests;
      Pending& e = im.stitcher.Admit();
      e.ex.request = std::move(r);
      e.depends_on = im.Tentative();
      im.stitcher.Charge(e, head.counted_bytes);
      s.entry = &e;
      return H1HeadVerdict::kBody;
    }
    HttpResponse& r = s.resp;
    r.status = head.status;
    r.version_major = head.version_major;
    r.version_minor = head.version_minor;
    if (opt.keep_response_headers) CopyHeaders(head, r.headers);
    r.headers_done_ns = s.ts;
    if (r.status >= 100 && r.status < 200 && r.status != 101) {
      s.kind = Kind::kInterim;
      return H1HeadVerdict::kNoBody;
    }
    const bool none_owed = im.owed == 0;
    s.partner_seq = im.ClaimPartner(r.first_byte_ns);
    if (s.parser.closes() && r.status != 101) {
      // Answered and closed on before its head was whole (nginx's 400 to a head over its
      // buffers): the request the server refused is the one in progress, named by its start
      // line (nothing after it is read: CloseAfter).
      if (s.partner_seq == 0 && none_owed && !im.AnyWaiting())
        s.partner_seq = im.NamePartialRequest();
      im.CloseAfter(s.partner_seq);
    }
    bool no_body = r.status == 101 || r.status == 204 || r.status == 304;
    if (r.status == 101) s.kind = Kind::kTunnel;
    if (Pending* e = im.FindBySeq(s.partner_seq)) {
      im.stitcher.ResponseStarted(*e, r);
      const std::string& m = e->ex.request.method;
      if (m == "HEAD") no_body = true;
      // A tunnel's 2xx has neither Content-Length nor Transfer-Encoding (RFC 9110 9.3.6). Go's
      // net/http answers a CONNECT its handler did not hijack as any request, framed, and goes
      // on reading HTTP/1.1 on the connection: what follows is audited.
      if (m == "CONNECT" && r.status >= 200 && r.status < 300 && !s.parser.framed()) {
        no_body = true;
        s.kind = Kind::kTunnel;
      }
    }
    return no_body ? H1HeadVerdict::kNoBody : H1HeadVerdict::kBody;
  }

  void Body(Stream& s, const char* at, size_t len) {
    // After a skipped gap, bytes are only counted: the kept body must not have a hole.
    size_t max = s.body_frozen ? 0 : opt.max_body_bytes;
    if (s.dir == Direction::kRequest) {
      if (s.entry == nullptr) return;
      HttpRequest& r = s.entry->ex.request;
      // Within the connection's budget too: what the waiting requests hold; and within what all
      // connections' waiting requests hold together.
      const size_t left = stitcher.BodyRoom();
      if (max > r.body.size() + left) {
        max = r.body.size() + left;
        if (r.body.size() + len > max) ++stats.budget_bodies_cut;
      }
      const size_t before = r.body.size();
      AppendBody(r.body, r.body_size, r.body_truncated, at, len, max);
      stitcher.Charge(*s.entry, r.body.size() - before);
    } else {
      HttpResponse& r = s.resp;
      AppendBody(r.body, r.body_size, r.body_truncated, at, len, max);
    }
  }

  void MessageComplete(Stream& s) {
    Impl& im = *this;
    s.then = s.parser.closes() && s.kind == Kind::kFinal ? Then::kClose : Then::kGoOn;
    if (s.dir == Direction::kRequest) {
      s.completed_seq = 0;
      if (Pending* e = s.entry) {
        im.stitcher.RequestComplete(*e, s.ts);
        s.completed_seq = e->seq;
        // Upgrade / CONNECT request: what follows is HTTP only if the server declines.
        if (s.then == Then::kGoOn && s.parser.upgrade() && !e->has_verdict)
          s.then = Then::kAwaitUpgrade;
        s.entry = nullptr;
        im.Drain();
      }
    } else if (s.kind == Kind::kInterim) {
      ++im.stats.interim_responses;
    } else {
      ++im.stats.responses;
      s.resp.complete_ns = s.ts;
      const uint64_t seq = s.partner_seq;
      Pending* e = im.FindBySeq(seq);
      if (e != nullptr && !e->placeholder) {
        e->ex.response = std::move(s.resp);
        im.SetVerdict(*e, ExchangeEvent::kResponseComplete);
      } else {
        ++im.stats.orphan_responses;
        if (e != nullptr) im.SetVerdict(*e, ExchangeEvent::kNoResponse);  // drops the placeholder
      }
      if (s.kind == Kind::kTunnel) im.go_dead = true;
    }
    s.phase = Phase::kComplete;  // Execute returns; the caller resets the parser
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
  // A malformed request start counts as a message even when the parser rejected its first
  // byte (an unknown method): the server may well answer it.
  // A response cut by a gap after its header block was complete still reports its status:
  // kResponseComplete with what was seen, marked incomplete (complete_ns stays 0).
  void Abandon(Stream& s, bool parse_error) {
    uint64_t hold_seq = 0;
    if (s.dir == Direction::kRequest) {
      if (Pending* e = s.entry) {
        e->ex.incomplete = true;
        e->request_done = true;
        if (parse_error) hold_seq = e->seq;
        s.entry = nullptr;
        Drain();
        s.skip_accounted = true;
      } else if (InMessage(s) || parse_error) {
        // Its response will still come (else: already queued as a placeholder).
        if (!s.lost_head) {
          const uint64_t seq = QueuePlaceholder();
          if (parse_error) hold_seq = seq;
        }
        s.lost_head = false;
        s.skip_accounted = true;
      } else {
        s.skip_accounted = false;
      }
    } else if (s.phase == Phase::kBody && s.kind != Kind::kInterim && !parse_error) {
      if (Pending* e = FindBySeq(s.partner_seq)) {
        e->ex.incomplete = true;
        e->ex.response = std::move(s.resp);
        SetVerdict(*e, ExchangeEvent::kResponseComplete);
      }
    } else if (InMessage(s) && s.kind != Kind::kInterim) {
      const uint64_t seq =
          s.phase == Phase::kBody ? s.partner_seq : ClaimPartner(s.resp.first_byte_ns);
      if (Pending* e = FindBySeq(seq)) {
        e->ex.incomplete = true;
        e->ex.response.reset();
        SetVerdict(*e, ExchangeEvent::kNoResponse);
      }
    }
    ResetParser(s);
    s.tail.clear();
    if (s.mode == Mode::kCut || s.mode == Mode::kAfterClose) return;
    s.mode = Mode::kUnsynced;
    // A request the server could not parse either: it answers it (nginx and Go: 400) and most
    // often closes. The requests found after it depend on that answer (see Pending::depends_on).
    const Pending* e = FindBySeq(hold_seq);
    if (e != nullptr && !e->has_verdict) rejected_seq = hold_seq;
  }

  // A request whose header block is over max_header_bytes is not parsed, but it is not lost
  // either: when its start line names a known method and a target, it is queued, incomplete,
  // with those only (its response pairs with it as usual), and counted in headers_too_large.
  void NameTooLargeRequest(Stream& s) {
    if (s.dir != Direction::kRequest || s.entry != nullptr || s.lost_head) return;
    ++stats.headers_too_large;
    const std::string_view line = s.parser.too_large_start_line();
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos || !IsMethodToken(line.substr(0, sp))) return;
    const size_t t = line.find_first_not_of(' ', sp);
    if (t == std::string_view::npos) return;
    std::string_view target = line.substr(t);
    target = target.substr(0, target.find(' '));
    for (char c : target)
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return;
    if (!Admit()) return;
    ++stats.requests;
    Pending& e = stitcher.Admit();
    e.ex.incomplete = true;
    e.depends_on = Tentative();
    HttpRequest& r = e.ex.request;
    r.method.assign(line.substr(0, sp));
    r.target.assign(target);
    r.first_byte_ns = s.req.first_byte_ns != 0 ? s.req.first_byte_ns : s.ts;
    r.headers_done_ns = s.ts;
    s.entry = &e;  // Abandon ends it: request done, incomplete
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

  // At a response's start: when the request it answers is an HTTP/0.9 one, the answer is the
  // body alone, until the connection's end (nginx); unless it starts with a status line (Go
  // answers a 0.9 line with "HTTP/1.1 400 Bad Request", which is then its status).
  bool StartRaw09(Stream& s, const char* p, size_t n) {
    if (owed > 0 || MatchStatusLine(p, n) != Match::kNo) return false;
    for (const auto& [k, e] : stitcher.entries()) {
      if (e.has_verdict) continue;
      if (e.ex.request.version_major != 0) return false;
      s.mode = Mode::kRaw09;
      s.phase = Phase::kHead;
      s.partner_seq = e.seq;
      s.resp = HttpResponse{};
      s.resp.first_byte_ns = s.ts;
      s.resp.version_major = 0;
      s.resp.version_minor = 9;
      return true;
    }
    return false;
  }

  // After a message completed (Execute returned at its end).
  void AfterMessage(Stream& s) {
    const Then then = s.then;
    s.then = Then::kGoOn;
    ResetParser(s);
    if (go_dead) {
      GoDead();
      return;
    }
    if (then == Then::kClose) {
      // The server closes after this message: a request asking for it is the last one it
      // reads; a response saying so is the last one it sends.
      if (s.dir == Direction::kRequest) {
        if (s.mode == Mode::kSynced) s.mode = Mode::kAfterClose;
      } else if (s.mode == Mode::kSynced) {
        s.mode = Mode::kAfterClose;
      }
      return;
    }
    if (then == Then::kAwaitUpgrade) {
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
        case Mode::kAfterClose:
          stats.bytes_after_close += n - pos;
          return;
        case Mode::kCut:
          stats.cut_bytes += n - pos;
          return;
        case Mode::kRaw09:
          s.ts = ts;
          Body(s, p + pos, n - pos);
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
          if (s.dir == Direction::kResponse && !InMessage(s) && StartRaw09(s, p + pos, n - pos))
            break;
          const size_t used = s.parser.Execute(s, p + pos, n - pos);
          pos += std::min(used, n - pos);
          if (s.phase == Phase::kComplete) {
            AfterMessage(s);
          } else if (s.parser.failed() || pos < n) {
            ++stats.parse_errors;
            if (s.parser.head_too_large()) NameTooLargeRequest(s);
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
      case Mode::kAfterClose:
      case Mode::kCut:
      case Mode::kRaw09:
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

  void Flush() { stitcher.Flush(); }

  void AfterCall() {
    for (int guard = 0; resume_requests && guard < 64; ++guard) {
      resume_requests = false;
      Resume();
    }
    resume_requests = false;
    Flush();
  }

  // ---- public operations ----

  void OnData(Direction dir, std::string_view bytes, uint64_t ts) override {
    if (closed) return;
    FeedChunk(streams[static_cast<int>(dir)], bytes.data(), bytes.size(), ts);
    AfterCall();
  }

  // ---- gaps ----

  // Is the stream inside a body delimited by Content-Length, so that the parser's remaining()
  // is the number of body bytes still expected?
  bool InLengthBody(const Stream& s) const {
    if (s.mode != Mode::kSynced || s.phase != Phase::kBody || s.kind == Kind::kInterim)
      return false;
    if (s.dir == Direction::kRequest && s.entry == nullptr) return false;
    return s.parser.in_length_body() && s.parser.remaining() > 0;
  }

  // `missing` lost bytes all fall inside the Content-Length body in progress: counts them as
  // body and stays synchronised. O(1) whatever `missing` is. False when not applicable.
  bool SkipInBody(Stream& s, uint64_t missing, uint64_t ts) {
    if (missing == 0 || !InLengthBody(s) || missing > s.parser.remaining()) return false;
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
    // is still in the Content-Length body). The last one goes through the parser as a filler byte
    // (counted, not kept) so that the parser itself completes the message when the gap
    // reached the body's end.
    s.parser.SkipBodyBytes(missing - 1);
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
      if (QueuePlaceholder() == 0) return;
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

  void OnGap(Direction dir, uint64_t missing, uint64_t ts) override {
    if (closed) return;
    Stream& s = streams[static_cast<int>(dir)];
    if (!SkipInBody(s, missing, ts)) {
      // Not after an upgrade request: what follows it need not be HTTP.
      const bool lost_start =
          missing != 0 && InLengthBody(s) && missing > s.parser.remaining() && !s.parser.upgrade();
      Lose(s);
      if (lost_start) LostMessageStart(s);
    }
    AfterCall();
  }

  void MarkStreamStart(Direction dir) override {
    if (closed) return;
    Stream& s = streams[static_cast<int>(dir)];
    if (s.mode != Mode::kUnsynced) return;
    s.skipped_significant = false;
    s.skip_accounted = false;
    s.lost_head = false;
    Sync(s);
  }

  void AddStats(Http1Stats* h1, Http2Stats* /*h2*/) const override { *h1 += stats; }

  void Expire(uint64_t complete_before_ns) override {
    if (closed) return;
    stitcher.Expire(complete_before_ns);
    Flush();
  }

  void OnClose(uint64_t ts) override {
    if (closed) return;
    // A response delimited by the end of the connection completes now.
    Stream& rs = Resp();
    if (rs.mode == Mode::kRaw09) {
      // The body of an HTTP/0.9 answer, whole: the request is reported as answered, with no
      // status (there is none on the wire) and a note saying so.
      if (Pending* e = FindBySeq(rs.partner_seq)) {
        e->ex.note = kHttp09Note;
        e->has_verdict = true;
        e->verdict = ExchangeEvent::kNoResponse;
      }
      ++stats.responses;
    }
    if (rs.mode == Mode::kSynced && InMessage(rs)) {
      rs.ts = ts;
      rs.parser.Finish(rs);
      if (rs.phase == Phase::kComplete) AfterMessage(rs);
    }
    Stream& qs = Req();
    if (qs.entry != nullptr) qs.entry->request_done = true;  // body still in flight
    // Those whose rejected predecessor was never answered were never read: not reported.
    stats.requests_after_close += stitcher.Close();
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
    : HttpConnection(std::make_unique<Impl>(std::move(options), std::move(sink))) {}

const Http1Stats& Http1Connection::stats() const {
  return static_cast<const Impl&>(*engine_).stats;
}

}  // namespace mat::http
