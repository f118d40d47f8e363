// The interface of one connection's HTTP layer, whatever its protocol (HTTP/1.1: http1.h,
// HTTP/2: http2.h). The caller feeds the two byte streams of one connection in order
// (client->server is kRequest, server->client is kResponse); the sink gets the exchanges.
// A new protocol implements HttpConnection::Engine (its parser of each direction, on its
// own) and leaves the pairing bookkeeping (waiting exchanges, reports, timeouts, memory held)
// to a Stitcher (stitcher.h); the caller holds any protocol as an HttpConnection.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <utility>

#include "http/exchange.h"

namespace mat::http {

enum class Direction : uint8_t { kRequest = 0, kResponse = 1 };

struct Http1Stats;
struct Http2Stats;

class HttpConnection {
 public:
  using Sink = std::function<void(HttpExchange&&, ExchangeEvent)>;

  // What each protocol implements (http1.cpp, http2.cpp); the operations below call it.
  class Engine {
   public:
    virtual ~Engine() = default;
    virtual void OnData(Direction dir, std::string_view bytes, uint64_t ts_ns) = 0;
    virtual void OnGap(Direction dir, uint64_t missing, uint64_t ts_ns) = 0;
    virtual void MarkStreamStart(Direction /*dir*/) {}
    virtual void OnClose(uint64_t ts_ns) = 0;
    virtual void Expire(uint64_t complete_before_ns) = 0;
    virtual void AddStats(Http1Stats* h1, Http2Stats* h2) const = 0;
  };

  virtual ~HttpConnection() = default;
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Bytes of one direction, in order; ts_ns is the wall-clock time they were seen. The sink is
  // called from inside every operation below; it must not throw or call back in.
  void OnData(Direction dir, std::string_view bytes, uint64_t ts_ns) {
    engine_->OnData(dir, bytes, ts_ns);
  }
  // `missing` bytes of this direction were lost (0: an unknown amount).
  void OnGap(Direction dir, uint64_t missing, uint64_t ts_ns) {
    engine_->OnGap(dir, missing, ts_ns);
  }
  // The next bytes of `dir` are the very start of the connection (where the protocol needs to
  // be told; HTTP/2 is told at construction).
  void MarkStreamStart(Direction dir) { engine_->MarkStreamStart(dir); }
  // The connection is gone: every exchange still waiting is reported.
  void OnClose(uint64_t ts_ns) { engine_->OnClose(ts_ns); }
  // Reports, once each, with kRequestTimedOut the complete requests that have waited for a
  // response since before `complete_before_ns`.
  void Expire(uint64_t complete_before_ns) { engine_->Expire(complete_before_ns); }
  // Adds this connection's counters to those of its protocol.
  void AddStats(Http1Stats* h1, Http2Stats* h2) const { engine_->AddStats(h1, h2); }

 protected:
  explicit HttpConnection(std::unique_ptr<Engine> engine) : engine_(std::move(engine)) {}
  std::unique_ptr<Engine> engine_;
};

}  // namespace mat::http
