#include "pipeline/pipeline.h"

#include <spdlog/spdlog.h>
#include <time.h>

namespace mat::pipeline {

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
      tracker_(config_.tracker, [this](http::HttpExchange&& exchange, http::ExchangeEvent why,
                                       const conn::ConnFacts& facts) {
        OnExchange(std::move(exchange), why, facts);
      }) {
  // Identity comes in a later milestone; until then every line says plainly that the user
  // is not known rather than guessing.
  user_.uid = "unidentified";
  user_.username = "unidentified";
  user_.login = "unidentified";
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
  tracker_.OnEvent(event, wall);
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

void Pipeline::OnExchange(http::HttpExchange&& exchange, http::ExchangeEvent why,
                          const conn::ConnFacts& facts) {
  const bool complete = why == http::ExchangeEvent::kResponseComplete && exchange.response;
  audit::RequestContext context;
  context.source = facts.source;
  context.stage_time_ns = complete ? exchange.response->complete_ns : 0;
  auto stage = complete ? audit::Stage::kResponseComplete : audit::Stage::kRequestReceived;
  auto record = policy_.Decide(exchange, stage, context);
  if (!record) {
    ++stats_.not_audited;
    return;
  }
  sink_->Write(output::FormatMkeLine(*record, user_, output::NewAuditId(), WallNowNs()));
  ++stats_.lines;
}

}  // namespace mat::pipeline
