// HTTP/2 reassembly: a streaming frame parser per direction and an HPACK decoder (hpack.h).
//
// Design notes:
// - Each direction is a small state machine over the frame being read: its 9-byte header, a
//   fixed "prefix" (pad length, priority fields, promised stream id, or the whole payload of a
//   fixed-size control frame, at most 8 bytes), the content (DATA body, header block fragment,
//   SETTINGS entries, ignored bytes) streamed as it arrives, then the padding. No frame is ever
//   buffered whole, so memory per direction is fixed while synchronised.
// - Header block fragments are gathered in the direction's `hblock` as they arrive;
//   END_HEADERS has the whole block decoded. Every block is decoded, whether its stream is
//   tracked or not (PUSH_PROMISE included, with the server's decoder): the dynamic table is
//   only right if the decoder sees every block. A failed block's remaining fragments are
//   skipped and the decoder replaced (see http2.h for why an empty table never yields a wrong
//   value). A block is held whole (at most kMaxHeaderBlock bytes, else it fails).
// - Unsynchronised directions append to `hold` and scan it from `scan_pos`; each position is
//   judged once, except a candidate whose proof needs bytes not yet seen: it is waited for
//   (it needs at most kProofMax bytes). The undecided tail is thus shorter than kProofMax;
//   judged bytes are dropped when they are at least half of `hold`, so every byte is moved
//   at most once on average and `hold` never exceeds 2 * kProofMax.
// - The tracked streams are kept by a Stitcher (stitcher.h, in the order they are answered),
//   which hands the reports to the sink at the end of each public call.

#include "http/http2.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "http/hpack.h"
#include "http/stitcher.h"

namespace mat::http {

bool LooksLikeHttp2Preface(std::string_view first_bytes) {
  if (first_bytes.empty()) return false;
  if (first_bytes.size() >= kHttp2Preface.size())
    return first_bytes.substr(0, kHttp2Preface.size()) == kHttp2Preface;
  return kHttp2Preface.substr(0, first_bytes.size()) == first_bytes;
}

namespace {

// Why a stream was reported without a response (HttpExchange::note, for the line's
// mke-audit-tap/response annotation; the connection's end alone says nothing more).
constexpr std::string_view kNoteClientReset = "none seen: the client reset the stream";
constexpr std::string_view kNoteServerReset = "none seen: the server reset the stream";
constexpr std::string_view kNoteServerError =
    "none seen: the server ended the connection with an error";
constexpr std::string_view kNoteUnreadable = "none seen: the response's headers did not decode";
constexpr std::string_view kNoteUnparsable = "none seen: the connection could not be parsed";
constexpr std::string_view kNoteCap = "none seen: a memory cap ended the wait";

constexpr size_t kFrameHeaderLen = 9;
constexpr uint8_t kData = 0x0;
constexpr uint8_t kHeaders = 0x1;
constexpr uint8_t kPriority = 0x2;
constexpr uint8_t kRstStream = 0x3;
constexpr uint8_t kSettings = 0x4;
constexpr uint8_t kPushPromise = 0x5;
constexpr uint8_t kPing = 0x6;
constexpr uint8_t kGoaway = 0x7;
constexpr uint8_t kWindowUpdate = 0x8;
constexpr uint8_t kContinuation = 0x9;

constexpr uint8_t kFlagEndStream = 0x1;
constexpr uint8_t kFlagAck = 0x1;
constexpr uint8_t kFlagEndHeaders = 0x4;
constexpr uint8_t kFlagPadded = 0x8;
constexpr uint8_t kFlagPriority = 0x20;

constexpr uint16_t kSettingsHeaderTableSize = 0x1;
constexpr size_t kHeaderEntryOverhead = 32;  // RFC 7541 section 4.1
// A header block (HEADERS or PUSH_PROMISE and its CONTINUATIONs) is held whole until
// END_HEADERS; a longer one fails (nginx refuses blocks over its large_client_header_buffers,
// Go over its 1 MiB MaxHeaderBytes).
constexpr size_t kMaxHeaderBlock = 1024 * 1024;

// Resynchronisation: the longest frame accepted as a candidate, and the bytes that may be needed
// to prove one (the candidate, its payload and the next frame header).
constexpr uint32_t kResyncMaxLen = 16384 * 64;
constexpr size_t kProofMax = kResyncMaxLen + 2 * kFrameHeaderLen;
constexpr size_t kHoldMax = 2 * kProofMax;

struct FrameHeader {
  uint32_t len = 0;
  uint8_t type = 0;
  uint8_t flags = 0;
  uint32_t sid = 0;
  bool reserved = false;  // the R bit of the stream id
};

FrameHeader ParseHeader(const uint8_t* p) {
  FrameHeader h;
  h.len = (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2];
  h.type = p[3];
  h.flags = p[4];
  h.reserved = (p[5] & 0x80) != 0;
  h.sid = (uint32_t{p[5] & 0x7fu} << 24) | (uint32_t{p[6]} << 16) | (uint32_t{p[7]} << 8) | p[8];
  return h;
}

uint32_t ReadU32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

bool KnownType(uint8_t type) { return type <= kContinuation; }

uint8_t DefinedFlags(uint8_t type) {
  switch (type) {
    case kData:
      return kFlagEndStream | kFlagPadded;
    case kHeaders:
      return kFlagEndStream | kFlagEndHeaders | kFlagPadded | kFlagPriority;
    case kSettings:
    case kPing:
      return kFlagAck;
    case kPushPromise:
      return kFlagEndHeaders | kFlagPadded;
    case kContinuation:
      return kFlagEndHeaders;
    default:
      return 0;
  }
}

bool Padded(const FrameHeader& h) {
  return (h.type == kData || h.type == kHeaders || h.type == kPushPromise) &&
         (h.flags & kFlagPadded) != 0;
}

// Bytes read before a frame's content: pad length, priority fields, promised stream id, or
// the fixed part of a control frame.
size_t PrefixLen(const FrameHeader& h) {
  const size_t pad = Padded(h) ? 1 : 0;
  switch (h.type) {
    case kHeaders:
      return pad + ((h.flags & kFlagPriority) != 0 ? 5 : 0);
    case kData:
      return pad;
    case kPushPromise:
      return pad + 4;
    case kPriority:
      return 5;
    case kRstStream:
    case kWindowUpdate:
      return 4;
    case kPing:
    case kGoaway:
      return 8;
    default:
      return 0;
  }
}

bool NeedsContinuation(const FrameHeader& h) {
  return (h.type == kHeaders || h.type == kPushPromise) && (h.flags & kFlagEndHeaders) == 0;
}

// Why this frame header is invalid on its own (RFC 9113 section 6); nullptr when it is valid.
// Unknown types are valid (ignored). `request`: sent by the client.
const char* CheckHeader(const FrameHeader& h, bool request) {
  if (!KnownType(h.type)) return nullptr;
  if (h.len < PrefixLen(h)) return "frame too short for its type";
  switch (h.type) {
    case kData:
    case kHeaders:
    case kContinuation:
      if (h.sid == 0) return "DATA/HEADERS/CONTINUATION on stream 0";
      if (request && h.sid % 2 == 0 && h.type != kContinuation)
        return "client DATA/HEADERS on a server stream";
      break;
    case kPriority:
      if (h.sid == 0) return "PRIORITY on stream 0";
      if (h.len != 5) return "PRIORITY length";
      break;
    case kRstStream:
      if (h.sid == 0) return "RST_STREAM on stream 0";
      if (h.len != 4) return "RST_STREAM length";
      break;
    case kSettings:
      if (h.sid != 0) return "SETTINGS on a stream";
      if ((h.flags & kFlagAck) != 0 ? h.len != 0 : h.len % 6 != 0) return "SETTINGS length";
      break;
    case kPushPromise:
      if (request) return "PUSH_PROMISE from the client";
      if (h.sid == 0) return "PUSH_PROMISE on stream 0";
      break;
    case kPing:
      if (h.sid != 0) return "PING on a stream";
      if (h.len != 8) return "PING length";
      break;
    case kGoaway:
      if (h.sid != 0) return "GOAWAY on a stream";
      break;
    case kWindowUpdate:
      if (h.len != 4) return "WINDOW_UPDATE length";
      break;
    default:
      break;
  }
  return nullptr;
}

// A frame a scan may start at: known, valid, only defined flags, no R bit, not too long, and
// not a CONTINUATION (it would need the block's start).
bool PlausibleStart(const FrameHeader& h, bool request) {
  return KnownType(h.type) && h.type != kContinuation && !h.reserved &&
         (h.flags & ~DefinedFlags(h.type)) == 0 && h.len <= kResyncMaxLen &&
         CheckHeader(h, request) == nullptr;
}

bool PlausibleNext(const FrameHeader& first, const FrameHeader& next, bool request) {
  if (NeedsContinuation(first)) {
    return next.type == kContinuation && next.sid == first.sid && !next.reserved &&
           (next.flags & ~kFlagEndHeaders) == 0 && next.len <= kResyncMaxLen;
  }
  return PlausibleStart(next, request);
}

void AppendBody(std::string& body, uint64_t& size, bool& truncated, const uint8_t* at, size_t len,
                size_t max) {
  size += len;
  if (body.size() < max)
    body.append(reinterpret_cast<const char*>(at), std::min(len, max - body.size()));
  truncated = size > body.size();
}

}  // namespace

struct Http2Connection::Impl final : HttpConnection::Engine {
  enum class Mode : uint8_t {
    kPreface,       // request stream at its start: expecting the client preface
    kMaybePreface,  // request stream, joined mid-stream: the preface may still be there
    kSynced,
    kUnsynced,
    kStopped,  // request stream after a client protocol error: the server reads no further
  };
  enum class Phase : uint8_t { kHeader, kPrefix, kContent, kPadding };
  enum class BlockKind : uint8_t { kRequest, kResponse, kTrailers, kIgnore };

  // The header block being decoded on one direction.
  struct Block {
    bool active = false;
    BlockKind kind = BlockKind::kIgnore;
    uint32_t sid = 0;
    bool end_stream = false;  // its HEADERS frame carried END_STREAM
    bool failed = false;      // decoding failed: the rest of the block is skipped
    bool truncated = false;   // over max_header_list_bytes: fields no longer kept
    size_t bytes = 0;         // decoded bytes, counted as for SETTINGS_MAX_HEADER_LIST_SIZE
    uint64_t first_ts = 0;
    bool has_method = false;
    bool has_path = false;
    HttpRequest req;
    HttpResponse resp;
  };

  struct Side {
    Direction dir = Direction::kRequest;
    bool request = true;
    Mode mode = Mode::kSynced;
    bool exact = false;        // followed from the connection's start, never lost since
    bool hpack_exact = false;  // exact, and the decoder's table is the encoder's (no failure)
    size_t preface_have = 0;

    Phase phase = Phase::kHeader;
    uint8_t hdr[kFrameHeaderLen] = {};
    size_t hdr_have = 0;
    FrameHeader fh;
    uint64_t frame_ts = 0;
    uint8_t prefix[8] = {};
    size_t prefix_need = 0;
    size_t prefix_have = 0;
    size_t content_left = 0;
    size_t pad_left = 0;
    uint8_t unit[6] = {};  // a SETTINGS entry in progress
    size_t unit_have = 0;

    Block block;
    HpackDecoder hpack;
    std::string hblock;  // the header block being gathered (HEADERS/PUSH_PROMISE + CONTINUATION)

    std::string hold;  // unsynchronised: bytes being scanned
    std::string scratch;
    size_t scan_pos = 0;
  };

  // A tracked stream, kept by the Stitcher (reported as it ends). request_done: the
  // request's END_STREAM was seen; response_started: ex.response holds the final response's
  // header block; client_reset: RST_STREAM from the client before the final response;
  // depends_on (1): opened at or after a client protocol error: the server may not have read
  // it, so it is reported only if the server answers it.
  using Stream = Stitcher::Entry;
  using StreamIt = Stitcher::Iter;

  Http2Options opt;
  Http2Stats stats;
  Side sides[2];
  // The tracked streams and their reports; what they hold is within opt.max_connection_bytes,
  // their bodies also within opt.max_total_bytes of what all connections' exchanges hold.
  Stitcher stitcher;
  // Client stream id -> stream (ids grow: oldest first).
  Stitcher::Map& streams = stitcher.entries();
  uint32_t highest_sid = 0;  // highest client stream id whose request block was seen
  uint32_t goaway_last = 0x7fffffff;
  size_t reset_waiting = 0;            // tracked streams with client_reset
  bool req_error = false;              // the client broke the protocol: later streams are suspect
  bool server_error = false;           // the server sent a GOAWAY with an error code
  uint32_t server_table_limit = 4096;  // largest SETTINGS_HEADER_TABLE_SIZE the server sent
  bool dead = false;
  bool closed = false;

  Impl(Http2Options o, Sink s, bool at_start)
      : opt(std::move(o)),
        stitcher(Stitcher::OptionsFor(Stitcher::Order::kAsAnswered, opt), std::move(s)) {
    if (opt.max_streams == 0) opt.max_streams = 1;
    for (int i = 0; i < 2; ++i) {
      Side& sd = sides[i];
      sd.dir = static_cast<Direction>(i);
      sd.request = sd.dir == Direction::kRequest;
      if (at_start) {
        sd.mode = sd.request ? Mode::kPreface : Mode::kSynced;
        sd.exact = true;
        sd.hpack_exact = true;
      } else {
        sd.mode = sd.request ? Mode::kMaybePreface : Mode::kUnsynced;
        sd.exact = false;
      }
      sd.hpack.Reset(opt.max_hpack_table_bytes);
      // The server's decoder accepts size updates up to its SETTINGS_HEADER_TABLE_SIZE (4096
      // until it says otherwise); the client's limit is not enforced: whatever the server
      // sent is decoded if it can be.
      if (sd.request && at_start) sd.hpack.SetProtocolLimit(4096);
    }
  }

  Side& SideOf(Direction d) { return sides[static_cast<int>(d)]; }

  // ---- reports ----

  void Flush() { stitcher.Flush(); }

  // Forgets a stream without reporting it (counted).
  void Drop(StreamIt it) {
    ++stats.unreported_streams;
    Forget(it->second);
    stitcher.Drop(it->second);
  }

  // A stream is about to go.
  void Forget(const Stream& st) {
    if (st.client_reset) --reset_waiting;
  }

  // Reports a stream and forgets it. kNoResponse: `why` none was seen (empty: the connection
  // ended). A suspect stream without a response is not reported (counted).
  void Finish(StreamIt it, ExchangeEvent ev, std::string_view why = {}) {
    Stream& st = it->second;
    if (ev != ExchangeEvent::kResponseComplete) {
      if (st.depends_on != 0) {
        ++stats.unanswered_after_error;
        Drop(it);
        return;
      }
      Forget(st);
      stitcher.NoResponse(st, why.empty() ? NoteFor(st) : why);
      return;
    }
    Forget(st);
    stitcher.Answer(st, ev);
  }

  // Why a stream ending with the connection has no response (empty: nothing more to say).
  std::string_view NoteFor(const Stream& st) const {
    if (st.client_reset) return kNoteClientReset;
    if (server_error) return kNoteServerError;
    return {};
  }

  // Counts `n` more bytes kept for `it`, then ends the oldest other streams while the
  // connection is over its budget.
  void Charge(StreamIt it, size_t n) {
    stitcher.Charge(it->second, n);
    while (stitcher.held() > opt.max_connection_bytes && streams.size() > 1) {
      auto victim = streams.begin() == it ? std::next(streams.begin()) : streams.begin();
      ++stats.budget_evictions;
      EndStream(victim, true, kNoteCap);
    }
  }

  // The body bytes a stream may still keep: its own cap and what the budgets (the
  // connection's and the total) have left.
  size_t BodyRoom(const std::string& body, bool frozen) {
    if (frozen) return 0;
    return std::min(opt.max_body_bytes, body.size() + stitcher.BodyRoom());
  }

  void KeepBody(StreamIt it, std::string& body, uint64_t& size, bool& truncated, const uint8_t* p,
                size_t n, bool frozen) {
    const size_t before = body.size();
    const size_t max = BodyRoom(body, frozen);
    if (!frozen && max < opt.max_body_bytes && body.size() + n > max) ++stats.budget_bodies_cut;
    AppendBody(body, size, truncated, p, n, max);
    Charge(it, body.size() - before);
  }

  // A stream ends without END_STREAM on its response (reset, close, dropped, fatal).
  void EndStream(StreamIt it, bool incomplete, std::string_view why = {}) {
    if (incomplete) it->second.ex.incomplete = true;
    Finish(
        it,
        it->second.response_started ? ExchangeEvent::kResponseComplete : ExchangeEvent::kNoResponse,
        why);
  }

  void RequestDone(StreamIt it, uint64_t ts) {
    Stream& st = it->second;
    if (st.request_done) return;
    stitcher.RequestComplete(st, ts);  // kRequestReceived when asked (not if suspect)
  }

  void ResponseDone(StreamIt it, uint64_t ts) {
    Stream& st = it->second;
    if (!st.response_started) {  // its header block was lost or not decodable: no status
      st.ex.incomplete = true;
      Finish(it, ExchangeEvent::kNoResponse, kNoteUnreadable);
      return;
    }
    st.ex.response->complete_ns = ts;
    Finish(it, ExchangeEvent::kResponseComplete);
  }

  // ---- fatal errors and lost sync ----

  void Fatal(const char* why) {
    if (dead) return;
    dead = true;
    ++stats.fatal_errors;
    stats.last_error = why;
    while (!streams.empty()) EndStream(streams.begin(), true, kNoteUnparsable);
    for (Side& s : sides) {
      s.hpack.Reset(opt.max_hpack_table_bytes);
      std::string().swap(s.hblock);
      s.block = Block{};
      std::string().swap(s.hold);
      std::string().swap(s.scratch);
    }
  }

  // A violation: fatal when the direction was followed from the start, else a resync that
  // rescans from `replay` (bytes already consumed that may hold the next frame's start).
  void ProtocolError(Side& s, const char* why, uint64_t ts, const uint8_t* replay = nullptr,
                     size_t replay_len = 0) {
    if (s.exact && s.request) {
      StopRequests(s, why);
      return;
    }
    if (s.exact) {
      Fatal(why);
      return;
    }
    Desync(s, ts);
    if (replay_len > 0) s.hold.append(reinterpret_cast<const char*>(replay), replay_len);
  }

  // The client broke the protocol (a connection error for the server, which reads no further):
  // nothing after it on the request stream is parsed. Streams opened before it stay, paired
  // with what the server still answers.
  void StopRequests(Side& s, const char* why) {
    RequestError(why);
    s.mode = Mode::kStopped;
    s.block = Block{};
    std::string().swap(s.hblock);
    std::string().swap(s.hold);
    std::string().swap(s.scratch);
  }

  void RequestError(const char* why) {
    if (req_error) return;
    req_error = true;
    ++stats.request_errors;
    stats.last_error = why;
  }

  // The frame sync of `s` is lost: what was in progress is abandoned and the direction
  // rescans. Every open stream may have lost frames of this direction.
  void Desync(Side& s, uint64_t ts) {
    ++stats.resyncs;
    if (s.block.active) {
      s.block.failed = true;
      FinishBlock(s, ts);
    }
    for (auto& [sid, st] : streams) {
      if (s.request && st.request_done) continue;
      st.ex.incomplete = true;
      if (s.request)
        st.req_frozen = true;
      else
        st.resp_frozen = true;
    }
    s.hpack.Reset(opt.max_hpack_table_bytes);
    s.hpack.SetProtocolLimit(SIZE_MAX);
    std::string().swap(s.hblock);
    s.mode = Mode::kUnsynced;
    s.exact = false;
    s.hpack_exact = false;
    s.phase = Phase::kHeader;
    s.hdr_have = 0;
    s.hold.clear();
    s.scan_pos = 0;
  }

  // ---- header blocks ----

  void StartBlock(Side& s) {
    Block& b = s.block;
    b = Block{};
    b.active = true;
    b.sid = s.fh.sid;
    b.first_ts = s.frame_ts;
    if (s.fh.type == kPushPromise) {
      ++stats.push_promises;
      b.kind = BlockKind::kIgnore;
      return;
    }
    b.end_stream = (s.fh.flags & kFlagEndStream) != 0;
    auto it = streams.find(b.sid);
    if (s.request) {
      if (it != streams.end()) {
        b.kind = it->second.request_done || it->second.client_reset ? BlockKind::kIgnore
                                                                    : BlockKind::kTrailers;
      } else if (b.sid > goaway_last) {  // the server said it will not process it
        b.kind = BlockKind::kIgnore;
        ++stats.goaway_refused;
        highest_sid = std::max(highest_sid, b.sid);
      } else if (b.sid > highest_sid) {
        b.kind = BlockKind::kRequest;
        highest_sid = b.sid;
      } else {
        b.kind = BlockKind::kIgnore;
        ++stats.untracked_header_blocks;
      }
    } else if (b.sid % 2 == 0) {
      b.kind = BlockKind::kIgnore;  // a pushed response
    } else if (it != streams.end()) {
      b.kind = it->second.response_started ? BlockKind::kTrailers : BlockKind::kResponse;
    } else {
      b.kind = BlockKind::kIgnore;
      ++stats.untracked_header_blocks;
    }
  }

  void OnField(Block& b, std::string_view name, std::string_view value) {
    if (b.kind != BlockKind::kRequest && b.kind != BlockKind::kResponse) return;
    if (b.truncated) return;
    b.bytes += name.size() + value.size() + kHeaderEntryOverhead;
    if (b.bytes > opt.max_header_list_bytes) {
      b.truncated = true;
      ++stats.header_lists_truncated;
      return;
    }
    if (b.kind == BlockKind::kRequest) {
      HttpRequest& r = b.req;
      if (name == ":method") {
        if (!b.has_method) r.method.assign(value);
        b.has_method = true;
      } else if (name == ":path") {
        if (!b.has_path) r.target.assign(value);
        b.has_path = true;
      } else if (name == ":authority" || name.empty() || name[0] != ':') {
        if (r.headers.empty()) r.headers.reserve(16);
        r.headers.emplace_back(name, value);
      }
    } else {
      HttpResponse& r = b.resp;
      if (name == ":status") {
        if (r.status == 0 && value.size() == 3 && value[0] >= '1' && value[0] <= '9' &&
            value[1] >= '0' && value[1] <= '9' && value[2] >= '0' && value[2] <= '9')
          r.status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
      } else if ((name.empty() || name[0] != ':') && opt.keep_response_headers) {
        if (r.headers.empty()) r.headers.reserve(16);
        r.headers.emplace_back(name, value);
      }
    }
  }

  // `own_limit`: the block went over one of our limits, not against the protocol.
  void BlockFailed(Side& s, bool own_limit) {
    s.block.failed = true;
    // From a client followed exactly, a malformed block is a connection error for the server
    // (COMPRESSION_ERROR): this request and later ones are reported only if it answers them.
    // Not a loss of ours (not in hpack_errors): counted in request_errors.
    if (s.request && s.hpack_exact && !own_limit)
      RequestError("malformed header block");
    else
      ++stats.hpack_errors;
    s.hpack_exact = false;  // a fresh table from here: misses are no longer the client's fault
    s.hpack.Reset(opt.max_hpack_table_bytes);
    s.hblock.clear();
  }

  // Gathers a fragment piece of the header block; `final` (END_HEADERS) decodes the block.
  void Inflate(Side& s, const uint8_t* in, size_t n, bool final) {
    Block& b = s.block;
    if (b.failed || dead) return;
    if (n > kMaxHeaderBlock - std::min(kMaxHeaderBlock, s.hblock.size())) {
      s.hblock.clear();
      BlockFailed(s, true);  // the rest of the block is skipped
      return;
    }
    s.hblock.append(reinterpret_cast<const char*>(in), n);
    if (!final) return;
    const bool ok = s.hpack.Decode(
        reinterpret_cast<const uint8_t*>(s.hblock.data()), s.hblock.size(),
        [&](std::string_view name, std::string_view value) { OnField(b, name, value); });
    if (s.hblock.capacity() > 16 * 1024)
      std::string().swap(s.hblock);  // a large block leaves no large buffer behind
    else
      s.hblock.clear();
    if (!ok) BlockFailed(s, s.hpack.failure() == HpackDecoder::Failure::kOverLimit);
  }

  // A new stream over max_streams: the oldest one whose final response was seen ends first
  // (reported with its status, incomplete); when none has one, the new stream is the one given
  // up, reported at once without a response (incomplete; streams.end() is returned). Servers
  // serve the oldest streams and refuse the newest over their own limits (nginx: 2 x 128 new
  // streams a read, Go: 250 open): the answers still coming are the oldest streams'.
  StreamIt NewStream(Block& b, uint64_t ts) {
    bool over = false;
    while (streams.size() - reset_waiting >= opt.max_streams) {
      auto answered = streams.begin();
      while (answered != streams.end() &&
             (answered->second.client_reset || !answered->second.response_started))
        ++answered;
      ++stats.dropped_streams;
      if (answered == streams.end()) {
        over = true;
        break;
      }
      EndStream(answered, true, kNoteCap);
    }
    Stream& st = stitcher.Admit(b.sid);
    st.ex.request = std::move(b.req);
    HttpRequest& r = st.ex.request;
    r.version_major = 2;
    r.version_minor = 0;
    r.first_byte_ns = b.first_ts;
    r.headers_done_ns = ts;
    st.ex.incomplete = b.failed || b.truncated;
    st.depends_on = req_error ? 1 : 0;
    ++stats.requests;
    auto it = streams.find(b.sid);
    if (over) {
      st.ex.incomplete = true;
      Finish(it, ExchangeEvent::kNoResponse, kNoteCap);  // a suspect one: not reported, counted
      return streams.end();
    }
    Charge(it, std::min(b.bytes, opt.max_header_list_bytes));
    return it;
  }

  // The block ended (END_HEADERS, or abandoned with `failed` set).
  void FinishBlock(Side& s, uint64_t ts) {
    Block& b = s.block;
    b.active = false;
    switch (b.kind) {
      case BlockKind::kIgnore:
        break;
      case BlockKind::kRequest: {
        // A block that decoded with no :method is not a request's start (trailers of a
        // stream we did not see): nothing to report. One that failed before its :method may
        // still be a request: it is reported, incomplete, with what was decoded.
        if (!b.failed && !b.truncated && !b.has_method) {
          ++stats.untracked_header_blocks;
          break;
        }
        if (b.sid > goaway_last) {  // a GOAWAY came while the block was gathered
          ++stats.goaway_refused;
          break;
        }
        auto it = NewStream(b, ts);
        if (b.end_stream && it != streams.end()) RequestDone(it, ts);
        break;
      }
      case BlockKind::kTrailers: {
        auto it = streams.find(b.sid);
        if (it == streams.end() || !b.end_stream) break;
        if (s.request)
          RequestDone(it, ts);
        else
          ResponseDone(it, ts);
        break;
      }
      case BlockKind::kResponse: {
        auto it = streams.find(b.sid);
        if (it == streams.end()) break;
        Stream& st = it->second;
        HttpResponse& r = b.resp;
        if (r.status == 0) {  // undecodable (or malformed): status unknown
          st.ex.incomplete = true;
        } else if (r.status < 200) {
          ++stats.interim_responses;
          if (b.failed || b.truncated) st.ex.incomplete = true;
        } else {
          ++stats.responses;
          st.response_started = true;
          if (b.failed || b.truncated) st.ex.incomplete = true;
          r.version_major = 2;
          r.version_minor = 0;
          r.first_byte_ns = b.first_ts;
          r.headers_done_ns = ts;
          st.ex.response = std::move(r);
          Charge(it, std::min(b.bytes, opt.max_header_list_bytes));
          stitcher.ResponseStarted(st, *st.ex.response);
        }
        if (b.end_stream) ResponseDone(it, ts);
        break;
      }
    }
    b.req = HttpRequest{};
    b.resp = HttpResponse{};
  }

  // ---- frames ----

  void BeginFrame(Side& s, uint64_t ts) {
    s.fh = ParseHeader(s.hdr);
    const FrameHeader& h = s.fh;
    ++stats.frames;
    const char* why = CheckHeader(h, s.request);
    if (why == nullptr && s.block.active && (h.type != kContinuation || h.sid != s.block.sid))
      why = "header block interrupted";
    if (why == nullptr && !s.block.active && h.type == kContinuation)
      why = "CONTINUATION without a header block";
    if (why != nullptr) {
      ProtocolError(s, why, ts, s.hdr + 1, kFrameHeaderLen - 1);
      return;
    }
    if (!KnownType(h.type)) ++stats.unknown_frames;
    s.prefix_need = PrefixLen(h);
    s.prefix_have = 0;
    s.content_left = 0;
    s.pad_left = 0;
    s.unit_have = 0;
    s.phase = Phase::kPrefix;
  }

  void AfterPrefix(Side& s, uint64_t ts) {
    const FrameHeader& h = s.fh;
    size_t rest = h.len - s.prefix_need;
    if (Padded(h)) {
      const size_t pad = s.prefix[0];
      if (pad > rest && h.type == kHeaders && s.request && s.exact) {
        // The servers differ: Go's net/http resets that stream (a stream error) and reads on,
        // nginx ends the connection. The frame's length still delimits it: it is skipped
        // undecoded (Go decodes none of it either), and the requests after it are reported
        // only if the server answers them.
        RequestError("HEADERS padding longer than the payload");
        s.block = Block{};
        s.block.failed = true;  // its content is not gathered; FrameDone ends nothing
        s.content_left = rest;
        s.phase = Phase::kContent;
        return;
      }
      if (pad > rest) {
        ProtocolError(s, "padding longer than the payload", ts);
        return;
      }
      s.pad_left = pad;
      rest -= pad;
    }
    s.content_left = rest;
    s.phase = Phase::kContent;
    switch (h.type) {
      case kHeaders:
      case kPushPromise:
        StartBlock(s);
        break;
      case kRstStream:
        Reset(s, h.sid, ReadU32(s.prefix));
        break;
      case kGoaway: {
        if (s.request) break;  // the client's GOAWAY concerns pushed streams only
        const uint32_t last = ReadU32(s.prefix) & 0x7fffffffu;
        if (ReadU32(s.prefix + 4) != 0) server_error = true;
        goaway_last = std::min(goaway_last, last);
        // Streams above it were not processed and never will be: no line (counted).
        for (auto it = streams.upper_bound(last); it != streams.end();) {
          auto next = std::next(it);
          ++stats.goaway_refused;
          if (it->second.response_started)
            EndStream(it, false);
          else
            Drop(it);
          it = next;
        }
        break;
      }
      default:
        break;
    }
  }

  // RST_STREAM. From the server: REFUSED_STREAM before any response means the request was not
  // processed (RFC 9113 section 8.7): no line (counted); any other code ends the stream. From
  // the client before the final response: the server may have acted on the request and may
  // still answer it (nginx sends what it had queued): the stream waits for its word.
  void Reset(Side& s, uint32_t sid, uint32_t code) {
    constexpr uint32_t kRefusedStream = 0x7;
    auto it = streams.find(sid);
    if (it == streams.end()) return;
    Stream& st = it->second;
    ++stats.resets;
    if (!s.request) {
      if (st.response_started) {
        EndStream(it, false);
      } else if (code == kRefusedStream) {
        ++stats.refused_streams;
        Drop(it);
      } else {
        Finish(it, ExchangeEvent::kNoResponse, kNoteServerReset);
      }
      return;
    }
    if (st.response_started) {  // e.g. a watch cancelled: the response is what it is
      EndStream(it, false);
      return;
    }
    if (st.client_reset) return;
    st.client_reset = true;
    st.req_frozen = true;
    ++reset_waiting;
    while (reset_waiting > opt.max_reset_streams) {
      auto oldest = streams.begin();
      while (!oldest->second.client_reset) ++oldest;  // there is one: reset_waiting > 0
      ++stats.reset_streams_dropped;
      EndStream(oldest, true, kNoteClientReset);
    }
  }

  void Content(Side& s, const uint8_t* p, size_t n) {
    const FrameHeader& h = s.fh;
    switch (h.type) {
      case kData: {
        auto it = streams.find(h.sid);
        if (it == streams.end()) break;
        Stream& st = it->second;
        if (s.request) {
          if (st.request_done) break;
          HttpRequest& r = st.ex.request;
          KeepBody(it, r.body, r.body_size, r.body_truncated, p, n, st.req_frozen);
        } else if (st.response_started) {
          HttpResponse& r = *st.ex.response;
          KeepBody(it, r.body, r.body_size, r.body_truncated, p, n, st.resp_frozen);
        }
        break;
      }
      case kHeaders:
      case kPushPromise:
      case kContinuation:
        Inflate(s, p, n, false);
        break;
      case kSettings:
        for (size_t i = 0; i < n; ++i) {
          s.unit[s.unit_have++] = p[i];
          if (s.unit_have < sizeof s.unit) continue;
          s.unit_have = 0;
          const uint16_t id = static_cast<uint16_t>((s.unit[0] << 8) | s.unit[1]);
          if (id != kSettingsHeaderTableSize) continue;
          const uint32_t value = ReadU32(s.unit + 2);
          if (value > opt.max_hpack_table_bytes) ++stats.table_size_over_limit;
          // The server's limit for the client's encoder (the response side stays lenient): the
          // largest it ever allowed, since a client may still use a larger one it was allowed
          // until it sees a decrease.
          Side& req = SideOf(Direction::kRequest);
          if (!s.request && req.exact && value > server_table_limit) {
            server_table_limit = value;
            req.hpack.SetProtocolLimit(value);
          }
        }
        break;
      default:
        break;
    }
  }

  void FrameDone(Side& s, uint64_t ts) {
    const FrameHeader& h = s.fh;
    s.phase = Phase::kHeader;
    switch (h.type) {
      case kData: {
        if ((h.flags & kFlagEndStream) == 0) break;
        auto it = streams.find(h.sid);
        if (it == streams.end()) break;
        if (s.request)
          RequestDone(it, ts);
        else
          ResponseDone(it, ts);
        break;
      }
      case kHeaders:
      case kPushPromise:
      case kContinuation:
        if ((h.flags & kFlagEndHeaders) == 0) break;
        static constexpr uint8_t kNothing = 0;
        Inflate(s, &kNothing, 0, true);
        if (!dead) FinishBlock(s, ts);
        break;
      default:
        break;
    }
  }

  // Runs the transitions that need no more bytes.
  void Settle(Side& s, uint64_t ts) {
    while (s.mode == Mode::kSynced && !dead) {
      if (s.phase == Phase::kPrefix && s.prefix_have == s.prefix_need) {
        AfterPrefix(s, ts);
      } else if (s.phase == Phase::kContent && s.content_left == 0) {
        s.phase = Phase::kPadding;
      } else if (s.phase == Phase::kPadding && s.pad_left == 0) {
        FrameDone(s, ts);
        return;
      } else {
        return;
      }
    }
  }

  // Consumes synchronised bytes; returns how many were used (all, unless the direction left
  // kSynced or the connection died).
  size_t FeedSynced(Side& s, const uint8_t* p, size_t n, uint64_t ts) {
    size_t i = 0;
    while (i < n && s.mode == Mode::kSynced && !dead) {
      switch (s.phase) {
        case Phase::kHeader: {
          if (s.hdr_have == 0) s.frame_ts = ts;
          const size_t take = std::min(kFrameHeaderLen - s.hdr_have, n - i);
          std::memcpy(s.hdr + s.hdr_have, p + i, take);
          s.hdr_have += take;
          i += take;
          if (s.hdr_have < kFrameHeaderLen) break;
          s.hdr_have = 0;
          BeginFrame(s, ts);
          Settle(s, ts);
          break;
        }
        case Phase::kPrefix: {
          const size_t take = std::min(s.prefix_need - s.prefix_have, n - i);
          std::memcpy(s.prefix + s.prefix_have, p + i, take);
          s.prefix_have += take;
          i += take;
          Settle(s, ts);
          break;
        }
        case Phase::kContent: {
          const size_t take = std::min(s.content_left, n - i);
          s.content_left -= take;
          Content(s, p + i, take);
          i += take;
          Settle(s, ts);
          break;
        }
        case Phase::kPadding: {
          const size_t take = std::min(s.pad_left, n - i);
          s.pad_left -= take;
          i += take;
          Settle(s, ts);
          break;
        }
      }
    }
    return i;
  }

  // ---- resynchronisation ----

  enum class Verdict : uint8_t { kNo, kYes, kWait };

  static Verdict Candidate(const Side& s, const uint8_t* d, size_t size, size_t p,
                           bool at_call_end) {
    const FrameHeader h = ParseHeader(d + p);
    if (!PlausibleStart(h, s.request)) return Verdict::kNo;
    if (Padded(h) && p + kFrameHeaderLen < size &&
        size_t{d[p + kFrameHeaderLen]} > h.len - PrefixLen(h))
      return Verdict::kNo;
    const size_t end = p + kFrameHeaderLen + h.len;
    if (end + kFrameHeaderLen <= size)
      return PlausibleNext(h, ParseHeader(d + end), s.request) ? Verdict::kYes : Verdict::kNo;
    if (end == size && at_call_end && !NeedsContinuation(h)) return Verdict::kYes;
    return Verdict::kWait;  // needs at most kProofMax bytes from p
  }

  // Scans `hold` for a frame start: true with *pos, or false with scan_pos at the first
  // undecided position (the rest waits for more bytes).
  bool Scan(Side& s, bool at_call_end, size_t* pos) {
    const auto* d = reinterpret_cast<const uint8_t*>(s.hold.data());
    const size_t size = s.hold.size();
    size_t p = s.scan_pos;
    for (; p + kFrameHeaderLen <= size; ++p) {
      // Quick rejections first: length over kResyncMaxLen (0x100000), CONTINUATION or
      // unknown type, R bit set.
      if (d[p] > 0x10 || d[p + 3] >= kContinuation || (d[p + 5] & 0x80) != 0) continue;
      const Verdict v = Candidate(s, d, size, p, at_call_end);
      if (v == Verdict::kYes) {
        *pos = p;
        return true;
      }
      if (v == Verdict::kWait) break;
    }
    s.scan_pos = p;
    return false;
  }

  void ScanAndFeed(Side& s, uint64_t ts, bool at_call_end) {
    while (s.mode == Mode::kUnsynced && !dead) {
      size_t pos = 0;
      if (!Scan(s, at_call_end, &pos)) return;
      stats.skipped_bytes += pos;
      s.scratch.swap(s.hold);
      s.hold.clear();
      s.scan_pos = 0;
      s.mode = Mode::kSynced;
      s.phase = Phase::kHeader;
      s.hdr_have = 0;
      const auto* d = reinterpret_cast<const uint8_t*>(s.scratch.data());
      const size_t used = FeedSynced(s, d + pos, s.scratch.size() - pos, ts);
      if (s.mode == Mode::kUnsynced && !dead)  // lost again: rescan what is left
        s.hold.append(s.scratch, pos + used, std::string::npos);
      s.scratch.clear();
    }
  }

  // ---- public entry points ----

  void OnData(Direction dir, std::string_view bytes, uint64_t ts) override {
    if (closed || dead) return;
    Side& s = SideOf(dir);
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    size_t n = bytes.size();
    while (n > 0 && !dead) {
      switch (s.mode) {
        case Mode::kPreface:
        case Mode::kMaybePreface: {
          while (n > 0 && s.preface_have < kHttp2Preface.size() &&
                 static_cast<char>(*p) == kHttp2Preface[s.preface_have]) {
            ++s.preface_have;
            ++p;
            --n;
          }
          if (s.preface_have == kHttp2Preface.size()) {
            s.mode = Mode::kSynced;
            if (!s.exact) s.hpack.SetProtocolLimit(4096);
            s.exact = true;
            s.hpack_exact = true;
          } else if (n > 0) {  // mismatch
            if (s.mode == Mode::kPreface) {
              Fatal("no client connection preface");
              break;
            }
            s.mode = Mode::kUnsynced;
            s.hold.assign(kHttp2Preface.substr(0, s.preface_have));
            s.scan_pos = 0;
          }
          break;
        }
        case Mode::kSynced: {
          const size_t used = FeedSynced(s, p, n, ts);
          p += used;
          n -= used;
          break;
        }
        case Mode::kUnsynced: {
          // Drop judged bytes once they are at least half of the buffer (moving no more than
          // is dropped). The undecided rest is shorter than kProofMax, so room remains.
          if (s.scan_pos > 0 && s.scan_pos >= s.hold.size() / 2) {
            stats.skipped_bytes += s.scan_pos;
            s.hold.erase(0, s.scan_pos);
            s.scan_pos = 0;
          }
          if (s.hold.size() >= kHoldMax) {  // (cannot happen, see above)
            stats.skipped_bytes += s.hold.size();
            s.hold.clear();
            s.scan_pos = 0;
          }
          const size_t take = std::min(n, kHoldMax - s.hold.size());
          s.hold.append(reinterpret_cast<const char*>(p), take);
          p += take;
          n -= take;
          ScanAndFeed(s, ts, n == 0);
          break;
        }
        case Mode::kStopped:
          n = 0;
          break;
      }
    }
    Flush();
  }

  void OnGap(Direction dir, uint64_t missing, uint64_t ts) override {
    if (closed || dead) return;
    Side& s = SideOf(dir);
    switch (s.mode) {
      case Mode::kUnsynced:
        // Held bytes and the next ones are not contiguous: nothing held can be proven.
        stats.skipped_bytes += s.hold.size();
        s.hold.clear();
        s.scan_pos = 0;
        break;
      case Mode::kSynced:
        if (missing != 0 && s.fh.type == kData &&
            (s.phase == Phase::kContent || s.phase == Phase::kPadding) &&
            missing <= uint64_t{s.content_left} + s.pad_left) {
          // Inside the payload of the DATA frame in progress: only body bytes are lost.
          ++stats.gaps_skipped_in_body;
          const size_t body = static_cast<size_t>(std::min<uint64_t>(missing, s.content_left));
          auto it = streams.find(s.fh.sid);
          if (body > 0 && it != streams.end()) {
            Stream& st = it->second;
            if (s.request && !st.request_done) {
              st.req_frozen = true;
              st.ex.request.body_size += body;
              st.ex.request.body_truncated = true;
            } else if (!s.request && st.response_started) {
              st.resp_frozen = true;
              st.ex.response->body_size += body;
              st.ex.response->body_truncated = true;
            }
          }
          s.content_left -= body;
          s.pad_left -= static_cast<size_t>(missing - body);
          Settle(s, ts);
          break;
        }
        Desync(s, ts);
        break;
      case Mode::kPreface:
      case Mode::kMaybePreface:
        s.mode = Mode::kSynced;  // (for Desync's bookkeeping)
        Desync(s, ts);
        break;
      case Mode::kStopped:
        break;
    }
    Flush();
  }

  void OnClose(uint64_t ts) override {
    if (closed) return;
    closed = true;
    if (!dead) {
      for (Side& s : sides) {
        if (!s.block.active) continue;
        if (s.request && s.block.kind == BlockKind::kRequest) {
          // The server never read the whole block (a capture loss would have been a gap): it
          // could not have processed the request. Not a line.
          ++stats.untracked_header_blocks;
          s.block = Block{};
          continue;
        }
        s.block.failed = true;  // the rest of the block never came
        FinishBlock(s, ts);
      }
      // Every stream left, in order: with its response, or none (suspect ones: not reported).
      const size_t dropped = stitcher.Close([this](const Stream& st) { return NoteFor(st); });
      stats.unanswered_after_error += dropped;
      stats.unreported_streams += dropped;
      reset_waiting = 0;
      for (Side& s : sides) {
        s.hpack.Reset(opt.max_hpack_table_bytes);
        std::string().swap(s.hblock);
        std::string().swap(s.hold);
        std::string().swap(s.scratch);
      }
    }
    Flush();
  }

  void AddStats(Http1Stats* /*h1*/, Http2Stats* h2) const override { *h2 += stats; }

  void Expire(uint64_t complete_before_ns) override {
    if (closed || dead) return;
    stitcher.Expire(complete_before_ns);
    Flush();
  }
};

Http2Connection::Http2Connection(Http2Options options, Sink sink, bool at_start)
    : HttpConnection(std::make_unique<Impl>(std::move(options), std::move(sink), at_start)) {}

bool Http2Connection::failed() const { return static_cast<const Impl&>(*engine_).dead; }

const Http2Stats& Http2Connection::stats() const {
  return static_cast<const Impl&>(*engine_).stats;
}

}  // namespace mat::http
