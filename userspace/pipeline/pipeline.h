// From raw tap records to audit lines: decode -> connections -> HTTP -> audit policy -> line.
// The same object serves the live tap and --replay, so replay tests cover the whole path.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "audit/policy.h"
#include "capture/event_decoder.h"
#include "capture/recorder.h"
#include "conn/connection_tracker.h"
#include "identity/identify.h"
#include "identity/local_peer.h"
#include "output/line_sink.h"
#include "output/mke_line.h"
#include "util/result.h"

namespace mat::pipeline {

enum class OutputFormat { kMke, kK8s };

struct PipelineConfig {
  audit::PolicyConfig policy;
  conn::TrackerOptions tracker;
  std::string license_key;
  OutputFormat format = OutputFormat::kMke;
  // Also write a RequestReceived line for every request as soon as it is complete (as the
  // Kubernetes audit does by default); its later lines carry the same auditID.
  bool every_request_received = false;
  // A request with no response this long after it was complete is written at
  // RequestReceived (0: only when its connection ends). Its response, if it comes, is
  // written later with the same auditID.
  uint64_t response_timeout_ns = 60'000'000'000ull;
  output::LineOptions line;  // the line size cap (default 16383 bytes)
  // Who made each request: token cache, user map (see identity/identify.h).
  identity::IdentityOptions identity;
  // Local socket peers whose calls are counted, not written (--local-socket-ignore).
  std::vector<std::string> local_socket_ignore;
};

// The annotations the pipeline writes (keys in audit/policy_tables.h).
using audit::kImpersonatedGroupsAnnotation;
using audit::kImpersonatedUserAnnotation;
using audit::kUserIdentifiedByAnnotation;

struct PipelineStats {
  uint64_t records = 0;
  uint64_t bad_records = 0;
  uint64_t lines = 0;
  uint64_t not_audited = 0;  // exchanges the policy skipped (ignored paths)
  // lines by the level they were written at (audit::Level) and kind (0: docker-swarm,
  // 1: kubernetes)
  uint64_t lines_by[3][2] = {};
  uint64_t local_connections = 0;    // local socket connections seen (TAP_EV_LOCAL_SOCK)
  uint64_t local_ignored_calls = 0;  // their calls not written: --local-socket-ignore
  uint64_t local_peer_exited = 0;    // local peers gone before their facts could be read
};

// Finds the side and peer of a socket the tap did not see being set up (live mode: /proc).
// Returns a TAP_EV_SOCK record with hdr.tid == 0, or nullopt when nothing is known.
using SocketResolver = std::function<std::optional<tap_sock>(uint32_t tgid, int32_t fd)>;
// Decides the side of a socket the tap first met inside a TLS call (TAP_ROLE_UNKNOWN with its
// local port): true when the port is a listening one, i.e. the target accepted it.
using SideResolver = std::function<bool(uint32_t tgid, uint16_t local_port)>;

// Completes a local socket's peer from the live system (/proc: comm, container).
using LocalPeerResolver = std::function<void(identity::LocalPeer* peer)>;

struct Resolvers {
  SocketResolver socket;  // live mode only; replays use what the recording says
  SideResolver side;
  LocalPeerResolver local_peer;  // live mode only; replays name the uid only
};

class Pipeline {
 public:
  Pipeline(PipelineConfig config, capture::ClockMap clock, output::LineSink* sink,
           capture::Recorder* recorder, Resolvers resolvers);

  // Whether the pipeline's identity layer started, or why not (an unreadable or broken user
  // map: lines are still written, without the map, until the file is fixed).
  const Status& started() const { return started_; }

  void OnRecord(const void* bytes, size_t size);
  void OnProcessExit(uint32_t tgid, uint64_t wall_ns) {
    tracker_.OnProcessExit(tgid, wall_ns);
    identity_.OnProcessExit(tgid);
    for (auto it = local_peers_.lower_bound({tgid, 0});
         it != local_peers_.end() && it->first.first == tgid;)
      it = local_peers_.erase(it);
  }
  // The client certificate (DER, or a DER chain) of the TLS connection `tls_conn` (the SSL*
  // of the records) of process `tgid`, or the fact that its handshake presented none; to be
  // reported after the handshake, before the connection's data. The connection's end (its
  // TAP_EV_CONN_END record) or its process's exit forgets it.
  void OnClientCertificate(uint32_t tgid, uint64_t tls_conn, std::string_view der) {
    identity_.OnClientCertificate({tgid, tls_conn}, der);
  }
  void OnNoClientCertificate(uint32_t tgid, uint64_t tls_conn) {
    identity_.OnNoClientCertificate({tgid, tls_conn});
  }
  void CloseIdle(uint64_t idle_before_wall_ns, uint64_t now_wall_ns) {
    tracker_.CloseIdle(idle_before_wall_ns, now_wall_ns);
  }
  // Ends every connection: requests still waiting are written at stage RequestReceived.
  void Finish(uint64_t now_wall_ns);
  // Periodic work: writes the requests that have waited longer than the response timeout.
  void Tick(uint64_t now_wall_ns);

  // Changes the audit policy (level, ignore list, redaction) at run time: the lines written
  // from now on follow it (the admin API's PUT, a configuration reload).
  void SetPolicy(audit::PolicyConfig policy) {
    config_.policy = std::move(policy);
    policy_ = audit::AuditPolicy(config_.policy);
  }
  void SetLocalSocketIgnore(std::vector<std::string> ignore);
  const std::vector<std::string>& local_socket_ignore() const {
    return config_.local_socket_ignore;
  }
  audit::Level level() const { return config_.policy.level; }
  const audit::PolicyConfig& policy() const { return config_.policy; }

  const PipelineStats& stats() const { return stats_; }
  // The memory caps hit so far, by reason (each cap of issue 13, in a fixed order, zeros
  // included): a request audited early or incomplete, a header list or body cut, a connection
  // ended early, a session token forgotten. For /metrics, the summary and loss notices.
  std::vector<std::pair<std::string_view, uint64_t>> CapsHit() const;
  const conn::ConnectionTracker& tracker() const { return tracker_; }
  const identity::IdentityResolver& identity() const { return identity_; }

 private:
  // Records (to --record) and tracks a record made or amended here.
  void Feed(const void* bytes, size_t size, uint64_t wall_ns);
  void OnExchange(http::HttpExchange&& exchange, http::ExchangeEvent why,
                  const conn::ConnFacts& facts);
  // Fills user_ and the identity annotation for a call on a local socket from `peer`.
  void SetLocalUser(const identity::LocalPeer& peer, audit::AuditRecord& record);
  // Fills user_ (and the identity annotations of `record`) for `request`.
  void SetUser(const http::HttpRequest& request, const conn::ConnFacts& facts,
               audit::AuditRecord& record);
  // `response_note`: the line's mke-audit-tap/response annotation (empty: none), e.g. that no
  // response was seen for a request written without a status.
  void Emit(const http::HttpExchange& exchange, audit::Stage stage, uint64_t stage_ns,
            const conn::ConnFacts& facts, const std::string& audit_id,
            std::string_view response_note = {});
  static conn::TrackerOptions WithStageHooks(conn::TrackerOptions options,
                                             const PipelineConfig& config);
  conn::TrackerOptions WithRestartHook(conn::TrackerOptions options);

  // Requests already written at an earlier stage, by (connection, sequence): their auditID,
  // and whether the line was the long-running kind's only one (ResponseStarted).
  struct Written {
    std::string audit_id;
    bool final = false;
  };
  std::map<std::pair<uint64_t, uint64_t>, Written> written_;
  // Local socket connections by (tgid, socket cookie): who is on the other end.
  void OnLocalSock(const tap_local_sock& record);
  const identity::LocalPeer* LocalPeerOf(const conn::ConnFacts& facts) const;
  std::map<std::pair<uint32_t, uint64_t>, identity::LocalPeer> local_peers_;

  PipelineConfig config_;
  capture::ClockMap clock_;
  output::LineSink* sink_;
  capture::Recorder* recorder_;
  Resolvers resolvers_;
  audit::AuditPolicy policy_;
  identity::IdentityResolver identity_;
  Status started_;
  conn::ConnectionTracker tracker_;
  // Reused line after line, so that their strings keep their storage.
  output::UserFacts user_;
  audit::RequestContext context_;
  audit::AuditRecord record_;
  std::string line_;
  std::map<std::string, std::string>::node_type identified_by_node_;
  PipelineStats stats_;
};

// Wall-clock now, in ns.
uint64_t WallNowNs();

}  // namespace mat::pipeline
