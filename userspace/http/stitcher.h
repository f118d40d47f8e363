// The pairing half of a connection's HTTP layer, the same for every protocol: the exchanges
// waiting for their answers and everything about reporting them. The protocol's parser
// (http1.cpp, http2.cpp) decides which response answers which request and when an exchange
// ends; the Stitcher keeps the exchanges, queues the reports in the protocol's order, hands
// them to the sink once per public call of the connection, reports timeouts once each, and
// counts the bytes the waiting exchanges hold, per connection and over all connections.
//
// Reports (see ExchangeEvent): kRequestReceived (report_received, RequestComplete),
// kResponseStarted (report_started, ResponseStarted), kRequestTimedOut (Expire) are copies;
// the exchange is reported again when it ends: Answer (kResponseComplete or kNoResponse),
// Close (everything left, in order). An exchange is reported at most once with a final event.
//
// Orders:
// - kRequestOrder (HTTP/1.1: responses come in request order): an exchange with its answer is
//   reported when its request is done and every earlier one has been reported (head of line).
// - kAsAnswered (HTTP/2: streams are independent): an exchange is reported when answered.
//
// Marks an exchange may carry (set by the protocol):
// - placeholder: keeps a place in the order for a request that could not be read; never
//   reported, its answer is dropped;
// - depends_on (nonzero): the server may never have read this request; it is reported only
//   with a response (no kRequestReceived, no kRequestTimedOut, dropped at Close without one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string_view>
#include <vector>

#include "http/connection.h"
#include "http/exchange.h"
#include "util/defaults.h"

namespace mat::http {

class Stitcher {
 public:
  using Sink = HttpConnection::Sink;
  using ReportStarted = std::function<bool(const HttpRequest&)>;

  enum class Order : uint8_t { kRequestOrder, kAsAnswered };

  struct Options {
    Order order = Order::kRequestOrder;
    // The bytes the waiting exchanges of this connection may hold (see Room).
    size_t max_connection_bytes = defaults::kMaxConnectionBytes;
    // The bytes the waiting exchanges of every connection (both protocols) may hold together;
    // BodyRoom keeps bodies within it.
    size_t max_total_bytes = defaults::kMaxTotalBytes;
    // Both as in Http1Options; report_started is the owner's (it outlives the Stitcher).
    const ReportStarted* report_started = nullptr;
    bool report_received = false;
  };
  // The options of a protocol's connection (Http1Options, Http2Options), which outlive it.
  template <class ProtocolOptions>
  static Options OptionsFor(Order order, const ProtocolOptions& o) {
    return Options{order, o.max_connection_bytes, o.max_total_bytes, &o.report_started,
                   o.report_received};
  }

  // One exchange waiting for its answer.
  struct Entry {
    uint64_t key = 0;  // HTTP/1.1: its sequence; HTTP/2: its stream id
    uint64_t seq = 0;  // the request's number on the connection (ex.sequence)
    HttpExchange ex;
    bool request_done = false;      // complete or abandoned: no more request bytes go into it
    bool response_started = false;  // the final response's head arrived: not waiting any more
    bool has_verdict = false;       // answered (kRequestOrder: waits for those before it)
    ExchangeEvent verdict = ExchangeEvent::kNoResponse;
    bool timeout_reported = false;
    bool placeholder = false;  // see the top of the file
    uint64_t depends_on = 0;   // see the top of the file
    // A gap was skipped in the request's / response's body: its bytes are counted, not kept.
    bool req_frozen = false;
    bool resp_frozen = false;
    bool client_reset = false;  // HTTP/2: the client reset the stream before the response
    size_t held = 0;            // header and body bytes kept (Charge)
  };
  using Map = std::map<uint64_t, Entry>;  // by key: the order exchanges were admitted
  using Iter = Map::iterator;

  Stitcher(Options options, Sink sink);
  ~Stitcher();
  Stitcher(const Stitcher&) = delete;
  Stitcher& operator=(const Stitcher&) = delete;

  // A new exchange, after all others; `key` 0: its sequence. Keys must grow.
  Entry& Admit(uint64_t key = 0);
  Entry* Find(uint64_t key) {
    if (key == 0) return nullptr;
    auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : &it->second;
  }
  Map& entries() { return entries_; }
  const Map& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }

  // The request is complete at `ts`: reports kRequestReceived when asked to. Does not Drain.
  void RequestComplete(Entry& e, uint64_t ts);
  // The final response's head arrived: reports kResponseStarted (with `head`) when asked to.
  void ResponseStarted(Entry& e, const HttpResponse& head);
  // `e` has its answer: kResponseComplete (ex.response set) or kNoResponse. Reported now
  // (kAsAnswered) or in order (kRequestOrder). `e` may be gone after this.
  void Answer(Entry& e, ExchangeEvent ev);
  // No response: reported kNoResponse, with `note` saying why (empty: nothing to say).
  void NoResponse(Entry& e, std::string_view note) {
    e.ex.response.reset();
    e.ex.note = note;
    Answer(e, ExchangeEvent::kNoResponse);
  }
  // Forgets `e` unreported (the caller counts it).
  void Drop(Entry& e);
  // kRequestOrder: reports the answered exchanges at the head whose requests are done.
  void Drain();
  // Reports, once each, with kRequestTimedOut the exchanges whose requests are complete
  // (complete_ns) before `complete_before_ns` and still wait for a response.
  void Expire(uint64_t complete_before_ns);
  // The connection is gone: reports every exchange left, in order: with its answer, its
  // response (kResponseComplete) or none (kNoResponse, the note `note_for` gives when set).
  // Placeholders and unanswered exchanges with depends_on are dropped: returns how many of
  // the latter.
  using NoteFor = std::function<std::string_view(const Entry&)>;
  size_t Close(const NoteFor& note_for = nullptr);
  // Hands the queued reports to the sink, in order.
  void Flush();

  // Bytes held: `n` more (or fewer) kept for `e`.
  void Charge(Entry& e, size_t n) {
    e.held += n;
    AddHeld(n);
  }
  void Release(Entry& e, size_t n) {
    e.held -= n;
    SubHeld(n);
  }
  size_t held() const { return held_; }
  // What this connection may still hold.
  size_t ConnectionRoom() const {
    return opt_.max_connection_bytes > held_ ? opt_.max_connection_bytes - held_ : 0;
  }
  // What a body may still keep: within this connection's room and the total's.
  size_t BodyRoom() const;
  // What the waiting exchanges of every connection hold.
  static uint64_t TotalHeld();

 private:
  struct Ready {
    HttpExchange ex;
    ExchangeEvent event;
  };
  static std::vector<Ready>& SharedReady(int which);
  static HttpExchange Copy(const Entry& e, bool with_response);
  void AddHeld(size_t n);
  void SubHeld(size_t n);
  void Erase(Iter it);
  void Queue(HttpExchange&& ex, ExchangeEvent ev) { ready_.push_back(Ready{std::move(ex), ev}); }

  Options opt_;
  Sink sink_;
  Map entries_;
  uint64_t next_seq_ = 1;
  size_t held_ = 0;
  // Reports ready for the sink. Filled and emptied within one call of the connection (each
  // ends with Flush), and the sink never calls back in, so all connections of a thread share
  // these two vectors instead of each keeping their capacity while idle.
  std::vector<Ready>& ready_ = SharedReady(0);
  std::vector<Ready>& batch_ = SharedReady(1);
};

}  // namespace mat::http
