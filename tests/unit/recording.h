// Replays a recording (--record's file) through the pipeline, as --replay does, for the tests
// that compare its lines with what they expect.
#pragma once

#include <string>
#include <vector>

#include "capture/recorder.h"
#include "output/line_sink.h"
#include "pipeline/pipeline.h"
#include "util/result.h"

namespace mat::testing {

// The lines `config`'s pipeline writes for the recording at path, finished one second after
// the recording's clock origin; or why the file could not be read.
inline Result<std::vector<std::string>> ReplayRecording(const std::string& path,
                                                        const pipeline::PipelineConfig& config) {
  capture::ClockMap clock;
  capture::ReplayStats stats;
  std::vector<std::vector<unsigned char>> records;
  Status read = capture::ReadRecording(
      path, &clock,
      [&](const void* data, uint32_t size) {
        auto p = static_cast<const unsigned char*>(data);
        records.emplace_back(p, p + size);
      },
      &stats);
  if (!read) return Error{read.error()};
  output::VectorLineSink sink;
  pipeline::Pipeline p(config, clock, &sink, nullptr, {});
  for (const auto& r : records) p.OnRecord(r.data(), r.size());
  p.Finish(clock.ToWall(1'000'000'000));
  return std::move(sink.lines);
}

}  // namespace mat::testing
