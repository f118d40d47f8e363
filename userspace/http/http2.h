// HTTP/2 reassembly for one TCP/TLS connection: frames are parsed here, header blocks are
// decompressed with our HPACK decoder (hpack.h, one per direction). Same shape as
// Http1Connection: the caller feeds the two byte streams in order
// (client->server is kRequest, server->client is kResponse) and the sink gets one report per
// client-initiated stream (its `sequence` is the order the streams were opened: 1, 2, ...).
//
// Reports (see ExchangeEvent):
// - kResponseComplete when the response's END_STREAM is seen (DATA or trailers), whether or not
//   the request had ended; also when a stream whose final response header block was seen ends
//   without END_STREAM (RST_STREAM, close, GOAWAY, dropped): then response->complete_ns is 0.
// - kNoResponse when a stream ends with no final response header block: the server's
//   RST_STREAM (other than REFUSED_STREAM), the connection's close, a cap; `note` says
//   why when more is known than that the connection ended. 1xx responses complete nothing
//   (counted in interim_responses).
// The server's frames decide what a stream was (issue 17). A client's RST_STREAM before the
// final response does not end the stream: the server may still answer it (nginx sends what it
// had queued), so it waits for the response (reported with its status), the server's reset, a
// GOAWAY or the close (then kNoResponse, note "none seen: the client reset the stream"); at most
// max_reset_streams such streams wait. Streams the server provably did not process are never
// reported (counted in unreported_streams): refused (REFUSED_STREAM before any response), above
// the last-stream-id of a server GOAWAY, and those sent at or after a client protocol error
// (below) that the server never answered.
// - kResponseStarted (report_started), kRequestReceived (report_received) and
//   kRequestTimedOut (Expire) as in HTTP/1. Trailers end a message; their fields are not kept.
// Request pseudo-headers: :method -> method, :path -> target, :authority is kept as a header
// named ":authority" (first, as on the wire); :scheme and :protocol are dropped. version 2.0.
//
// Never a guessed value. HPACK state is per direction. After anything that may have cost header
// blocks (joining mid-stream, a gap, a decoding error) the direction's decoder is replaced by a
// fresh, empty one. Its dynamic table then holds exactly
// the newest entries the encoder added since, which are at the same indices in the encoder's
// table (evicting earlier than the encoder does only makes it a smaller suffix), so every index
// it resolves is right and a reference to an older entry fails the block
// instead of resolving to a wrong entry. Decoding thus recovers header by header as the encoder
// inserts new entries; entries inserted before the join stay unknown for good (an encoder
// rarely clears its table). A failed block keeps the fields emitted before the failure (right
// ones), skips its remaining fragments, and marks its exchange incomplete; a request whose
// :method/:path were not decoded is still reported, with them empty, incomplete.
//
// Joining mid-stream (at_start false) and gaps: the frame stream is resynchronised by scanning
// for a plausible frame header (known type, flags and length valid for it, stream-id rules and
// client parity for the direction, length <= 1 MiB) that is followed by another plausible one
// (a CONTINUATION for an unfinished header block) or that ends exactly where the bytes
// delivered so far end. Frames before that are skipped (skipped_bytes). A stream whose request
// header block is seen whole after such a resync decodes exactly and is not incomplete; DATA,
// trailers and responses of streams opened before it are ignored. A gap (OnGap) that lies
// within the payload of the DATA frame in progress costs only body bytes (like HTTP/1: counted,
// body_truncated, the kept body is what was seen before the gap); any other gap loses the frame
// sync: every open stream's exchange is marked incomplete and the direction resynchronises.
//
// Errors: on the request stream followed from the connection's start, a frame invalid for its
// type or a broken CONTINUATION sequence is a connection error for the server, which reads no
// further: the request stream stops there (request_errors, last_error; nothing after it is
// parsed), the response stream is still followed for the streams opened before. A malformed
// header block from such a client (bad index, integer or string, a table size update above the
// server's SETTINGS_HEADER_TABLE_SIZE, 4096 until it says otherwise) is one too, but the
// frames after it are still parsed: that request and later ones are reported only if the server
// answers them (nginx answers some with 400). A HEADERS frame whose padding is longer than its
// payload, where the servers differ (Go's net/http resets that stream and reads on, nginx ends
// the connection), is skipped undecoded and treated alike: the server's answers decide what
// came after it. On the response stream, or a missing client preface, a violation is fatal:
// the connection stops parsing (failed(), fatal_errors,
// last_error) and reports every open stream, incomplete. After a resync the same violations
// only resynchronise again, and HPACK errors from our own limits (a table above
// max_hpack_table_bytes, a block over 1 MiB) are never errors of the peer. Bounded memory: a
// fixed-size
// frame state per direction (no per-byte allocation), a resync buffer of at most ~1 MiB while
// unsynchronised, per stream the request/response headers (max_header_list_bytes each, the
// rest counted and the exchange incomplete) and bodies (max_body_bytes each), at most
// max_streams tracked streams (a new one over it first ends the oldest stream whose response
// started, reported with its status, incomplete; when none has, the new stream is reported at
// once, kNoResponse, incomplete: servers refuse the newest streams over their limits) and
// max_reset_streams client-reset ones waiting for the server's word, all of them within
// max_connection_bytes, the HPACK tables (at most max_hpack_table_bytes each) and a header block
// being gathered (at most 1 MiB a direction).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "http/connection.h"
#include "http/exchange.h"
#include "util/defaults.h"

namespace mat::http {

// The client connection preface (RFC 9113 section 3.4).
inline constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Whether the first bytes of a request stream are (the start of) the client preface: an exact
// match of its 24 bytes, or, for fewer bytes, a non-empty prefix of it.
bool LooksLikeHttp2Preface(std::string_view first_bytes);

struct Http2Options {
  size_t max_body_bytes = defaults::kMaxBodyBytes;  // body bytes kept per message (rest counted)
  size_t max_header_list_bytes = 256 * 1024;        // decoded bytes kept per header block (name +
                                                    // value + 32 per field, as SETTINGS count them)
  size_t max_streams = 1024;                        // concurrently tracked streams
  // Largest HPACK dynamic table accepted per direction. Tables up to this size are followed
  // whatever SETTINGS_HEADER_TABLE_SIZE said when (a passive observer cannot time SETTINGS
  // acknowledgements); a block resizing above it fails to decode (incomplete, never wrong).
  size_t max_hpack_table_bytes = 64 * 1024;
  // The connection's budget: header and body bytes kept for all its tracked streams together.
  // A stream that takes it over first ends the oldest other streams (reported kNoResponse or
  // kResponseComplete, incomplete: counted in budget_evictions); a body that would take it
  // over is cut (body_truncated, counted in budget_bodies_cut).
  size_t max_connection_bytes = defaults::kMaxConnectionBytes;
  // As in Http1Options: bodies are kept only while the waiting exchanges of all connections
  // (HTTP/1.1 and HTTP/2) hold less than this together (the rest counted in budget_bodies_cut).
  size_t max_total_bytes = defaults::kMaxTotalBytes;
  // Streams the client reset before any response, still waiting for the server's word (its
  // response, a REFUSED_STREAM, a GOAWAY): the server may still answer them. Beyond this many,
  // the oldest is reported kNoResponse, incomplete (counted in reset_streams_dropped). Not
  // counted in max_streams: a server no longer counts them either (nginx serves up to twice its
  // concurrent streams per read before refusing, Go queues up to five times its limit).
  size_t max_reset_streams = 4096;
  // As in Http1Options: when set and true for a request, its exchange is also reported with
  // kResponseStarted as soon as the final response's header block is complete.
  std::function<bool(const HttpRequest&)> report_started;
  // Also report every request with kRequestReceived as soon as it is complete (END_STREAM).
  bool report_received = false;
  // As in Http1Options: keep the response's header fields (the audit reads none of them).
  bool keep_response_headers = true;
};

struct Http2Stats {
  uint64_t frames = 0;
  uint64_t requests = 0;           // client streams tracked (request header block seen)
  uint64_t responses = 0;          // final (non-1xx) response header blocks on tracked streams
  uint64_t interim_responses = 0;  // 1xx response header blocks
  uint64_t resets = 0;             // tracked streams ended by RST_STREAM
  uint64_t goaway_refused = 0;     // tracked streams above a server GOAWAY's last-stream-id
  uint64_t dropped_streams = 0;    // streams ended or not tracked over max_streams (reported)
  // Header blocks on client streams not tracked (opened before a join or a gap, or trailers
  // of a stream no longer tracked): decoded to keep the HPACK state, then ignored.
  uint64_t untracked_header_blocks = 0;
  uint64_t push_promises = 0;   // PUSH_PROMISE frames (decoded for HPACK, ignored)
  uint64_t unknown_frames = 0;  // frames of unknown type (ignored)
  uint64_t hpack_errors = 0;    // header blocks that failed to decode (decoder reset), except a
                                // malformed one from a client followed exactly (request_errors)
  uint64_t header_lists_truncated = 0;  // header blocks over max_header_list_bytes
  uint64_t table_size_over_limit = 0;   // SETTINGS_HEADER_TABLE_SIZE > max_hpack_table_bytes
  uint64_t budget_evictions = 0;        // streams ended early to stay within max_connection_bytes
  uint64_t budget_bodies_cut = 0;       // body pieces not kept to stay within it (or the total)
  uint64_t resyncs = 0;                 // times a direction lost its frame sync and rescanned
  uint64_t skipped_bytes = 0;           // bytes skipped while looking for a frame start
  uint64_t gaps_skipped_in_body = 0;    // gaps absorbed inside a DATA frame's payload
  uint64_t fatal_errors = 0;            // connections given up (see failed())
  const char* last_error = nullptr;     // a static string: the last (fatal or request) error
  uint64_t refused_streams = 0;         // tracked streams the server refused (REFUSED_STREAM)
  uint64_t request_errors = 0;          // request streams stopped by a client protocol error
  uint64_t unanswered_after_error = 0;  // streams of requests sent at or after a client protocol
                                        // error that the server never answered (not reported)
  uint64_t reset_streams_dropped = 0;   // client-reset streams dropped over max_reset_streams
  // Tracked streams never reported (refused, above a GOAWAY, unanswered after a client error):
  // with the reported ones they make `requests`.
  uint64_t unreported_streams = 0;

  Http2Stats& operator+=(const Http2Stats& o) {
    frames += o.frames;
    requests += o.requests;
    responses += o.responses;
    interim_responses += o.interim_responses;
    resets += o.resets;
    goaway_refused += o.goaway_refused;
    dropped_streams += o.dropped_streams;
    untracked_header_blocks += o.untracked_header_blocks;
    push_promises += o.push_promises;
    unknown_frames += o.unknown_frames;
    hpack_errors += o.hpack_errors;
    header_lists_truncated += o.header_lists_truncated;
    table_size_over_limit += o.table_size_over_limit;
    budget_evictions += o.budget_evictions;
    budget_bodies_cut += o.budget_bodies_cut;
    resyncs += o.resyncs;
    skipped_bytes += o.skipped_bytes;
    gaps_skipped_in_body += o.gaps_skipped_in_body;
    fatal_errors += o.fatal_errors;
    if (o.last_error != nullptr) last_error = o.last_error;
    refused_streams += o.refused_streams;
    request_errors += o.request_errors;
    unanswered_after_error += o.unanswered_after_error;
    reset_streams_dropped += o.reset_streams_dropped;
    unreported_streams += o.unreported_streams;
    return *this;
  }
};

class Http2Connection final : public HttpConnection {
 public:
  // at_start: both byte streams will be fed from the connection's first byte (the request
  // stream must then begin with the client preface). When false we joined mid-stream: both
  // directions resynchronise (a request stream that does begin with the preface is still
  // recognised and followed from its start).
  Http2Connection(Http2Options options, Sink sink, bool at_start = true);

  // The operations are HttpConnection's (connection.h); for HTTP/2, OnGap and OnClose: see
  // the top of the file; Expire: the requests complete (END_STREAM seen) with no final
  // response header block. MarkStreamStart does nothing (at_start says it).

  // True after a fatal error: the connection ignores all further input (it reported its
  // streams already), the caller may stop tracking it.
  bool failed() const;
  const Http2Stats& stats() const;

 private:
  struct Impl;
};

}  // namespace mat::http
