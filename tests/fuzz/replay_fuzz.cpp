// libFuzzer target: a recording (--record/--replay file, capture/recorder.h) read by
// ReadRecording and fed, as the live auditor does, through the TLS stage (tls/decrypt_stage)
// into the whole pipeline (decode, connections, HTTP/1.1 and HTTP/2, identity, audit policy,
// lines). The input is the file itself, so any recording is a seed: tests/golden/*.rec and
// the TLS ones the TLS stage's unit test writes (see CMakeLists.txt here). The low three bits
// of the recording's clock offset choose the configuration: bit 0 level Request (payloads)
// instead of Metadata, bit 1 Kubernetes Event lines, bit 2 small limits (bodies, lines,
// connections, pending ciphertext) and every RequestReceived line.
// Checks: every line is one JSON object with an auditID; ASan/UBSan check the rest.

#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "capture/recorder.h"
#include "pipeline/pipeline.h"
#include "tls/decrypt_stage.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

class CheckingSink final : public mat::output::LineSink {
 public:
  void Write(std::string_view line) override {
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    // MKE lines hold the event under "audit", Kubernetes Event lines are the event.
    const bool mke = j.is_object() && j.contains("audit") && j["audit"].is_object() &&
                     j["audit"].contains("auditID");
    if (!mke && !(j.is_object() && j.contains("auditID"))) {
      std::fprintf(stderr, "not an audit line: %.*s\n", static_cast<int>(line.size()), line.data());
      std::abort();
    }
  }
};

int MemFile() {
  static int fd = [] {
    int f = memfd_create("replay_fuzz", 0);
    Check(f >= 0);
    return f;
  }();
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = MemFile();
  Check(ftruncate(fd, 0) == 0);
  Check(pwrite(fd, data, size, 0) == static_cast<ssize_t>(size));
  const std::string path = "/proc/self/fd/" + std::to_string(fd);

  mat::capture::ClockMap clock;
  mat::capture::ReplayStats stats;
  std::optional<mat::pipeline::Pipeline> pipeline;
  std::optional<mat::tls::DecryptStage> stage;
  CheckingSink sink;
  uint64_t last_ts = 0;
  auto make = [&] {
    const unsigned config = static_cast<unsigned>(clock.mono_to_wall_ns) & 7;
    mat::pipeline::PipelineConfig pc;
    pc.license_key = "FUZZ";
    pc.policy.level = (config & 1) ? mat::audit::Level::kRequest : mat::audit::Level::kMetadata;
    pc.format =
        (config & 2) ? mat::pipeline::OutputFormat::kK8s : mat::pipeline::OutputFormat::kMke;
    mat::tls::StageOptions so;
    so.close_grace_ns = 0;
    if (config & 4) {
      pc.every_request_received = true;
      pc.line.max_line_bytes = 512;
      pc.tracker.http.max_body_bytes = 16;
      pc.tracker.http.max_header_bytes = 512;
      pc.tracker.http.max_pending_requests = 4;
      so.max_connections = 2;
      so.max_pending_bytes = 1024;
    }
    pipeline.emplace(pc, clock, &sink, nullptr, mat::pipeline::Resolvers{});
    stage.emplace([&](const void* p, size_t n) { pipeline->OnRecord(p, n); }, so);
  };
  mat::Status read = mat::capture::ReadRecording(
      path, &clock,
      [&](const void* p, uint32_t n) {
        if (!pipeline) make();
        stage->OnRecord(p, n);
        if (n >= sizeof(tap_hdr)) {
          const uint64_t ts = static_cast<const tap_hdr*>(p)->ts_ns;
          if (ts > last_ts && ts - last_ts < (uint64_t{1} << 40)) {
            last_ts = ts;
            stage->Tick(ts);
          }
        }
      },
      &stats);
  if (!read) return 0;
  if (!pipeline) make();
  stage->Tick(last_ts + 3'600'000'000'000ull);
  pipeline->Finish(clock.ToWall(last_ts) + 3'600'000'000'000ull);
  return 0;
}
