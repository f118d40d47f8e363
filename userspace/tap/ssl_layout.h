// The OpenSSL layout calibration: where one libssl build keeps a connection's TLS secrets in its
// private structures (struct tap_ssl_layout), found by running the helper mke-audit-tap-sslcal
// (userspace/tap/sslcal) against that build. The helper is a separate process because a process
// that has a libssl loaded cannot load another build of the same SONAME, and because the target's
// library code then runs without the auditor's privileges.
#pragma once

#include <mke_audit_tap/tap_events.h>

#include <optional>
#include <string>

#include "util/result.h"

namespace mat::tap {

// Runs the calibration helper for one libssl (and the libcrypto it needs: both paths may be
// /proc/PID/map_files/RANGE) and parses and checks its answer. helper: the helper's path (default
// DefaultSslcalPath()). The error is one line, with no secret. Blocks for at most ~11 s (the
// helper is killed after 10 s). Safe to call from several threads at once; the caller must not
// reap children with waitpid(-1) meanwhile.
Result<tap_ssl_layout> CalibrateSslLayout(const std::string& libssl_path,
                                          const std::string& libcrypto_path,
                                          const std::string& helper = "");

// dirname(/proc/self/exe)/mke-audit-tap-sslcal
std::string DefaultSslcalPath();

// Parses the helper's answer line and checks it (offsets below 64 KiB, the SSL object's fields
// distinct). An error when it is not a valid answer.
Result<tap_ssl_layout> ParseSslLayout(const std::string& line);

}  // namespace mat::tap
