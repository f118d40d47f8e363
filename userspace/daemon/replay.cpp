#include "daemon/replay.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "capture/recorder.h"
#include "daemon/make_config.h"

namespace mat::daemon {

void LogPipelineSummary(const mat::pipeline::Pipeline& pipeline) {
  const auto& p = pipeline.stats();
  const auto& t = pipeline.tracker().stats();
  mat::http::Http1Stats h;
  mat::http::Http2Stats h2;
  pipeline.tracker().AddHttpStats(&h, &h2);
  const auto& k = pipeline.identity().tokens().stats();
  spdlog::info(
      "summary: {} records ({} bad), {} audit lines, {} not audited; connections {} opened, "
      "{} client-side skipped, {} gaps ({} bytes, {} inside bodies kept in sync); http {} "
      "requests, {} responses, {} parse errors, {} orphan responses; http/2 {} requests, {} "
      "responses, {} hpack errors, {} fatal, {} client protocol errors, {} streams the server did "
      "not process (not audited); session tokens {} learned, {} hits, {} misses",
      p.records, p.bad_records, p.lines, p.not_audited, t.connections_opened, t.client_side_skipped,
      t.gaps, t.gap_bytes, h.gaps_skipped_in_body, h.requests, h.responses, h.parse_errors,
      h.orphan_responses, h2.requests, h2.responses, h2.hpack_errors, h2.fatal_errors,
      h2.request_errors, h2.unreported_streams, k.learned, k.hits, k.misses);
  if (p.local_connections != 0)
    spdlog::info(
        "local socket: {} connections ({} peers gone before they could be looked up), {} calls "
        "of ignored peers not written",
        p.local_connections, p.local_peer_exited, p.local_ignored_calls);
  std::string caps;
  for (const auto& [reason, value] : pipeline.CapsHit())
    if (value != 0) caps += fmt::format("{}{} {}", caps.empty() ? "" : ", ", value, reason);
  if (!caps.empty()) spdlog::warn("memory caps hit: {}", caps);
}

void LogSummary(const mat::pipeline::Pipeline& pipeline, const mat::output::FileLineSink& out) {
  LogPipelineSummary(pipeline);
  if (out.lines_lost() != 0)
    spdlog::error("output: {} lines written, {} lost: {}", out.lines_written(), out.lines_lost(),
                  std::strerror(out.last_error()));
  else
    spdlog::info("output: {} lines written", out.lines_written());
}

int RunReplay(const mat::Options& o, mat::output::FileLineSink& out) {
  mat::pipeline::PipelineConfig config = MakeConfig(o);
  // The recording's clock comes with its header, so the pipeline is made at the first record;
  // records are streamed through it, never held: a recording may be larger than memory.
  std::optional<mat::pipeline::Pipeline> pipeline;
  mat::capture::ClockMap clock;
  uint64_t last_ts = 0;
  mat::capture::ReplayStats stats;
  auto make = [&] {
    pipeline.emplace(std::move(config), clock, &out, nullptr, mat::pipeline::Resolvers{});
  };
  mat::Status read = mat::capture::ReadRecording(
      o.replay_file, &clock,
      [&](const void* data, uint32_t size) {
        if (!pipeline) make();
        if (!pipeline->started()) return;
        pipeline->OnRecord(data, size);
        if (size >= sizeof(tap_hdr))
          last_ts = std::max<uint64_t>(last_ts, static_cast<const tap_hdr*>(data)->ts_ns);
      },
      &stats);
  if (!read) {
    spdlog::error("{}", read.error());
    return 1;
  }
  if (!pipeline) make();
  if (!pipeline->started()) {
    spdlog::error("{}", pipeline->started().error());
    return 1;
  }
  if (stats.bad_records)
    spdlog::warn(
        "{}: torn or corrupt record at byte {} (after {} good records): the rest of the "
        "file is ignored",
        o.replay_file, stats.bad_offset, stats.records);
  pipeline->Finish(clock.ToWall(last_ts));
  LogSummary(*pipeline, out);
  return out.lines_lost() == 0 ? 0 : 1;
}

}  // namespace mat::daemon
