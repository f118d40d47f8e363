// Go programs that serve HTTPS with crypto/tls: where to put the uprobes.
//
// Go does not use libssl, so the TLS plaintext is caught on crypto/tls.(*Conn).Read and
// crypto/tls.(*Conn).Write. Since Go 1.17 (amd64) these use the register ABI: at entry the
// receiver is in AX, the buffer pointer in BX and its length in CX; at a return n is in AX; the
// current goroutine (g) is always in R14, which is what pairs an entry with its return.
//
// Return probes are NOT uretprobes: a uretprobe rewrites the return address on the stack, and Go
// moves goroutine stacks (copystack) and walks them (tracebacks, GC), which breaks on that. A
// plain uprobe goes on every return path of the function instead.
//
// Probe cost: the kernel emulates a probed push/nop/call/jmp/jcc (~1 µs here) and single-steps
// anything else (~14 µs). Go functions begin with the stack-bound check
//     cmp rsp, [r14+0x10]       (or lea r12, [rsp-N]; cmp r12, [r14+0x10])
//     jbe <morestack call>
// so the entry instruction is single-stepped, but the `jbe` is emulated and AX/BX/CX/R14 are
// untouched up to it: the entry probe goes there. When the stack must grow, the `jbe` jumps to
// runtime.morestack, which re-runs the function from its entry, so the site is hit twice for
// that one call with identical registers; the entry program just overwrites what it stored for
// the goroutine, so that is harmless. Returns have no such choice: a Go epilogue restores rbp
// and rsp right before the RET (`mov rbp, [rsp+N]; add rsp, N+8; ret` in Go 1.19; newer
// compilers may use `pop rbp`), none of which is emulated. But Read's ordinary returns run its
// deferred unlock first, and look like
//     call <deferred func>          (emulated)
//     mov rax, [rsp+K]              n, from the result's stack slot
//     mov rbx, [rsp+..]; mov rcx, [rsp+..]; mov rbp, [rsp+..]; add rsp, ..; ret
// A value live across a call in a stack slot is one the callee cannot touch, so at the call n
// is already at [rsp+K]: the return probe goes on the call and reads n there. That is done only
// when the path from the call to the RET is straight-line code no branch of the function
// enters (and the function has no indirect jumps); every other RET keeps a probe of its own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace mat::tap {

class ElfFile;

// One uprobe location inside a Go function.
struct GoProbeSite {
  uint64_t address = 0;      // virtual address
  uint64_t file_offset = 0;  // what uprobe attachment takes
  std::string instruction;   // e.g. "jbe 0x5a484c"
  bool emulated = false;     // the kernel emulates it (cheap) instead of single-stepping
  // Return sites only: -1 when the probe is on the RET itself and n is in AX; otherwise the
  // probe is on an earlier emulated instruction of the same straight-line return path, where n
  // is already in the stack slot [rsp + result_rsp_offset] that the path loads AX from.
  int32_t result_rsp_offset = -1;
  uint64_t ret_address = 0;  // the RET this site stands for
};

struct GoFunc {
  std::string name;
  uint64_t address = 0;  // entry virtual address
  uint64_t size = 0;     // bytes: ELF st_size, or up to the next function for the pclntab
  uint64_t file_offset = 0;
  GoProbeSite entry;                 // arguments (AX, BX, CX) still intact there
  std::vector<GoProbeSite> returns;  // every RET (n in AX)
  std::vector<uint64_t> ReturnOffsets() const;
};

struct GoTlsProbePlan {
  std::string go_version;
  GoFunc read;   // crypto/tls.(*Conn).Read: entry + every RET (the data exists only at return)
  GoFunc write;  // crypto/tls.(*Conn).Write: entry is enough; its RETs are listed anyway
  // crypto/tls.(*Conn).Close: its entry ends the connection. address 0 when the linker dropped
  // it (nothing calls it); connections then end when their socket is closed.
  GoFunc close;
  // For the client certificate (entries only; address 0 when absent):
  // crypto/tls.(*Conn).processCertsFromClient (AX: the conn; entry and returns bound the window)
  // and crypto/x509.ParseCertificate (AX, BX: the DER), which it calls on each certificate the
  // client sent, leaf first.
  GoFunc certs_from_client;
  GoFunc parse_certificate;
  // Run only by full (not resumed) handshakes (AX: the handshake state, whose first field is
  // the conn): a client without a certificate then presented none.
  GoFunc full_handshake_tls13;  // crypto/tls.(*serverHandshakeStateTLS13).sendServerCertificate
  GoFunc full_handshake_tls12;  // crypto/tls.(*serverHandshakeState).doFullHandshake
  // Keys capture (entries only; address 0 when absent). crypto/tls.(*Config).writeKeyLog(label,
  // clientRandom, secret) gets every secret of every handshake, KeyLogWriter set or not: AX the
  // Config, BX/CX the label, DI/SI/R8 clientRandom, R9/R10/R11 the secret. Its entry site is the
  // first emulated instruction before any of these registers is written, as for Read. The
  // connection comes from crypto/tls.(*Conn).serverHandshake / clientHandshake (AX: the conn),
  // which run the handshake in the same goroutine.
  GoFunc key_log;
  GoFunc server_handshake;
  GoFunc client_handshake;
  bool HasKeyLog() const { return key_log.address != 0; }
  std::string Describe() const;
};

struct GoBinaryInfo {
  std::string path;
  std::string go_version;      // as recorded by the linker, e.g. "go1.19.8"
  int go_minor = 0;            // 19 for go1.19.8
  std::string main_module;     // "path" line of the embedded module info; may be empty
  std::string functions_from;  // ".symtab/.dynsym", or which pclntab was parsed
  GoTlsProbePlan tls;
  std::string Describe() const;  // one line for the log
};

struct GoInspectOptions {
  // Ignore ELF symbols and always read Go's own function table (tests compare both).
  bool ignore_elf_symbols = false;
};

// Recognises a Go >= 1.17 x86-64 program that links crypto/tls and plans its probes.
// The error is one reason otherwise (not Go, too old, not amd64, no crypto/tls, unparsable
// tables). Safe on arbitrary files.
Result<GoBinaryInfo> InspectGoBinary(const std::string& path);
Result<GoBinaryInfo> InspectGoBinary(const ElfFile& elf, const std::string& path,
                                     const GoInspectOptions& options = {});

// "go1.19.8" -> 1, 19; also "go1.21rc2", "go1.22", "devel go1.23-abcdef Tue ...".
bool ParseGoVersion(std::string_view version, int* major, int* minor);

}  // namespace mat::tap
