// Where to put the OpenSSL probes in one libssl file, and why.
//
// A uprobe on an instruction the kernel emulates (push, nop, call, jmp, jcc) is several times
// cheaper than one the kernel must single-step (sub, mov, ...). OpenSSL 3's SSL_read and
// SSL_read_ex both wrap one internal function, ssl_read_internal(s, buf, num, &readbytes),
// which begins with `push`; SSL_write/SSL_write_ex likewise wrap ssl_write_internal. When the
// disassembly shows that shape, the probes go on the internal functions' entries (and their
// returns); otherwise on the public functions, which always works but costs more.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "util/result.h"

namespace mat::tap {

enum class ProbeProgram {
  kReadEnterPtr4,  // entry; count comes back in *arg4
  kReadEnterRet,   // entry; count is the return value
  kReadExit,       // return probe
  kWriteEnterPtr4,
  kWriteEnterRet,
  kWriteExit,
  kConnEnd,        // SSL_free / SSL_shutdown entry
  kHandshake,      // SSL_do_handshake entry: the thread's handshake in progress
  kHandshakeExit,  // SSL_do_handshake return: the thread's handshake is no longer in progress
  kCertParse,      // d2i_X509 entry (libcrypto): the peer's certificate during that handshake
  kCertSend,       // i2d_X509 entry (libcrypto): the server sends its certificate (full handshake)
};

// The probes that fire on every SSL_read/SSL_write call (the plaintext capture's).
bool IsPerCallProbe(ProbeProgram program);

struct ProbeSite {
  ProbeProgram program;
  uint64_t file_offset = 0;
  std::string function;     // what is probed, e.g. "ssl_read_internal (called by SSL_read)"
  std::string instruction;  // the first instruction there, e.g. "push r13"
  bool emulated = false;    // the kernel emulates that instruction (cheap probe)
};

struct SslProbePlan {
  std::string path;
  std::vector<ProbeSite> sites;
  bool internal_read = false;    // probes on the internal read function
  bool internal_write = false;   // probes on the internal write function
  std::string Describe() const;  // one line for the log
};

// Analyses an ELF file that exports SSL_read/SSL_write (libssl, or a program with OpenSSL
// linked in statically). An error when the file has no usable OpenSSL symbols.
Result<SslProbePlan> PlanSslProbes(const std::string& path);

// For the client-certificate identity, in a libcrypto file: d2i_X509 (where OpenSSL parses the
// certificate a client presents) and i2d_X509 (the server serialising its own certificate,
// which only a full handshake does). An error when the file lacks either.
Result<std::vector<ProbeSite>> PlanCertProbes(const std::string& path);

// Whether the x86-64 kernel emulates a uprobe on this instruction instead of single-stepping.
bool IsEmulatedInstruction(const uint8_t* code, size_t size, std::string* text);

}  // namespace mat::tap
