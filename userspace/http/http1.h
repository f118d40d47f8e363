// HTTP/1.1 reassembly for one TCP/TLS connection, built on nodejs' http-parser.
//
// The caller feeds the two byte streams of one connection in order (client->server is
// kRequest, server->client is kResponse). The parser pairs each request with its response
// (FIFO, pipelining aware) and calls the sink once per request: when its response is complete,
// or, for requests still waiting, when the connection closes.
//
// Pairing after lost bytes: a response is an orphan (dropped, counted) when it must belong to
// a request that was not queued -- skipped while joining mid-stream, discarded by a parse
// error or gap before its header block was complete, or dropped over max_pending_requests --
// or when its first byte was seen before the first byte of the oldest waiting request.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string_view>

#include "http/exchange.h"

namespace mat::http {

enum class Direction : uint8_t { kRequest = 0, kResponse = 1 };

struct Http1Options {
  size_t max_body_bytes = 64 * 1024;    // body bytes kept per message (the rest is counted)
  size_t max_header_bytes = 80 * 1024;  // larger header blocks are a parse error
  size_t max_pending_requests = 256;    // requests waiting for responses; beyond, oldest dropped
};

// Outcome counters, for metrics and tests.
struct Http1Stats {
  uint64_t requests = 0;
  uint64_t responses = 0;
  uint64_t parse_errors = 0;       // malformed input; the stream then resynchronises
  uint64_t resyncs = 0;            // times a stream skipped bytes to find the next message start
  uint64_t orphan_responses = 0;   // responses with no request to pair (joined mid-stream)
  uint64_t dropped_requests = 0;   // pending requests dropped over max_pending_requests
                                   // (each is still reported: kNoResponse, incomplete)
  uint64_t interim_responses = 0;  // 1xx responses other than 101 (not paired, not reported)
  uint64_t skipped_bytes = 0;      // bytes discarded while looking for a message start
  uint64_t upgrades = 0;           // 101 / CONNECT tunnel seen: the connection left HTTP/1.1
};

class Http1Connection {
 public:
  using Sink = std::function<void(HttpExchange&&, ExchangeEvent)>;

  Http1Connection(Http1Options options, Sink sink);
  ~Http1Connection();
  Http1Connection(const Http1Connection&) = delete;
  Http1Connection& operator=(const Http1Connection&) = delete;

  // Bytes of one direction, in order. ts_ns is the wall-clock time they were seen.
  // A stream starts "unsynchronised" unless MarkStreamStart(dir) was called: bytes before the
  // first plausible message start (at the start of a call's bytes or of a line) are skipped.
  // The sink is called from inside OnData/OnGap/OnClose; it must not throw or call back in.
  void OnData(Direction dir, std::string_view bytes, uint64_t ts_ns);
  // `missing` bytes of this direction were lost. The message in progress is abandoned
  // (a request whose header block was complete is still reported, marked incomplete; an
  // earlier one is discarded; a response in progress reports its request as kNoResponse,
  // incomplete) and the stream resynchronises at the next message start.
  void OnGap(Direction dir, uint64_t missing, uint64_t ts_ns);
  // Tells the parser that the next bytes of `dir` are the very start of the connection, so no
  // resynchronisation scan is needed (and a malformed first message is an error, not a skip).
  void MarkStreamStart(Direction dir);
  // The connection is gone: reports every request still waiting (kNoResponse), in order.
  void OnClose(uint64_t ts_ns);

  const Http1Stats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mat::http
