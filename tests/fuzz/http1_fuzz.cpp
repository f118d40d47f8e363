// libFuzzer target: Http1Connection fed with request/response chunks, gaps, expiries and a
// close taken from the input (format: fuzz_input.h, with the HTTP/1.1 readings below). Checks
// the reports' invariants, the memory the connection holds, and that H1Parser finds the same
// messages whatever the split; aborts on a violation; ASan/UBSan check the rest. See
// CMakeLists.txt here for how to build and run it.
//
// HTTP/1.1 readings of fuzz_input.h:
//   config bit 1 (kConfigPreface): unused
//   config bits 3-5 and 6-7: when bits 6 and 7 are both set, amplification a = bits 3-5: every
//     data record is fed 4^a times in a row (at most kMaxFed bytes in all), so that a small
//     input can push megabytes through one connection (and its memory be checked)
//   gap record: `missing` is the next byte shifted left by (c & 0x1f) (huge gaps are cheap)
//   (c >> 5) & 3 == 3, (c & 0x1f) == 1: OnClose; the records after it are still fed, and
//     nothing may be reported for them
//   (c >> 5) & 3 == 3, (c & 0x1f) == 2: MarkStreamStart(dir)

#include <sanitizer/allocator_interface.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz_input.h"
#include "http/h1_parser.h"
#include "http/http1.h"

namespace {

using mat::http::Direction;
using mat::http::ExchangeEvent;
using mat::http::H1Head;
using mat::http::H1HeadVerdict;
using mat::http::H1Listener;
using mat::http::H1Parser;
using mat::http::Http1Connection;
using mat::http::Http1Options;
using mat::http::HttpExchange;

// Aborts, naming the line of the invariant that failed (the checks are inlined: a stack
// trace does not show which).
void CheckAt(bool ok, int line) {
  if (ok) return;
  std::fprintf(stderr, "http1_fuzz: the check at line %d failed\n", line);
  std::abort();
}
#define Check(ok) CheckAt((ok), __LINE__)

constexpr size_t kMaxFed = 4 << 20;         // bytes fed to one connection at most (amplified)
constexpr size_t kMaxSeq = 1 << 20;         // sequences tracked (preallocated, see Checker)
constexpr size_t kMaxSplitCheck = 1 << 20;  // bytes of a direction kept for the split check

enum : uint8_t { kUnseen = 0, kOpen = 1, kFinal = 2 };

struct Checker {
  Http1Options opt;
  // Per sequence: kUnseen, kOpen (non-final reports only) or kFinal. Allocated before the
  // memory baseline is taken, so that it does not count as the connection's.
  std::vector<uint8_t> state = std::vector<uint8_t>(kMaxSeq, kUnseen);
  uint64_t finals = 0;
  uint64_t last_final = 0;
  bool closed = false;

  void OnReport(const HttpExchange& ex, ExchangeEvent ev) {
    Check(!closed);  // nothing after OnClose returned
    const uint64_t seq = ex.sequence;
    Check(seq > 0);
    const auto& q = ex.request;
    // Only requests whose head was parsed are reported: a method (a token) and a target.
    Check(mat::http::IsMethodToken(q.method));
    Check(!q.target.empty());
    for (char ch : q.target) {
      const auto c = static_cast<unsigned char>(ch);
      // A request line the parser rejected (an incomplete report) names its target as nginx
      // logs it, split at SP and HTAB: control bytes may stay in it (h1_uri_raw_nul).
      if (ex.incomplete) {
        Check(c != ' ' && c != '\t' && c != '\r' && c != '\n');
      } else {
        Check(c > 0x20 && c != 0x7f);
      }
    }
    // A request's minor version has up to three digits, as nginx reads it (HTTP/1.10).
    Check(q.version_major >= 0 && q.version_major <= 9 && q.version_minor >= 0 &&
          q.version_minor <= 999);
    Check(q.body.size() <= opt.max_body_bytes);
    Check(q.body.size() <= q.body_size);
    Check(q.body_truncated == (q.body_size > q.body.size()));
    // The head's counted size (target, names, values, 4 bytes a field) is within the limit;
    // a value joined from obs-fold lines has one space a fold more than was counted.
    size_t head = q.target.size();
    size_t joins = 0;
    for (const auto& [k, v] : q.headers) {
      Check(!k.empty());
      head += k.size() + v.size() + 4;
      for (char ch : v) joins += ch == ' ';
    }
    // A request over the limit is reported by its start line only, incomplete.
    Check(head <= opt.max_header_bytes + joins ||
          (ex.incomplete && q.headers.empty() && q.target.size() <= H1Parser::kMaxTooLargeLine));
    Check(q.first_byte_ns <= q.headers_done_ns);
    Check(q.complete_ns == 0 || q.headers_done_ns <= q.complete_ns);

    const bool final = ev == ExchangeEvent::kResponseComplete || ev == ExchangeEvent::kNoResponse;
    if (seq < kMaxSeq) {
      Check(state[seq] != kFinal);  // nothing after the final report, and one final report
      state[seq] = final ? kFinal : kOpen;
    }
    if (final) {
      ++finals;
      Check(seq > last_final);  // final reports come in request order
      last_final = seq;
    }
    if (ev == ExchangeEvent::kRequestReceived) Check(q.complete_ns != 0);
    const bool with_response =
        ev == ExchangeEvent::kResponseComplete || ev == ExchangeEvent::kResponseStarted;
    Check(ex.response.has_value() == with_response);
    if (ex.response) {
      const auto& r = *ex.response;
      // A final status (no interim 1xx), as the server sent it.
      Check(r.status >= 0 && r.status <= 999);
      Check(r.status < 100 || r.status >= 200 || r.status == 101);
      Check(r.body.size() <= opt.max_body_bytes);
      Check(r.body.size() <= r.body_size);
      Check(r.body_truncated == (r.body_size > r.body.size()));
      Check(r.first_byte_ns <= r.headers_done_ns);
      if (ev == ExchangeEvent::kResponseStarted) Check(r.body.empty() && r.complete_ns == 0);
      // A response cut before its end is only reported as part of an incomplete exchange.
      if (ev == ExchangeEvent::kResponseComplete && r.complete_ns == 0) Check(ex.incomplete);
    }
  }
};

// ---- H1Parser alone: the same messages whatever the split ----

struct Msg {
  std::string start;  // method, target, status, version
  std::vector<std::pair<std::string, std::string>> fields;
  uint64_t body_size = 0;
  uint64_t body_hash = 0;
  size_t end = 0;
  bool operator==(const Msg&) const = default;
};

class SplitDriver final : public H1Listener {
 public:
  SplitDriver(H1Parser::Kind kind, size_t max_head) : parser_(kind, max_head) {}
  void Feed(const char* p, size_t n) {
    size_t pos = 0;
    while (pos < n && !failed_) {
      done_ = false;
      const size_t used = parser_.Execute(*this, p + pos, n - pos);
      Check(used <= n - pos);
      pos += used;
      if (done_) {
        cur_.end = base_ + pos;
        msgs_.push_back(cur_);
        parser_.Reset();
      } else if (parser_.failed() || pos < n) {
        Check(parser_.failed());
        failed_ = true;
      }
    }
    base_ += n;
  }
  void Finish() {
    if (failed_ || !in_message_) return;
    done_ = false;
    parser_.Finish(*this);
    if (done_) {
      cur_.end = base_;
      msgs_.push_back(cur_);
    }
  }
  bool operator==(const SplitDriver& o) const {
    return msgs_ == o.msgs_ && failed_ == o.failed_ && in_message_ == o.in_message_;
  }

 private:
  void OnMessageBegin() override {
    Check(!in_message_);
    in_message_ = true;
    cur_ = Msg{};
  }
  H1HeadVerdict OnHead(const H1Head& h) override {
    Check(in_message_);
    cur_.start = std::string(h.method) + " " + std::string(h.target) + " " +
                 std::to_string(h.status) + " " + std::to_string(h.version_major) + "." +
                 std::to_string(h.version_minor);
    for (const auto& [k, v] : h.fields) cur_.fields.emplace_back(k, v);
    const bool no_body = h.status != 0 && (h.status < 200 || h.status == 204 || h.status == 304);
    return no_body ? H1HeadVerdict::kNoBody : H1HeadVerdict::kBody;
  }
  void OnBody(const char* at, size_t n) override {
    Check(in_message_ && n > 0);
    cur_.body_size += n;
    for (size_t i = 0; i < n; ++i)
      cur_.body_hash = (cur_.body_hash ^ static_cast<unsigned char>(at[i])) * 1099511628211u;
  }
  void OnMessageComplete() override {
    Check(in_message_);
    in_message_ = false;
    done_ = true;
  }

  H1Parser parser_;
  std::vector<Msg> msgs_;
  Msg cur_;
  bool in_message_ = false;
  bool done_ = false;
  bool failed_ = false;
  size_t base_ = 0;
};

// The bytes of one direction up to its first gap (the parser alone cannot see one), and where
// the calls' pieces ended.
struct DirectionLog {
  std::string bytes;
  std::vector<size_t> cuts;
  bool frozen = false;  // a gap came, or kMaxSplitCheck was reached
  void Add(std::string_view b) {
    if (frozen) return;
    if (bytes.size() + b.size() > kMaxSplitCheck) {
      frozen = true;
      return;
    }
    bytes.append(b);
    cuts.push_back(bytes.size());
  }
};

void CheckSplitInvariance(H1Parser::Kind kind, const DirectionLog& log, size_t max_head) {
  if (log.bytes.empty()) return;
  SplitDriver whole(kind, max_head), split(kind, max_head);
  whole.Feed(log.bytes.data(), log.bytes.size());
  whole.Finish();
  size_t prev = 0;
  for (size_t cut : log.cuts) {
    split.Feed(log.bytes.data() + prev, cut - prev);
    prev = cut;
  }
  split.Finish();
  Check(whole == split);
}

// The memory the connection may hold, whatever it was fed: the requests it may keep waiting
// (each with at most max_header_bytes of counted head, stored as fields of 64 bytes and their
// strings, and two bodies), each direction's buffers (a head of the limit plus 8 KiB of slack,
// its fields, a chunk line, the unsynchronised tail, the held upgrade bytes), and the report
// vectors, which keep the capacity of the largest batch one call produced.
size_t MemoryBound(const Http1Options& o, size_t largest_call) {
  const size_t head_cap = o.max_header_bytes + 8 * 1024 + 1;
  const size_t per_request = 2048 + 16 * o.max_header_bytes + 2 * o.max_body_bytes;
  const size_t per_direction = 64 * head_cap + 4096 * 2 + 8192 * 2;
  return (1 << 20) + (o.max_pending_requests + 2) * per_request + 2 * per_direction +
         64 * 1024 * 2 + 256 * largest_call;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t config = data[0];
  ++data;
  --size;
  const unsigned amplify = (config & 0xc0) == 0xc0 ? (config >> 3) & 7 : 0;
  const size_t repeats = size_t{1} << (2 * amplify);

  Checker checker;
  if ((config & mat::fuzz::kConfigSmall) != 0) {
    checker.opt.max_body_bytes = 16;
    checker.opt.max_header_bytes = 512;
    checker.opt.max_pending_requests = 4;
    checker.opt.max_connection_bytes = 1024;
    checker.opt.report_started = [](const mat::http::HttpRequest&) { return true; };
    checker.opt.report_received = true;
  }
  DirectionLog logs[2];
  const size_t baseline = __sanitizer_get_current_allocated_bytes();
  size_t largest_call = 0;
  uint64_t now = 1;
  size_t fed = 0;
  {
    Http1Connection conn(
        checker.opt, [&checker](HttpExchange&& ex, ExchangeEvent ev) { checker.OnReport(ex, ev); });
    if ((config & mat::fuzz::kConfigAtStart) != 0) {
      conn.MarkStreamStart(Direction::kRequest);
      conn.MarkStreamStart(Direction::kResponse);
    }
    auto check_memory = [&] {
      const size_t now_bytes = __sanitizer_get_current_allocated_bytes();
      const size_t held = now_bytes > baseline ? now_bytes - baseline : 0;
      // The logs of the split check are ours, not the connection's.
      const size_t ours = logs[0].bytes.capacity() + logs[1].bytes.capacity() +
                          (logs[0].cuts.capacity() + logs[1].cuts.capacity()) * sizeof(size_t);
      Check(held <= MemoryBound(checker.opt, largest_call) + ours);
    };

    size_t i = 0;
    while (i < size) {
      const uint8_t c = data[i++];
      ++now;
      const Direction dir =
          (c & mat::fuzz::kControlResponse) != 0 ? Direction::kResponse : Direction::kRequest;
      DirectionLog& log = logs[static_cast<int>(dir)];
      size_t len = 0;
      switch ((c >> 5) & 3) {
        case 0:
          len = (c & 0x1fu) + 1;
          break;
        case 1:
          if (i >= size) goto done;
          len = ((size_t{c & 0x1fu} << 8) | data[i++]) + 1;
          break;
        case 2: {
          if (i >= size) goto done;
          const uint64_t missing = uint64_t{data[i++]} << (c & 0x1f);
          conn.OnGap(dir, missing, now);
          log.frozen = true;
          continue;
        }
        default:
          switch (c & 0x1f) {
            case 0:
              conn.Expire(now);
              continue;
            case 1:
              conn.OnClose(now);
              checker.closed = true;
              continue;
            case 2:
              conn.MarkStreamStart(dir);
              continue;
            default:
              len = size - i;
              break;
          }
          break;
      }
      if (len > size - i) len = size - i;
      const std::string_view bytes(reinterpret_cast<const char*>(data + i), len);
      i += len;
      largest_call = len > largest_call ? len : largest_call;
      for (size_t r = 0; r < repeats && fed < kMaxFed; ++r) {
        conn.OnData(dir, bytes, now);
        log.Add(bytes);
        fed += len;
        check_memory();
      }
    }
  done:
    if (!checker.closed) {
      conn.OnClose(now + 1);
      checker.closed = true;
    }
    // Every request whose head was parsed was reported once, with a final event, but those
    // the server never read (after a close, or after a rejected request never answered).
    Check(checker.finals == conn.stats().requests - conn.stats().requests_after_close);
    check_memory();
    // Nothing after the close.
    conn.OnData(Direction::kRequest, "GET / HTTP/1.1\r\n\r\n", now + 2);
    conn.OnData(Direction::kResponse, "HTTP/1.1 200 OK\r\n\r\n", now + 2);
    conn.OnGap(Direction::kResponse, 0, now + 2);
    conn.Expire(now + 3);
    conn.OnClose(now + 3);
  }
  // H1Parser alone, from each stream's first byte: the bytes in one piece give what they gave
  // in the calls' pieces (whatever Http1Connection made of them).
  const size_t max_head = checker.opt.max_header_bytes;
  CheckSplitInvariance(H1Parser::Kind::kRequest, logs[0], max_head);
  CheckSplitInvariance(H1Parser::Kind::kResponse, logs[1], max_head);
  return 0;
}
