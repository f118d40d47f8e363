#include "pipeline/pipeline.h"

#include <spdlog/spdlog.h>
#include <time.h>

#include "output/k8s_event.h"

namespace mat::pipeline {

namespace {
// The values of audit::kResponseAnnotation the pipeline writes itself.
constexpr std::string_view kNoResponseNote = "none seen";
constexpr std::string_view kNoResponseYetNote = "none seen before the response timeout";
}  // namespace

uint64_t WallNowNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

Pipeline::Pipeline(PipelineConfig config, capture::ClockMap clock, output::LineSink* sink,
                   capture::Recorder* recorder, Resolvers resolvers)
    : config_(std::move(config)),
      clock_(clock),
      sink_(sink),
      recorder_(recorder),
      resolvers_(std::move(resolvers)),
      policy_(config_.policy),
      identity_(config_.identity),
      started_(identity_.Start(WallNowNs())),
      tracker_(
          WithRestartHook(WithStageHooks(config_.tracker, config_)),
          [this](http::HttpExchange&& exchange, http::ExchangeEvent why,
                 const conn::ConnFacts& facts) { OnExchange(std::move(exchange), why, facts); }) {
  user_.license_key = config_.license_key;
}

void Pipeline::OnRecord(const void* bytes, size_t size) {
  ++stats_.records;
  capture::Event event;
  if (auto status = capture::DecodeEvent(bytes, size, &event);
      status != capture::DecodeStatus::kOk) {
    ++stats_.bad_records;
    spdlog::debug("dropping a tap record: {}", capture::DecodeStatusName(status));
    return;
  }
  if (event.type == TAP_EV_CIPHER || event.type == TAP_EV_SECRET ||
      event.type == TAP_EV_SOCK_CLOSE) {
    // The TLS stage (userspace/tls) consumes these; ciphertext and secrets are never recorded.
    ++stats_.bad_records;
    return;
  }
  uint64_t wall = clock_.ToWall(event.hdr->ts_ns);
  if (event.type == TAP_EV_SOCK && event.sock->role == TAP_ROLE_UNKNOWN &&
      event.sock->local_port != 0 && resolvers_.side) {
    // Decided once, live, and recorded with the decision, so a replay needs no /proc.
    tap_sock decided = *event.sock;
    decided.role =
        resolvers_.side(event.hdr->tgid, decided.local_port) ? TAP_ROLE_SERVER : TAP_ROLE_CLIENT;
    Feed(&decided, sizeof(decided), wall);
    return;
  }
  if (resolvers_.socket && tracker_.NeedsSocketFacts(event)) {
    if (auto sock = resolvers_.socket(event.hdr->tgid, event.hdr->fd)) {
      sock->hdr.ts_ns = event.hdr->ts_ns;
      // Recorded before the data record, so a replay sees the same facts in the same order.
      Feed(&*sock, sizeof(*sock), wall);
    }
  }
  if (recorder_) recorder_->Append(bytes, static_cast<uint32_t>(size));
  if (event.type == TAP_EV_LOCAL_SOCK) {
    OnLocalSock(*event.local);
    return;
  }
  if (event.type == TAP_EV_FULL_HANDSHAKE) {
    // A full handshake: no certificate unless a TAP_EV_PEER_CERT for it follows.
    identity_.OnNoClientCertificate({event.hdr->tgid, event.hdr->conn});
    return;
  }
  if (event.type == TAP_EV_PEER_CERT) {
    // The leaf certificate of the handshake, before the connection's first data.
    identity_.OnClientCertificate({event.hdr->tgid, event.hdr->conn}, event.payload);
    return;
  }
  tracker_.OnEvent(event, wall);
  // After the tracker, which writes the connection's last lines with its certificate.
  if (event.type == TAP_EV_CONN_END) {
    identity_.OnConnectionEnd({event.hdr->tgid, event.hdr->conn});
    if (!local_peers_.empty()) local_peers_.erase({event.hdr->tgid, event.hdr->conn});
  }
}

void Pipeline::OnLocalSock(const tap_local_sock& record) {
  identity::LocalPeer peer = identity::LocalPeerFromRecord(record);
  if (resolvers_.local_peer) {
    resolvers_.local_peer(&peer);
  } else {
    static identity::LocalPeerLookup names;  // replay: the uid's name on this host only
    peer.user = names.UserName(peer.uid);
  }
  if (peer.exited) ++stats_.local_peer_exited;
  if (const std::string* entry = identity::MatchLocalIgnore(peer, config_.local_socket_ignore)) {
    peer.ignored = true;
    peer.ignored_by = *entry;
  }
  ++stats_.local_connections;
  spdlog::debug("pid {}: local connection {} from pid {} ({}) uid {} container {}{}",
                record.hdr.tgid, peer.path, peer.pid, peer.comm, peer.uid,
                peer.container_id.empty() ? "-" : peer.container_id,
                peer.ignored ? " (ignored: " + peer.ignored_by + ")" : "");
  // Bounded like the kernel's table: a connection whose end was never seen (its close lost)
  // goes first; cookies grow, so within a process the lowest is the oldest.
  if (local_peers_.size() >= TAP_MAX_CONNS) {
    tracker_.ForgetLocalSocket(local_peers_.begin()->first.first,
                               local_peers_.begin()->first.second);
    local_peers_.erase(local_peers_.begin());
  }
  tracker_.OnLocalSocket(record.hdr.tgid, record.hdr.conn, peer.path);
  local_peers_[{record.hdr.tgid, record.hdr.conn}] = std::move(peer);
}

const identity::LocalPeer* Pipeline::LocalPeerOf(const conn::ConnFacts& facts) const {
  if (local_peers_.empty()) return nullptr;
  auto it = local_peers_.find({facts.tgid, facts.tls_conn});
  return it == local_peers_.end() ? nullptr : &it->second;
}

void Pipeline::SetLocalSocketIgnore(std::vector<std::string> ignore) {
  config_.local_socket_ignore = std::move(ignore);
  for (auto& [key, peer] : local_peers_) {
    const std::string* entry = identity::MatchLocalIgnore(peer, config_.local_socket_ignore);
    peer.ignored = entry != nullptr;
    peer.ignored_by = entry ? *entry : std::string();
  }
}

void Pipeline::Feed(const void* bytes, size_t size, uint64_t wall_ns) {
  capture::Event event;
  if (capture::DecodeEvent(bytes, size, &event) != capture::DecodeStatus::kOk) return;
  if (recorder_) recorder_->Append(bytes, static_cast<uint32_t>(size));
  tracker_.OnEvent(event, wall_ns);
}

void Pipeline::Finish(uint64_t now_wall_ns) {
  tracker_.CloseAll(now_wall_ns);
  sink_->Flush();
}

conn::TrackerOptions Pipeline::WithStageHooks(conn::TrackerOptions options,
                                              const PipelineConfig& config) {
  options.http.keep_response_headers = false;  // no audit field reads them
  // Set whatever the level: it can change at run time (SetPolicy).
  options.http.report_started = [](const http::HttpRequest& request) {
    return audit::IsLongRunning(request);
  };
  options.http.report_received = config.every_request_received;
  return options;
}

conn::TrackerOptions Pipeline::WithRestartHook(conn::TrackerOptions options) {
  // A reused connection identity must not keep the old connection's certificate.
  options.on_restart = [this](uint32_t tgid, uint64_t tls_conn) {
    identity_.OnConnectionRestart({tgid, tls_conn});
  };
  return options;
}

std::vector<std::pair<std::string_view, uint64_t>> Pipeline::CapsHit() const {
  http::Http1Stats h1;
  http::Http2Stats h2;
  tracker_.AddHttpStats(&h1, &h2);
  return {
      {"connections_evicted", tracker_.stats().connections_evicted},
      {"http1_pending_requests", h1.dropped_requests - h1.budget_drops},
      {"http1_connection_bytes", h1.budget_drops},
      {"http1_bodies_cut", h1.budget_bodies_cut},
      {"http1_headers_too_large", h1.headers_too_large},
      {"http2_streams", h2.dropped_streams},
      {"http2_connection_bytes", h2.budget_evictions},
      {"http2_bodies_cut", h2.budget_bodies_cut},
      {"http2_header_lists_truncated", h2.header_lists_truncated},
      {"http2_reset_streams", h2.reset_streams_dropped},
      {"tokens_evicted", identity_.tokens().stats().evicted},
  };
}

void Pipeline::Tick(uint64_t now_wall_ns) {
  identity_.Tick(now_wall_ns);
  if (config_.response_timeout_ns != 0 && now_wall_ns > config_.response_timeout_ns)
    tracker_.ExpireRequests(now_wall_ns - config_.response_timeout_ns);
}

void Pipeline::OnExchange(http::HttpExchange&& exchange, http::ExchangeEvent why,
                          const conn::ConnFacts& facts) {
  using http::ExchangeEvent;
  if (why == ExchangeEvent::kResponseComplete && exchange.response) {
    // A login's token, learned before any line is written, whether the login is audited or not.
    const http::HttpResponse& response = *exchange.response;
    uint64_t time = response.complete_ns != 0 ? response.complete_ns : response.headers_done_ns;
    identity_.Learn(exchange, time != 0 ? time : WallNowNs());
  }
  const auto key = std::make_pair(facts.conn_id, exchange.sequence);
  auto it = written_.find(key);
  switch (why) {
    case ExchangeEvent::kRequestReceived:
    case ExchangeEvent::kRequestTimedOut: {
      if (it != written_.end()) return;  // already written at an earlier stage
      std::string id = output::NewAuditId();
      // A request still waiting at the timeout: no status, and the line says none was seen.
      Emit(exchange, audit::Stage::kRequestReceived, exchange.request.complete_ns, facts, id,
           why == ExchangeEvent::kRequestTimedOut ? kNoResponseYetNote : std::string_view());
      written_[key] = Written{std::move(id), false};
      return;
    }
    case ExchangeEvent::kResponseStarted: {
      // Long-running: this is the request's line; the stream's end adds nothing.
      std::string id = it != written_.end() ? it->second.audit_id : output::NewAuditId();
      Emit(exchange, audit::Stage::kResponseStarted,
           exchange.response ? exchange.response->headers_done_ns : 0, facts, id);
      written_[key] = Written{std::move(id), true};
      return;
    }
    case ExchangeEvent::kResponseComplete:
    case ExchangeEvent::kNoResponse: {
      std::string id;
      if (it != written_.end()) {
        bool done = it->second.final;
        id = std::move(it->second.audit_id);
        written_.erase(it);
        if (done) return;
        // Written at RequestReceived before: a request without response still has nothing
        // more to say; a response that came after all is written, with the same auditID.
        if (why == ExchangeEvent::kNoResponse) return;
      } else {
        id = output::NewAuditId();
      }
      const bool complete = why == ExchangeEvent::kResponseComplete && exchange.response;
      // A request written without a response (the connection ended) never has a status; the
      // line says that none was seen (or what the HTTP layer knows instead: exchange.note).
      std::string_view note = exchange.note;
      if (!complete && note.empty()) note = kNoResponseNote;
      Emit(exchange, complete ? audit::Stage::kResponseComplete : audit::Stage::kRequestReceived,
           complete ? exchange.response->complete_ns : 0, facts, id, note);
      return;
    }
  }
}

void Pipeline::Emit(const http::HttpExchange& exchange, audit::Stage stage, uint64_t stage_ns,
                    const conn::ConnFacts& facts, const std::string& audit_id,
                    std::string_view response_note) {
  const identity::LocalPeer* local = LocalPeerOf(facts);
  if (local != nullptr && local->ignored) {
    ++stats_.local_ignored_calls;
    return;
  }
  context_.source.assign(facts.source);
  context_.stage_time_ns = stage_ns;
  audit::AuditRecord& record = record_;
  if (!policy_.Decide(exchange, stage, context_, &record)) {
    ++stats_.not_audited;
    return;
  }
  if (!response_note.empty()) record.annotations[audit::kResponseAnnotation] = response_note;
  if (local != nullptr)
    SetLocalUser(*local, record);
  else
    SetUser(exchange.request, facts, record);
  if (config_.format == OutputFormat::kK8s) {
    sink_->Write(output::FormatK8sEvent(record, user_, audit_id, config_.line));
  } else {
    output::FormatMkeLine(line_, record, user_, audit_id, WallNowNs(), config_.line);
    sink_->Write(line_);
  }
  ++stats_.lines;
  ++stats_.lines_by[static_cast<int>(record.level)][record.kind == "kubernetes" ? 1 : 0];
  // The identity annotation's map node (and its key's storage) serves the next line too.
  if (auto node = record.annotations.extract(kUserIdentifiedByAnnotation)) {
    identified_by_node_ = std::move(node);
  }
}

void Pipeline::SetLocalUser(const identity::LocalPeer& peer, audit::AuditRecord& record) {
  // The kernel's word on who connected: the uid's host name, mapped like a login name.
  const identity::MappedUser* mapped = identity_.users().FindByLogin(peer.user);
  user_.uid = mapped ? mapped->id : peer.user;
  user_.username = user_.uid;
  user_.login = mapped ? mapped->name : peer.user;
  user_.groups = mapped ? mapped->groups : std::vector<std::string>{};
  user_.impersonated.reset();
  user_.peer_pid = peer.pid != 0 ? std::to_string(peer.pid) : std::string();
  user_.peer_comm = peer.comm.empty() ? std::string("unknown") : peer.comm;
  if (peer.exited)
    user_.peer_container = "unknown: the process exited";
  else if (!peer.container_name.empty())
    user_.peer_container = peer.container_name + " (" + peer.container_id.substr(0, 12) + ")";
  else
    user_.peer_container = peer.container_id;
  const std::string_view method = identity::MethodName(identity::Method::kUnixPeerCredentials);
  if (identified_by_node_.empty()) {
    record.annotations[kUserIdentifiedByAnnotation] = method;
  } else {
    identified_by_node_.mapped().assign(method);
    record.annotations.insert(std::move(identified_by_node_));
  }
}

void Pipeline::SetUser(const http::HttpRequest& request, const conn::ConnFacts& facts,
                       audit::AuditRecord& record) {
  user_.peer_pid.clear();
  user_.peer_comm.clear();
  user_.peer_container.clear();
  uint64_t time = request.headers_done_ns != 0 ? request.headers_done_ns : request.first_byte_ns;
  // Copied into user_, which is reused line after line, so its strings keep their storage.
  const identity::Identity& who = identity_.ResolveShared(request, {facts.tgid, facts.tls_conn},
                                                          time != 0 ? time : WallNowNs());
  user_.uid = who.uid;
  user_.username = who.username;
  if (who.extra_username.empty())
    user_.login.clear();
  else
    user_.login = who.extra_username.front();
  user_.groups = who.groups;
  user_.impersonated.reset();
  if (identified_by_node_.empty()) {
    record.annotations[kUserIdentifiedByAnnotation] = identity::MethodName(who.method);
  } else {
    identified_by_node_.mapped().assign(identity::MethodName(who.method));
    record.annotations.insert(std::move(identified_by_node_));
  }
  if (!who.impersonated) return;
  const identity::ImpersonatedUser& as = *who.impersonated;
  if (config_.format == OutputFormat::kK8s) {
    user_.impersonated = output::ImpersonatedUserFacts{as.username, as.uid, as.groups, as.extra};
    return;
  }
  record.annotations[kImpersonatedUserAnnotation] = as.username;
  if (!as.groups.empty()) {
    std::string groups;
    for (const std::string& group : as.groups) groups += (groups.empty() ? "" : ",") + group;
    record.annotations[kImpersonatedGroupsAnnotation] = std::move(groups);
  }
}

}  // namespace mat::pipeline
