// HTTP/1.1 reassembly for one TCP/TLS connection, built on H1Parser (h1_parser.h).
//
// The caller feeds the two byte streams of one connection in order (client->server is
// kRequest, server->client is kResponse). The parser pairs each request with its response
// (FIFO, pipelining aware) and calls the sink once per request: when its response is complete,
// or, for requests still waiting, when the connection closes.
//
// The server's answers are the ground truth (issue 17). Responses come in request order, so
// each pairs with the request it answers; a request is reported only with its response, or
// at the connection's end without one (kNoResponse: never a status), never earlier (not even
// over the connection's budget, which cuts the request stream instead, see Http1Options).
// - A message that closes the connection (a request with "Connection: close", HTTP/1.0
//   without keep-alive or HTTP/0.9; a response saying so) is the last the server reads: the
//   requests queued after the one such a response answers are never reported, and later
//   request bytes are only counted (requests_after_close, bytes_after_close).
// - A request the parser rejects after its start line (framing nginx and Go refuse: two
//   Content-Lengths, a negative one, a bad header line) is reported by its start line,
//   incomplete, with the server's answer; the requests found after it depend on that answer:
//   not reported when it closes the connection (nginx and Go close after their 400) or never
//   comes. Bytes without a start line (garbage) take a placeholder in the queue, so their
//   answer (a 400) pairs with nothing and no pairing shifts.
// - HTTP/0.9 ("GET /x", served by nginx): its answer is the body alone until the connection's
//   end; reported without a status, noted (HttpExchange::note).
//
// Pairing after lost bytes: a response is an orphan (dropped, counted) when it must belong to
// a request that was not queued -- skipped while joining mid-stream, discarded by a parse
// error or gap before its header block was complete, started inside a gap that ran past the
// end of a Content-Length body, or dropped over max_pending_requests -- or when its first
// byte was seen before the first byte of the oldest waiting request.
//
// Gaps (OnGap): the tap keeps only the head of a large write and reports the rest as a gap.
// - Lost bytes that provably fall inside the body of the message in progress (header block
//   complete, body delimited by Content-Length, `missing` <= the body bytes still expected)
//   cost nothing but body bytes: the stream stays synchronised and the message completes
//   when its real remaining bytes arrive. body_size counts the lost bytes, body_truncated is
//   set and `body` keeps only the bytes seen before the gap (bytes after it are counted, not
//   kept). The exchange is reported as it would have been, `incomplete` false (only body
//   bytes were lost). Counted in Http1Stats::gaps_skipped_in_body. Work is O(1) in `missing`.
// - Any other gap (chunked or read-until-close body, header block not complete, gap longer
//   than the rest of the body, `missing` == 0 i.e. unknown size) abandons the message in
//   progress and resynchronises at the next message start; see OnGap.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "http/connection.h"
#include "http/exchange.h"
#include "util/defaults.h"

namespace mat::http {

struct Http1Options {
  size_t max_body_bytes =
      defaults::kMaxBodyBytes;  // body bytes kept per message (the rest is counted)
  // A larger header block is not parsed: its request is reported by its start line only,
  // incomplete. Go's net/http default (1 MiB): a request dockerd serves is not hidden behind
  // padding; the auditor's own cap is that of --max-header-bytes (16 MiB).
  size_t max_header_bytes = defaults::kMaxHeaderBytes;
  size_t max_pending_requests =
      defaults::kMaxPendingRequests;  // requests waiting for responses; beyond, the stream is cut
  // The connection's budget: header and body bytes of the requests waiting for responses. The
  // bodies kept for waiting requests are given up first (budget_bodies_cut); when the heads
  // alone would go over, or over max_pending_requests, the request stream is cut: no more
  // requests are parsed on the connection (connections_cut, budget_drops). A waiting request
  // is never reported before its response or the connection's end: it may be one the server
  // never read.
  size_t max_connection_bytes = defaults::kMaxConnectionBytes;
  // The bodies of waiting requests are kept only while the waiting exchanges of all connections
  // (HTTP/1.1 and HTTP/2, see Stitcher) hold less than this together (the rest counted in
  // budget_bodies_cut): bounded in total too.
  size_t max_total_bytes = defaults::kMaxTotalBytes;
  // When set and true for a request, its exchange is also reported with kResponseStarted as
  // soon as the final response's header block is complete (response body empty): for
  // long-running requests (watches, logs, attach) whose response may never complete.
  std::function<bool(const HttpRequest&)> report_started;
  // Also report every request with kRequestReceived as soon as it is complete.
  bool report_received = false;
  // Keep the response's header fields (HttpResponse::headers). The audit reads none of them
  // (status and body only), so the pipeline turns this off: one copy of every header less.
  bool keep_response_headers = true;
};

// Outcome counters, for metrics and tests.
struct Http1Stats {
  uint64_t requests = 0;
  uint64_t responses = 0;
  uint64_t parse_errors = 0;       // malformed input; the stream then resynchronises
  uint64_t resyncs = 0;            // times a stream skipped bytes to find the next message start
  uint64_t orphan_responses = 0;   // responses with no request to pair (joined mid-stream)
  uint64_t dropped_requests = 0;   // request streams cut (connections_cut), over
                                   // max_pending_requests or max_connection_bytes
  uint64_t budget_drops = 0;       // of dropped_requests, those cut for max_connection_bytes
  uint64_t budget_bodies_cut = 0;  // request body pieces not kept for max_connection_bytes
  uint64_t headers_too_large = 0;  // request header blocks over max_header_bytes (still reported
                                   // with method and target when the start line names them)
  uint64_t interim_responses = 0;  // 1xx responses other than 101 (not paired, not reported)
  uint64_t skipped_bytes = 0;      // bytes discarded while looking for a message start
  uint64_t upgrades = 0;           // 101 / CONNECT tunnel seen: the connection left HTTP/1.1
  // Gaps absorbed inside a Content-Length body, the stream kept in sync (see OnGap).
  uint64_t gaps_skipped_in_body = 0;
  // Requests parsed after the server said it closes (a response with Connection: close, or
  // after a request asking for it): the server never read them; never reported.
  uint64_t requests_after_close = 0;
  // Bytes after the close point (request bytes the server never read; response bytes after a
  // closing response), counted, never parsed.
  uint64_t bytes_after_close = 0;
  // Connections whose request stream was cut: over max_pending_requests or
  // max_connection_bytes; what follows is counted in cut_bytes, never parsed.
  uint64_t connections_cut = 0;
  uint64_t cut_bytes = 0;
  uint64_t http09_requests = 0;  // HTTP/0.9 requests ("GET /x", answered without a status)

  Http1Stats& operator+=(const Http1Stats& o) {
    requests += o.requests;
    responses += o.responses;
    parse_errors += o.parse_errors;
    resyncs += o.resyncs;
    orphan_responses += o.orphan_responses;
    dropped_requests += o.dropped_requests;
    headers_too_large += o.headers_too_large;
    budget_drops += o.budget_drops;
    budget_bodies_cut += o.budget_bodies_cut;
    interim_responses += o.interim_responses;
    skipped_bytes += o.skipped_bytes;
    upgrades += o.upgrades;
    gaps_skipped_in_body += o.gaps_skipped_in_body;
    requests_after_close += o.requests_after_close;
    bytes_after_close += o.bytes_after_close;
    connections_cut += o.connections_cut;
    cut_bytes += o.cut_bytes;
    http09_requests += o.http09_requests;
    return *this;
  }
};

class Http1Connection final : public HttpConnection {
 public:
  Http1Connection(Http1Options options, Sink sink);

  // The operations are HttpConnection's (connection.h); for HTTP/1.1:
  // OnData: a stream starts "unsynchronised" unless MarkStreamStart(dir) was called: bytes before
  // the first plausible message start (at the start of a call's bytes or of a line) are skipped.
  // OnGap: when the lost bytes all fall inside a Content-Length body in progress, they are counted
  // as body and nothing else changes (see the top of this file). Otherwise the message in progress
  // is abandoned and the stream resynchronises at the next message start:
  // - a request whose header block was complete is still reported, marked incomplete; an
  //   earlier one is discarded (its response is then treated as an orphan);
  // - a response whose header block was complete reports its request as kResponseComplete
  //   with that response (status and headers known; body as seen, complete_ns 0), marked
  //   incomplete: the status is the most important fact of an audit line. A response cut
  //   before its header block was complete reports its request as kNoResponse, incomplete;
  // - a gap that runs past the end of a Content-Length body provably lost the start of the
  //   next message too: for requests its response is treated as an orphan, for responses the
  //   next waiting request is reported as kNoResponse, incomplete (pairing does not shift).
  // MarkStreamStart: no resynchronisation scan is needed (and a malformed first message is an
  // error, not a skip).
  // OnClose: reports every request still waiting (kNoResponse), in order.
  // Expire: the requests reported stay queued for their responses.

  const Http1Stats& stats() const;

 private:
  struct Impl;
};

}  // namespace mat::http
