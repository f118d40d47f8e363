// Live mode: kernel tap -> (TLS stage) -> pipeline -> stdout, driven by one Boost.Asio event loop
// (ring buffer readiness, process events, target rescans, signals, the admin API, configuration
// reloads). The LiveAuditor class lives in live_auditor.cpp.
#pragma once

#include "options.h"
#include "output/async_writer.h"

namespace mat::daemon {

// Runs the auditor until SIGINT/SIGTERM (or stdout is gone); argv is reread at a reload. The
// stop and reload signals must be blocked already (BlockStopSignals, ReloadSignals). Returns
// the exit status.
int RunLive(const mat::Options& o, mat::output::AsyncLineWriter* out, int argc, char** argv);

}  // namespace mat::daemon
