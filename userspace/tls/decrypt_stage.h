// The TLS record layer between the tap and the pipeline (issue 11, "keys" capture): follows each
// target socket's handshake in its TAP_EV_CIPHER bytes, pairs it with the TAP_EV_SECRET records of
// the same client random, decrypts the records and hands the pipeline the TAP_EV_DATA and
// TAP_EV_CONN_END records the per-call probes would have produced. Secrets and keys stay in
// memory excluded from core dumps and are wiped when their connection ends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "util/defaults.h"

namespace mat::tls {

struct StageOptions {
  size_t max_connections = defaults::kMaxConnections;  // streams tracked; beyond: counted, dropped
  size_t max_pending_bytes = 256 * 1024;  // ciphertext held per connection awaiting its secrets
  // Unmatched secrets / pending ciphertext kept this long. The secrets come when the server's
  // handshake completes (the client's Finished): under a connect storm that is tens of seconds
  // after the ClientHello (10,000 clients: up to 31 s measured); the held ciphertext is bounded
  // by max_pending_bytes and 64 MiB in all.
  uint64_t secret_wait_ns = 60'000'000'000;
  // A socket that reached TCP_CLOSE may still be read (what arrived before a reset): its stream
  // ends this long after the close (at a Tick), so those bytes are still decrypted.
  uint64_t close_grace_ns = 1'000'000'000;
};

struct StageStats {
  uint64_t records_in = 0;             // every record given to OnRecord
  uint64_t bad_records = 0;            // CIPHER/SECRET records that failed to decode: dropped
  uint64_t cipher_records = 0;         // TAP_EV_CIPHER records
  uint64_t cipher_bytes = 0;           // their payload bytes
  uint64_t secrets_in = 0;             // TAP_EV_SECRET records
  uint64_t secrets_expired = 0;        // secrets whose connection never showed up in time
  uint64_t secrets_dropped = 0;        // secrets not kept: table full or no secure memory
  uint64_t streams = 0;                // socket streams seen
  uint64_t streams_evicted = 0;        // to make room: dropped ones, or live ones idle for a minute
  uint64_t streams_replaced = 0;       // ended because a new socket came with the same (tgid, fd)
  uint64_t streams_over_limit = 0;     // cipher records of streams beyond max_connections: dropped
  uint64_t connections_decrypted = 0;  // connections whose keys were derived
  uint64_t not_tls_streams = 0;        // first bytes not a TLS ClientHello
  uint64_t no_handshake_seen = 0;      // stream first seen mid-connection
  uint64_t handshake_lost = 0;       // handshake bytes lost (gap) or malformed after a ClientHello
  uint64_t no_secrets = 0;           // connections whose secrets did not come in time
  uint64_t pending_overflow = 0;     // connections with more than max_pending_bytes held: dropped
  uint64_t undecryptable_suite = 0;  // connections with a suite or version not decrypted here
  std::map<std::string, uint64_t> undecryptable_by_suite;  // by suite name or "0xNNNN"
  uint64_t etm_connections = 0;            // TLS 1.2 CBC connections with encrypt_then_mac
  uint64_t handshake_records_skipped = 0;  // TLS 1.3 records under handshake keys
  uint64_t records_decrypted = 0;          // protected records opened
  uint64_t wrong_keys = 0;         // TLS 1.3 directions whose key opened none of the first records
  uint64_t decrypt_failures = 0;   // records the keys did not open after a first success
  uint64_t malformed_records = 0;  // bad record headers within a decrypted stream
  uint64_t rejected_records = 0;   // records the key opened but the server would refuse (data
                                   // before the peer's Finished, oversized plaintext): dropped
  uint64_t socket_restarts = 0;    // the kernel lost a socket's position (its entry evicted) and
                                   // started it again at 0: rebased, nothing lost
  uint64_t gaps = 0;               // ciphertext lost before the stage saw it
  uint64_t gap_bytes = 0;
  uint64_t resyncs = 0;          // record boundary and sequence found again after a gap/failure
  uint64_t resync_failures = 0;  // directions given up: no record found within the trial budget
  uint64_t key_updates = 0;
  uint64_t close_notify = 0;
  uint64_t plaintext_records = 0;  // TAP_EV_DATA records emitted
  uint64_t plaintext_bytes = 0;
  uint64_t plain_duplicates_dropped = 0;  // per-call TAP_EV_DATA of a decrypted connection
  uint64_t conn_ends = 0;                 // TAP_EV_CONN_END emitted
};

// Every StageStats counter that is reported, declared once, in the order the log line and
// /metrics show them. Each is shown (the "TLS stage: name=N ..." log line, /metrics'
// tls_stage_total{counter="name"}), a loss (a loss notice reason "tls_" + name: something not
// audited), or both; a warning counter is a loss of the stage's own making, and its growth is
// logged as a warning (a gap is the kernel's loss, already counted there).
inline constexpr unsigned kStageShown = 1, kStageLoss = 2, kStageWarns = 4;
struct StageCounter {
  const char* name;
  uint64_t StageStats::*member;
  unsigned flags;
};

inline constexpr StageCounter kStageCounters[] = {
    {"cipher_records", &StageStats::cipher_records, kStageShown},
    {"cipher_bytes", &StageStats::cipher_bytes, kStageShown},
    {"secrets", &StageStats::secrets_in, kStageShown},
    {"connections_decrypted", &StageStats::connections_decrypted, kStageShown},
    {"records_decrypted", &StageStats::records_decrypted, kStageShown},
    {"plaintext_bytes", &StageStats::plaintext_bytes, kStageShown},
    {"key_updates", &StageStats::key_updates, kStageShown},
    {"no_handshake_seen", &StageStats::no_handshake_seen, kStageShown},
    {"not_tls_streams", &StageStats::not_tls_streams, kStageShown},
    {"no_secrets", &StageStats::no_secrets, kStageShown | kStageLoss | kStageWarns},
    {"undecryptable_suite", &StageStats::undecryptable_suite,
     kStageShown | kStageLoss | kStageWarns},
    {"wrong_keys", &StageStats::wrong_keys, kStageShown | kStageLoss | kStageWarns},
    {"decrypt_failures", &StageStats::decrypt_failures, kStageShown | kStageLoss | kStageWarns},
    {"handshake_lost", &StageStats::handshake_lost, kStageShown | kStageLoss | kStageWarns},
    {"pending_overflow", &StageStats::pending_overflow, kStageShown | kStageLoss | kStageWarns},
    {"gaps", &StageStats::gaps, kStageShown | kStageLoss},
    {"resyncs", &StageStats::resyncs, kStageShown},
    {"resync_failures", &StageStats::resync_failures, kStageShown | kStageLoss | kStageWarns},
    {"streams_over_limit", &StageStats::streams_over_limit, kStageShown | kStageLoss | kStageWarns},
    {"secrets_expired", &StageStats::secrets_expired, kStageShown},
    {"secrets_dropped", &StageStats::secrets_dropped, kStageShown | kStageLoss | kStageWarns},
    {"plain_duplicates_dropped", &StageStats::plain_duplicates_dropped, kStageShown},
    {"rejected_records", &StageStats::rejected_records, kStageShown | kStageLoss | kStageWarns},
    {"socket_restarts", &StageStats::socket_restarts, kStageShown},
    {"bad_records", &StageStats::bad_records, kStageLoss},
    {"malformed_records", &StageStats::malformed_records, kStageLoss},
};

// The counters with `flag`, as (name, value), in the table's order.
inline std::vector<std::pair<const char*, uint64_t>> StageCounterValues(const StageStats& s,
                                                                        unsigned flag) {
  std::vector<std::pair<const char*, uint64_t>> v;
  for (const StageCounter& c : kStageCounters)
    if (c.flags & flag) v.emplace_back(c.name, s.*c.member);
  return v;
}

class DecryptStage {
 public:
  using Sink = std::function<void(const void* record, size_t size)>;
  explicit DecryptStage(Sink sink, StageOptions options = {});
  ~DecryptStage();  // wipes every secret and key
  DecryptStage(const DecryptStage&) = delete;
  DecryptStage& operator=(const DecryptStage&) = delete;

  void OnRecord(const void* record, size_t size);  // every tap record, in ring order
  void Tick(uint64_t now_mono_ns);                 // expiry of pending data and unmatched secrets
  const StageStats& stats() const;
  // True once (tgid, conn) is a connection this stage decrypts: the per-call plaintext records
  // of it are dropped.
  bool Decrypts(uint32_t tgid, uint64_t conn) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mat::tls
