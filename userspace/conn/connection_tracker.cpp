#include "conn/connection_tracker.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "conn/proc_net.h"

namespace mat::conn {

// HTTP/1.1 or HTTP/2, chosen from the first bytes the client sends: the HTTP/2 client preface
// (or, joining mid-connection, a frame header: its length's first byte is 0 where an HTTP/1
// request starts with a method's letter). Bytes wait here, bounded, until that is clear; then
// the connection's HTTP layer (http::HttpConnection) takes everything.
class ConnectionTracker::HttpProtocol {
 public:
  using Sink = http::HttpConnection::Sink;
  HttpProtocol(const http::Http1Options& options, const http::Http2Options& h2options, Sink sink,
               bool from_start)
      : options_(options), h2options_(h2options), sink_(std::move(sink)), from_start_(from_start) {}

  void OnData(http::Direction dir, std::string_view bytes, uint64_t ts) {
    if (conn_) return conn_->OnData(dir, bytes, ts);
    waiting_bytes_ += bytes.size();
    waiting_.push_back({dir, std::string(bytes), ts});
    if (dir == http::Direction::kRequest) request_.append(bytes);
    Decide(waiting_bytes_ > kMaxWaiting);
  }
  void OnGap(http::Direction dir, uint64_t missing, uint64_t ts) {
    if (conn_) return conn_->OnGap(dir, missing, ts);
    Decide(true);  // with a hole, waiting longer tells nothing more
    OnGap(dir, missing, ts);
  }
  void OnClose(uint64_t ts) {
    if (!conn_) Decide(true);
    conn_->OnClose(ts);
  }
  void Expire(uint64_t before) {
    if (conn_) conn_->Expire(before);
  }
  void AddStats(http::Http1Stats* h1, http::Http2Stats* h2) const {
    if (conn_) conn_->AddStats(h1, h2);
  }

 private:
  static constexpr size_t kMaxWaiting = 64 * 1024;
  struct Chunk {
    http::Direction dir;
    std::string bytes;
    uint64_t ts;
  };

  void Decide(bool now) {
    const std::string_view r = request_;
    bool h2 = false, mid_stream = false;
    if (r.empty()) {
      if (!now) return;
    } else if (http::LooksLikeHttp2Preface(r)) {
      if (r.size() < http::kHttp2Preface.size() && !now) return;
      h2 = r.size() >= http::kHttp2Preface.size();
    } else if (r[0] == '\0') {
      if (r.size() < 9 && !now) return;
      h2 = r.size() >= 9 && static_cast<uint8_t>(r[3]) <= 9;
      mid_stream = h2;
    }
    if (h2) {
      http::Http2Options o = h2options_;  // its limits; the rest as for HTTP/1.1
      o.max_body_bytes = options_.max_body_bytes;
      o.report_started = options_.report_started;
      o.report_received = options_.report_received;
      o.keep_response_headers = options_.keep_response_headers;
      conn_ = std::make_unique<http::Http2Connection>(o, sink_, !mid_stream);
    } else {
      conn_ = std::make_unique<http::Http1Connection>(options_, sink_);
      if (from_start_) {
        conn_->MarkStreamStart(http::Direction::kRequest);
        conn_->MarkStreamStart(http::Direction::kResponse);
      }
    }
    std::vector<Chunk> waiting = std::move(waiting_);
    waiting_.clear();
    std::string().swap(request_);  // the decision is made: keep no capacity while idle
    for (Chunk& c : waiting) OnData(c.dir, c.bytes, c.ts);
  }

  http::Http1Options options_;
  const http::Http2Options& h2options_;  // the tracker's, which outlives this
  Sink sink_;
  bool from_start_;
  std::unique_ptr<http::HttpConnection> conn_;  // once the protocol is known
  std::vector<Chunk> waiting_;
  size_t waiting_bytes_ = 0;
  std::string request_;
};

struct ConnectionTracker::Connection {
  ConnFacts facts;
  int32_t fd = -1;
  bool audited = true;
  bool side_known = false;  // the socket's side and peer have been looked up
  bool has_pos[2] = {false, false};
  uint64_t next_pos[2] = {0, 0};
  uint64_t last_wall_ns = 0;
  std::unique_ptr<HttpProtocol> http;
};

namespace {

std::string PeerOf(const tap_sock& sock) {
  Endpoint e;
  e.family = sock.family == AF_INET ? AF_INET : sock.family == AF_INET6 ? AF_INET6 : 0;
  std::memcpy(e.addr, sock.addr, sizeof(e.addr));
  e.port = sock.port;
  return FormatEndpoint(e);
}

}  // namespace

ConnectionTracker::ConnectionTracker(TrackerOptions options, Sink sink)
    : options_(std::move(options)), sink_(std::move(sink)) {}

ConnectionTracker::~ConnectionTracker() = default;

bool ConnectionTracker::NeedsSocketFacts(const capture::Event& event) const {
  if (event.type != TAP_EV_DATA || event.hdr->fd < 0) return false;
  if (!local_.empty() && local_.count({event.hdr->tgid, event.hdr->conn}) != 0) return false;
  // The common case first, with one lookup: a connection whose side and peer are known.
  if (auto known = conns_.find({event.hdr->tgid, event.hdr->conn});
      known != conns_.end() && known->second->side_known && !known->second->facts.source.empty())
    return false;
  auto sock = socks_.find({event.hdr->tgid, event.hdr->fd});
  if (sock != socks_.end() && !sock->second.peer_missing) return false;
  auto it = conns_.find({event.hdr->tgid, event.hdr->conn});
  return it == conns_.end() || !it->second->side_known || it->second->facts.source.empty();
}

void ConnectionTracker::OnEvent(const capture::Event& event, uint64_t wall_ns) {
  const tap_hdr& h = *event.hdr;
  switch (event.type) {
    case TAP_EV_DATA:
      OnData(event, wall_ns);
      break;
    case TAP_EV_SOCK: {
      SockInfo& info = socks_[{h.tgid, h.fd}];
      const bool from_proc = h.tid == 0;  // records synthesised from /proc carry tid 0
      if (from_proc && info.peer_missing) {
        // Completes a live record that knew the side but not the peer.
        info.peer = PeerOf(*event.sock);
        info.peer_missing = false;
        break;
      }
      info.role = event.sock->role;
      info.peer = PeerOf(*event.sock);
      info.accepted_live = !from_proc;
      info.peer_missing = !from_proc && info.peer.empty();
      break;
    }
    case TAP_EV_FD_CLOSE: {
      socks_.erase({h.tgid, h.fd});
      for (auto it = conns_.lower_bound({h.tgid, 0});
           it != conns_.end() && it->first.first == h.tgid;) {
        auto next = std::next(it);
        if (it->second->fd == h.fd) Close(it, wall_ns);
        it = next;
      }
      break;
    }
    case TAP_EV_CONN_END: {
      if (!local_.empty()) local_.erase({h.tgid, h.conn});
      auto it = conns_.find({h.tgid, h.conn});
      if (it == conns_.end()) break;
      Connection& c = *it->second;
      // Bytes moved after the last delivered record (a truncated or lost tail) are a gap.
      const uint64_t end_pos[2] = {event.end->read_pos, event.end->write_pos};
      for (int dir = 0; dir < 2; ++dir) {
        if (c.has_pos[dir] && end_pos[dir] > c.next_pos[dir] && c.audited) {
          ++stats_.gaps;
          stats_.gap_bytes += end_pos[dir] - c.next_pos[dir];
        }
      }
      Close(it, wall_ns);
      break;
    }
    default:
      break;
  }
}

bool ConnectionTracker::LearnSocket(Connection* c, int32_t fd) {
  if (fd < 0) return false;
  auto sock = socks_.find({c->facts.tgid, fd});
  if (sock == socks_.end()) return false;
  if (c->side_known) {
    if (c->facts.source.empty()) c->facts.source = sock->second.peer;  // completed later
    return false;
  }
  // The first SSL call on a connection may make no syscall (its bytes were buffered during
  // the handshake), so the socket, and with it the peer, can become known only later.
  c->side_known = true;
  c->facts.source = sock->second.peer;
  if (sock->second.role == TAP_ROLE_UNKNOWN) {
    ++stats_.unknown_side;
  } else if (sock->second.role == TAP_ROLE_CLIENT) {
    c->audited = false;
    c->http.reset();
    ++stats_.client_side_skipped;
  }
  return sock->second.accepted_live;
}

ConnectionTracker::Connection* ConnectionTracker::Open(const ConnKey& key, const tap_data& data,
                                                       uint64_t wall_ns) {
  if (conns_.size() >= std::max<size_t>(options_.max_connections, 1)) {
    // Full: end the connection idle longest (a scan, only ever at the cap).
    auto oldest = conns_.begin();
    for (auto it = conns_.begin(); it != conns_.end(); ++it)
      if (it->second->last_wall_ns < oldest->second->last_wall_ns) oldest = it;
    ++stats_.connections_evicted;
    Close(oldest, wall_ns);
  }
  auto conn = std::make_unique<Connection>();
  Connection* c = conn.get();
  c->facts.tgid = key.first;
  c->facts.tls_conn = key.second;
  c->facts.conn_id = next_conn_id_++;
  c->fd = data.hdr.fd;
  ++stats_.connections_opened;
  bool accepted_live = false;
  if (auto local = local_.find(key); local != local_.end()) {
    // The kernel sent the socket's facts first; the stream may predate the auditor, so the
    // parser synchronises on the first message start.
    c->side_known = true;
    c->facts.source = local->second;
  } else {
    accepted_live = LearnSocket(c, data.hdr.fd);
  }
  if (!c->audited) return conns_.emplace(key, std::move(conn)).first->second.get();
  // Facts are read when an exchange is reported, so a peer learnt later still appears.
  // Streams seen from their first byte need no resynchronisation scan.
  c->http = std::make_unique<HttpProtocol>(
      options_.http, options_.http2,
      [this, c](http::HttpExchange&& exchange, http::ExchangeEvent why) {
        sink_(std::move(exchange), why, c->facts);
      },
      accepted_live && data.pos == 0 && data.offset == 0);
  return conns_.emplace(key, std::move(conn)).first->second.get();
}

void ConnectionTracker::OnData(const capture::Event& event, uint64_t wall_ns) {
  const tap_data& d = *event.data;
  ConnKey key{d.hdr.tgid, d.hdr.conn};
  const int dir = d.dir & 1;
  auto it = conns_.find(key);
  if (it != conns_.end() && it->second->has_pos[dir] && d.pos < it->second->next_pos[dir] &&
      d.offset == 0) {
    // The stream position went back: the SSL* was reused for a new connection whose end we
    // did not see (a lost record). Finish the old one first.
    ++stats_.restarts;
    Close(it, wall_ns);
    it = conns_.end();
    if (options_.on_restart) options_.on_restart(key.first, key.second);
  }
  Connection* c = it != conns_.end() ? it->second.get() : Open(key, d, wall_ns);
  c->last_wall_ns = wall_ns;
  if (d.hdr.fd >= 0) {
    c->fd = d.hdr.fd;
    // Nothing left to learn about a connection whose side and peer are known.
    if (!c->side_known || c->facts.source.empty()) LearnSocket(c, d.hdr.fd);
  }
  if (!c->audited) return;

  // Orientation: the target is the server, so what it reads is the request stream.
  const auto stream = dir == TAP_DIR_READ ? http::Direction::kRequest : http::Direction::kResponse;
  std::string_view bytes = event.payload;
  uint64_t pos = d.pos;
  if (c->has_pos[dir]) {
    if (pos > c->next_pos[dir]) {
      ++stats_.gaps;
      stats_.gap_bytes += pos - c->next_pos[dir];
      c->http->OnGap(stream, pos - c->next_pos[dir], wall_ns);
    } else if (pos < c->next_pos[dir]) {
      uint64_t overlap = c->next_pos[dir] - pos;  // already delivered: skip it
      if (overlap >= bytes.size()) return;
      bytes.remove_prefix(overlap);
      pos += overlap;
    }
  }
  c->has_pos[dir] = true;
  c->next_pos[dir] = pos + bytes.size();
  if (!bytes.empty()) c->http->OnData(stream, bytes, wall_ns);
}

void ConnectionTracker::Close(std::map<ConnKey, std::unique_ptr<Connection>>::iterator it,
                              uint64_t wall_ns) {
  std::unique_ptr<Connection> conn = std::move(it->second);
  conns_.erase(it);
  ++stats_.connections_closed;
  if (conn->http) {
    conn->http->OnClose(wall_ns);
    conn->http->AddStats(&closed_http_stats_, &closed_http2_stats_);
  }
}

void ConnectionTracker::OnLocalSocket(uint32_t tgid, uint64_t conn, const std::string& path) {
  local_[{tgid, conn}] = path;
  if (auto it = conns_.find({tgid, conn}); it != conns_.end()) {
    it->second->side_known = true;
    it->second->facts.source = path;
  }
}

void ConnectionTracker::OnProcessExit(uint32_t tgid, uint64_t wall_ns) {
  for (auto it = local_.lower_bound({tgid, 0}); it != local_.end() && it->first.first == tgid;)
    it = local_.erase(it);
  for (auto it = conns_.lower_bound({tgid, 0}); it != conns_.end() && it->first.first == tgid;)
    Close(it++, wall_ns);
  for (auto it = socks_.lower_bound({tgid, INT32_MIN});
       it != socks_.end() && it->first.first == tgid;)
    it = socks_.erase(it);
}

void ConnectionTracker::CloseIdle(uint64_t idle_before_wall_ns, uint64_t now_wall_ns) {
  for (auto it = conns_.begin(); it != conns_.end();) {
    auto next = std::next(it);
    if (it->second->last_wall_ns < idle_before_wall_ns) Close(it, now_wall_ns);
    it = next;
  }
}

void ConnectionTracker::CloseAll(uint64_t now_wall_ns) {
  while (!conns_.empty()) Close(conns_.begin(), now_wall_ns);
}

void ConnectionTracker::ExpireRequests(uint64_t complete_before_wall_ns) {
  // Reports may not change the connection map (the sink only writes lines), so iterating is
  // safe.
  for (auto& [key, conn] : conns_)
    if (conn->http) conn->http->Expire(complete_before_wall_ns);
}

void ConnectionTracker::AddHttpStats(http::Http1Stats* h1, http::Http2Stats* h2) const {
  *h1 += closed_http_stats_;
  *h2 += closed_http2_stats_;
  for (const auto& [key, conn] : conns_)
    if (conn->http) conn->http->AddStats(h1, h2);
}

}  // namespace mat::conn
