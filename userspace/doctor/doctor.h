// `mke-audit-tap doctor`: says, one line per item, whether the auditor can work here and on its
// targets, and if not, what will fail and why: the kernel (BTF, uprobes, BPF ring buffer, the
// real BPF programs loaded and each tracepoint attached, then detached), the capabilities, and
// for each target process its TLS library, where its probes would sit, which capture mode it
// gets and whether its probes attach (attached and detached at once). It attaches nothing for
// longer than the check and changes nothing in the targets. Exit 0 when nothing failed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mat {
struct Options;  // options.h
}  // namespace mat

namespace mat::doctor {

enum class Status { kOk, kWarn, kFail };

struct Line {
  Status status = Status::kOk;
  std::string item;  // e.g. "kernel BTF", "capability CAP_BPF", "target pid 12 (nginx)"
  std::string text;  // what works, or what will not and why
};

// "ok   kernel BTF: /sys/kernel/btf/vmlinux" (status padded to 5 columns, one line).
std::string FormatLine(const Line& line);

// 1 when any line failed, else 0.
int ExitCode(const std::vector<Line>& lines);

// The OpenSSL version text a libcrypto (or a static build) carries, e.g.
// "OpenSSL 3.0.19 27 Jan 2026"; empty when there is none.
std::string FindOpenSslVersion(std::string_view bytes);

// Every check, in order, for these options' targets and capture mode. With `print`, each line is
// also written to stdout as it is found. Used by the command and by the support dump.
std::vector<Line> Diagnose(const Options& options, bool print);

// "doctor: N ok, N warning(s), N failure(s): ..." for the end of the report.
std::string Summary(const std::vector<Line>& lines);

// `mke-audit-tap doctor ...`: argv[1] is "doctor". Returns the exit code.
int RunDoctor(int argc, char** argv);

}  // namespace mat::doctor
