// mke-audit-tap's entry point: parses the options and runs a subcommand (doctor/, support/) or
// a mode: replay (recording -> pipeline -> stdout, daemon/replay) or live (kernel tap ->
// pipeline -> stdout on one event loop, daemon/live_auditor).
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "daemon/live_auditor.h"
#include "daemon/replay.h"
#include "daemon/runtime.h"
#include "doctor/doctor.h"
#include "options.h"
#include "output/async_writer.h"
#include "output/line_sink.h"
#include "support/support_dump.h"

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "support-dump") == 0)
    return mat::support::RunSupportDump(argc, argv);
  if (argc > 1 && std::strcmp(argv[1], "doctor") == 0) return mat::doctor::RunDoctor(argc, argv);
  auto options = mat::ParseOptions(argc, argv);
  if (!options) {
    std::fprintf(stderr, "mke-audit-tap: %s\n", options.error().c_str());
    return 2;
  }
  if (options->help) {
    std::fputs(mat::UsageText().c_str(), stdout);
    return 0;
  }
  if (options->version) {
    std::printf("mke-audit-tap %s\n", mat::kVersion);
    return 0;
  }
  mat::daemon::SetUpLogging(options->log_level);
  // The process holds TLS secrets, keys and decrypted credentials: no core dump of it, and no
  // ptrace by other users' processes.
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  // A reader that closes stdout gives EPIPE, reported and ending the auditor with its summary,
  // not a silent death by SIGPIPE.
  signal(SIGPIPE, SIG_IGN);
  if (!options->replay_file.empty()) {
    mat::output::FileLineSink out(stdout);
    return mat::daemon::RunReplay(*options, out);
  }
  mat::daemon::BlockStopSignals();
  // Level none with nothing that could change it: no pipeline at all.
  if (options->level == mat::audit::Level::kNone && options->admin_listen.empty() &&
      options->config_file.empty())
    return mat::daemon::RunIdle();
  sigset_t reload = mat::daemon::ReloadSignals();  // SIGHUP reloads, read from a signalfd
  pthread_sigmask(SIG_BLOCK, &reload, nullptr);
  std::fflush(stdout);
  mat::output::AsyncWriterOptions output;
  output.buffer_bytes = options->output_buffer_bytes;
  mat::output::AsyncLineWriter out(STDOUT_FILENO, output);  // after the signals are blocked
  mat::daemon::CheckCapabilities();
  return mat::daemon::RunLive(*options, &out, argc, argv);
}
