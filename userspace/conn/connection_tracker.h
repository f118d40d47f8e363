// Turns tap records into per-connection, position-ordered byte streams and feeds them to the
// HTTP layer. Knows which side of each connection the target is on and who the peer is.
// Pure: no /proc, no clock; the caller supplies socket facts it finds elsewhere as records.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "capture/event_decoder.h"
#include "http/http1.h"
#include "http/http2.h"
#include "util/defaults.h"

namespace mat::conn {

struct TrackerOptions {
  http::Http1Options http;
  // HTTP/2 connections: its limits (max_header_list_bytes, max_streams, max_hpack_table_bytes,
  // max_connection_bytes); bodies and reports as `http` says.
  http::Http2Options http2;
  // Connections followed at most: opening one more first ends the one idle longest (its
  // exchanges are reported, incomplete where they were cut), counted in connections_evicted.
  size_t max_connections = defaults::kMaxConnections;
  // Called when a connection identity (tgid, SSL*) is reused without its end being seen, after
  // the old connection was ended (its last exchanges reported).
  std::function<void(uint32_t tgid, uint64_t tls_conn)> on_restart;
};

struct TrackerStats {
  uint64_t connections_opened = 0;
  uint64_t connections_closed = 0;
  uint64_t client_side_skipped = 0;  // connections not audited: the target is the client
  uint64_t unknown_side = 0;         // sockets whose side could not be found (audited as server)
  uint64_t gaps = 0;                 // holes in a byte stream (lost or truncated records)
  uint64_t gap_bytes = 0;
  uint64_t restarts = 0;             // a connection identity reused without its end being seen
  uint64_t connections_evicted = 0;  // ended early to stay within max_connections
};

// Facts about the connection an exchange came from.
struct ConnFacts {
  uint64_t conn_id = 0;  // unique for the tracker's lifetime
  uint32_t tgid = 0;
  uint64_t tls_conn = 0;  // the records' connection identity within tgid (the SSL*)
  std::string source;     // the peer, "ip:port"; empty when unknown
};

class ConnectionTracker {
 public:
  using Sink = std::function<void(http::HttpExchange&&, http::ExchangeEvent, const ConnFacts&)>;

  ConnectionTracker(TrackerOptions options, Sink sink);
  ~ConnectionTracker();

  // `wall_ns` is the record's time on the wall clock.
  void OnEvent(const capture::Event& event, uint64_t wall_ns);
  // True when a data record refers to a socket whose side and peer are not known yet, so the
  // caller may look them up (in /proc) and feed a TAP_EV_SOCK record first.
  bool NeedsSocketFacts(const capture::Event& event) const;
  // A local (AF_UNIX) connection the target accepted, keyed like its data records (tgid, the
  // socket's cookie): its side is known (server) and its source is the socket's path. Kept
  // until its TAP_EV_CONN_END or its process's exit (an idle close keeps it: more data may come).
  void OnLocalSocket(uint32_t tgid, uint64_t conn, const std::string& path);
  void ForgetLocalSocket(uint32_t tgid, uint64_t conn) { local_.erase({tgid, conn}); }
  bool IsLocal(uint32_t tgid, uint64_t conn) const { return local_.count({tgid, conn}) != 0; }
  // Ends every connection of a process that is gone.
  void OnProcessExit(uint32_t tgid, uint64_t wall_ns);
  // Ends connections without traffic since `idle_before_wall_ns`.
  void CloseIdle(uint64_t idle_before_wall_ns, uint64_t now_wall_ns);
  void CloseAll(uint64_t now_wall_ns);
  // Reports (kRequestTimedOut) requests complete since before `complete_before_wall_ns` that
  // still wait for a response.
  void ExpireRequests(uint64_t complete_before_wall_ns);

  size_t open_connections() const { return conns_.size(); }
  const TrackerStats& stats() const { return stats_; }
  // Adds the HTTP/1.1 and HTTP/2 counters of open and closed connections.
  void AddHttpStats(http::Http1Stats* h1, http::Http2Stats* h2) const;

 private:
  struct SockInfo {
    uint32_t role = TAP_ROLE_UNKNOWN;
    std::string peer;
    bool accepted_live = false;  // its accept/connect was seen: its streams start at byte 0
    bool peer_missing = false;   // seen live without its address: /proc may complete it
  };
  struct Connection;
  class HttpProtocol;
  using ConnKey = std::pair<uint32_t, uint64_t>;  // (tgid, SSL*)
  using SockKey = std::pair<uint32_t, int32_t>;   // (tgid, fd)

  void OnData(const capture::Event& event, uint64_t wall_ns);
  Connection* Open(const ConnKey& key, const tap_data& data, uint64_t wall_ns);
  // Takes the side and peer of fd, when known, into c. Returns whether the socket's
  // accept/connect was seen live.
  bool LearnSocket(Connection* c, int32_t fd);
  void Close(std::map<ConnKey, std::unique_ptr<Connection>>::iterator it, uint64_t wall_ns);

  TrackerOptions options_;
  Sink sink_;
  std::map<ConnKey, std::unique_ptr<Connection>> conns_;
  std::map<SockKey, SockInfo> socks_;
  std::map<ConnKey, std::string> local_;  // local connections: their socket path
  TrackerStats stats_;
  http::Http1Stats closed_http_stats_;
  http::Http2Stats closed_http2_stats_;
  uint64_t next_conn_id_ = 1;
};

}  // namespace mat::conn
