#include "tls/decrypt_stage.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <vector>

#include "capture/event_decoder.h"
#include "tls/record_cipher.h"
#include "tls/secure_pool.h"

namespace mat::tls {

namespace {

constexpr size_t kMaxPlainRecord = 16384;
constexpr size_t kMaxRecordBody = kMaxPlainRecord + 2048;  // TLS 1.2 ciphertext limit
constexpr size_t kMaxRecordBody13 = kMaxPlainRecord + 256;
constexpr size_t kMaxHandshakeMessage = 64 * 1024;  // ClientHello/ServerHello kept whole
constexpr size_t kDirBufferLimit = 4 * (kMaxRecordBody + 5) + TAP_CHUNK_BYTES;
constexpr size_t kMaxSeqTrials = 1024;     // sequence numbers tried on one candidate record
constexpr size_t kMaxResyncTrials = 4096;  // decryptions tried in one resynchronization
// TLS 1.3 records a direction may skip as under handshake keys before its key is called wrong.
constexpr size_t kMaxHandshakeRecords = 64;
constexpr uint64_t kEvictIdleNs = 60'000'000'000;  // a full table may evict streams this idle
constexpr uint64_t kEvictScanEveryNs = 1'000'000'000;
constexpr size_t kMaxPendingTotal = 64u << 20;  // ciphertext held for all connections together
constexpr size_t kKeepBufferBytes = 8192;       // an emptied buffer larger than this is freed

// SHA-256("HelloRetryRequest"): the ServerHello random of a HelloRetryRequest (RFC 8446 4.1.3).
constexpr uint8_t kHrrRandom[32] = {
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C};

enum : uint8_t {
  kChangeCipherSpec = 20,
  kAlert = 21,
  kHandshake = 22,
  kApplicationData = 23,
  kHeartbeat = 24,
};

// Secret and key bytes of one connection (or one client random whose connection is not seen
// yet). Lives in SecurePool memory only.
struct KeyMaterial {
  uint8_t master[48];
  uint8_t client_traffic[TAP_SECRET_MAX];
  uint8_t server_traffic[TAP_SECRET_MAX];
  uint8_t master_len;
  uint8_t client_traffic_len;
  uint8_t server_traffic_len;
  DirKeys dir[2];
  uint8_t key_block[2 * 48 + 2 * 32 + 2 * 12];
};

struct PairKey {
  uint32_t tgid;
  uint64_t id;
  bool operator==(const PairKey& o) const { return tgid == o.tgid && id == o.id; }
};
struct PairKeyHash {
  size_t operator()(const PairKey& k) const {
    return std::hash<uint64_t>()(k.id * 0x9E3779B97F4A7C15ull ^ k.tgid);
  }
};

struct RandomKey {
  uint32_t tgid;
  std::array<uint8_t, 32> random;
  bool operator==(const RandomKey& o) const { return tgid == o.tgid && random == o.random; }
};
struct RandomKeyHash {
  size_t operator()(const RandomKey& k) const {
    uint64_t v;
    std::memcpy(&v, k.random.data(), sizeof(v));
    return std::hash<uint64_t>()(v ^ k.tgid);
  }
};

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

struct Direction {
  std::vector<uint8_t> buf;  // bytes received and not yet consumed, from start
  size_t start = 0;
  uint64_t next_pos = 0;  // stream offset expected next
  bool seen = false;
  std::vector<uint8_t> hs;  // the handshake message being collected (header included)
  uint32_t hs_skip = 0;     // bytes of an uninteresting handshake message still to skip
  bool encrypted = false;   // records are protected (TLS 1.2 after CCS, TLS 1.3 after ServerHello)
  bool opened = false;      // a record opened with this direction's key
  uint32_t skipped = 0;     // TLS 1.3 records skipped before the first one opened
  uint64_t mean_x256 = 0;   // running mean of the opened records' wire size, times 256
  uint64_t seq = 0;
  uint64_t plain_pos = 0;
  uint64_t rebase = 0;      // added to the kernel's positions: it restarted the socket at 0
  uint64_t kernel_end = 0;  // the end of the newest bytes seen (rebased), held ones included
  bool finished = false;    // TLS 1.2: the first protected record (Finished) was a handshake one
  bool resync = false;      // looking for a record boundary and sequence number
  uint64_t lost = 0;        // ciphertext bytes lost or skipped since the last record
  size_t resync_trials = 0;
  bool dead = false;  // given up on: bytes ignored
  RecordCipher cipher;
  tap_hdr last_hdr{};

  size_t avail() const { return buf.size() - start; }
  uint64_t mean_record() const { return mean_x256 >> 8; }
  void NoteRecord(uint64_t size) {
    mean_x256 = mean_x256 == 0 ? size << 8 : mean_x256 - mean_x256 / 8 + (size << 8) / 8;
  }
  const uint8_t* data() const { return buf.data() + start; }
};

struct Stream {
  PairKey key{};
  int32_t fd = -1;
  uint64_t last_ts = 0;  // the newest cipher record's time
  bool live = true;      // false: dropped, its records ignored until it ends
  bool released = false;
  int first_dir = -1;
  int client_dir = -1;  // the direction that carried the ClientHello
  bool have_random = false;
  std::array<uint8_t, 32> client_random{};
  std::array<uint8_t, 32> server_random{};
  uint16_t version = 0;
  const Suite* suite = nullptr;
  bool etm = false;
  bool hrr = false;  // a HelloRetryRequest was seen: TLS 1.3
  KeyMaterial* km = nullptr;
  uint64_t out_conn = 0;
  bool conn_from_secret = false;
  bool registered = false;  // in the Decrypts set
  bool announced = false;   // keys derived once: a CONN_END is owed at the end
  bool waiting = false;     // holding ciphertext until the secrets arrive
  uint64_t wait_since = 0;
  std::vector<uint8_t> pending;  // held cipher records (PendingFrame + bytes)
  bool closed = false;
  uint64_t close_after = 0;  // closed: ends at the first Tick at or after this time
  tap_hdr close_hdr{};
  bool kick = false;  // handshake state changed: process both directions again
  Direction dir[2];
};

struct PendingFrame {
  tap_hdr hdr;
  uint64_t pos;
  uint32_t len;
  uint32_t dir;
};

struct Unmatched {
  KeyMaterial* km = nullptr;
  uint64_t conn = 0;
  uint64_t since = 0;
};

}  // namespace

struct DecryptStage::Impl {
  Impl(Sink s, StageOptions o) : sink(std::move(s)), opts(o), pool(sizeof(KeyMaterial)) {
    plain.resize(kMaxRecordBody + 64);
    out.reset(new tap_data());
    scratch = static_cast<KeyMaterial*>(pool.Alloc());
    if (scratch != nullptr) probe_keys = &scratch->dir[0];
  }
  ~Impl() {
    for (auto& [k, s] : streams) Release(*s);
    for (auto& [k, u] : unmatched) pool.Free(u.km);
    OPENSSL_cleanse(plain.data(), plain.size());
    OPENSSL_cleanse(out.get(), sizeof(tap_data));
  }

  Sink sink;
  StageOptions opts;
  StageStats stats;
  SecurePool pool;
  std::unordered_map<PairKey, std::unique_ptr<Stream>, PairKeyHash> streams;
  std::unordered_map<PairKey, PairKey, PairKeyHash> by_fd;  // (tgid, fd) -> stream
  std::unordered_map<uint64_t, PairKey> by_sock;            // socket -> its newest stream
  size_t pending_total = 0;
  std::unordered_map<RandomKey, PairKey, RandomKeyHash> by_random;
  std::unordered_map<RandomKey, Unmatched, RandomKeyHash> unmatched;
  std::unordered_map<PairKey, int, PairKeyHash> decrypts;
  // The stream whose plaintext goes out under (tgid, out_conn) now. The TLS library reuses
  // the memory of a freed connection object, so a new connection can get the same id while
  // the old socket has not closed yet: the old one's end is written first.
  std::unordered_map<PairKey, PairKey, PairKeyHash> owners;
  KeyMaterial* scratch = nullptr;  // pool memory for the next-generation key tried in resync
  DirKeys* probe_keys = nullptr;
  RecordCipher probe;
  std::vector<uint8_t> plain;  // one record's plaintext
  std::unique_ptr<tap_data> out;

  // --- records ---------------------------------------------------------------------------

  void OnRecord(const void* record, size_t size) {
    ++stats.records_in;
    if (size < sizeof(tap_hdr)) {
      sink(record, size);
      return;
    }
    tap_hdr hdr;
    std::memcpy(&hdr, record, sizeof(hdr));
    switch (hdr.type) {
      case TAP_EV_CIPHER:
      case TAP_EV_SECRET: {
        capture::Event ev;
        if (capture::DecodeEvent(record, size, &ev) != capture::DecodeStatus::kOk) {
          ++stats.bad_records;
          return;
        }
        if (hdr.type == TAP_EV_CIPHER)
          OnCipher(hdr, ev.data->dir, ev.data->pos,
                   reinterpret_cast<const uint8_t*>(ev.payload.data()), ev.payload.size());
        else
          OnSecret(*ev.secret);
        return;
      }
      case TAP_EV_SOCK_CLOSE: {
        auto it = streams.find({hdr.tgid, hdr.conn});
        if (it == streams.end()) {  // the close came from another task's context
          auto b = by_sock.find(hdr.conn);
          if (b != by_sock.end()) it = streams.find(b->second);
        }
        if (it != streams.end()) Close(*it->second, hdr, opts.close_grace_ns);
        return;
      }
      case TAP_EV_FD_CLOSE: {
        auto it = by_fd.find({hdr.tgid, static_cast<uint64_t>(static_cast<uint32_t>(hdr.fd))});
        if (hdr.fd >= 0 && it != by_fd.end()) {
          auto st = streams.find(it->second);
          if (st != streams.end()) Close(*st->second, hdr);
        }
        sink(record, size);
        return;
      }
      case TAP_EV_CONN_END: {
        // The library ended the connection (SSL_free, SSL_shutdown, Go's Close): our own end,
        // with the plaintext positions, replaces the kernel's (which knows none in keys
        // capture), and the id is free for the next connection.
        auto owner = owners.find({hdr.tgid, hdr.conn});
        if (owner != owners.end()) {
          auto st = streams.find(owner->second);
          if (st != streams.end() && st->second->live) {
            End(*st->second, hdr);
            return;
          }
        }
        sink(record, size);
        return;
      }
      case TAP_EV_SOCK:
        if (hdr.conn != 0) OnSocketSeen(hdr);  // keys path: the socket's cookie
        sink(record, size);
        return;
      case TAP_EV_FULL_HANDSHAKE:
      case TAP_EV_PEER_CERT: {
        // A new handshake on a connection id whose owner's socket is closed (in its grace
        // period): the library reused the freed object. The old connection ends first, so its
        // end does not erase the new one's certificate downstream. (An owner still open may be
        // this very handshake's connection: Go logs the secrets before it parses the client's
        // certificate.)
        auto owner = owners.find({hdr.tgid, hdr.conn});
        if (owner != owners.end()) {
          auto st = streams.find(owner->second);
          if (st != streams.end() && st->second->live && st->second->closed)
            End(*st->second, st->second->close_hdr);
        }
        sink(record, size);
        return;
      }
      case TAP_EV_DATA:
        if (!decrypts.empty() && decrypts.count({hdr.tgid, hdr.conn}) != 0) {
          ++stats.plain_duplicates_dropped;
          return;
        }
        sink(record, size);
        return;
      default:
        sink(record, size);
        return;
    }
  }

  static PairKey FdKey(uint32_t tgid, int32_t fd) {
    return {tgid, static_cast<uint64_t>(static_cast<uint32_t>(fd))};
  }

  void OnCipher(const tap_hdr& hdr, int di, uint64_t pos, const uint8_t* p, size_t len) {
    ++stats.cipher_records;
    stats.cipher_bytes += len;
    PairKey key{hdr.tgid, hdr.conn};
    auto it = streams.find(key);
    if (it == streams.end()) {
      if (streams.size() >= opts.max_connections && !Evict(hdr.ts_ns)) {
        ++stats.streams_over_limit;
        return;
      }
      auto s = std::make_unique<Stream>();
      s->key = key;
      s->first_dir = di;
      s->out_conn = hdr.conn;
      ++stats.streams;
      if (pos != 0) {
        ++stats.no_handshake_seen;
        s->live = false;
      }
      it = streams.emplace(key, std::move(s)).first;
      by_sock[key.id] = key;
    }
    Stream& s = *it->second;
    s.last_ts = hdr.ts_ns;
    if (hdr.fd >= 0 && s.fd != hdr.fd) {
      if (s.fd >= 0) {
        auto f = by_fd.find(FdKey(key.tgid, s.fd));
        if (f != by_fd.end() && f->second == key) by_fd.erase(f);
      }
      s.fd = hdr.fd;
      auto [f, added] = by_fd.try_emplace(FdKey(key.tgid, s.fd), key);
      if (!added && !(f->second == key)) {
        // The fd was closed and reused without our seeing the close: the old socket is over.
        auto old = streams.find(f->second);
        f->second = key;
        if (old != streams.end()) {
          ++stats.streams_replaced;
          Stream& o = *old->second;
          o.fd = -1;  // the mapping is the new stream's now
          tap_hdr end = hdr;
          end.conn = o.key.id;
          Close(o, end);
        }
      }
    }
    Direction& d = s.dir[di];
    pos += d.rebase;
    d.kernel_end = std::max(d.kernel_end, pos + len);
    HandleCipher(s, hdr, di, pos, p, len);
  }

  // A TAP_EV_SOCK of the keys path names a socket the kernel just started tracking. For a
  // socket we already follow, the kernel lost its entry (LRU eviction under many sockets) and
  // counts its positions from 0 again; nothing was missed in between (the entry is made by the
  // call that moved the next bytes), so the positions are rebased.
  void OnSocketSeen(const tap_hdr& hdr) {
    auto it = streams.find({hdr.tgid, hdr.conn});
    if (it == streams.end()) return;
    Stream& s = *it->second;
    ++stats.socket_restarts;
    for (Direction& d : s.dir) d.rebase = d.kernel_end;
  }

  // Makes room for one stream: the least recently active of the dropped ones, else of the live
  // ones idle for kEvictIdleNs. Scans at most once per kEvictScanEveryNs.
  uint64_t next_evict_scan = 0;
  bool Evict(uint64_t now) {
    if (now < next_evict_scan) return false;
    Stream* victim = nullptr;
    for (auto& [k, sp] : streams) {
      Stream& s = *sp;
      if (s.live && (s.waiting || now < s.last_ts || now - s.last_ts < kEvictIdleNs)) continue;
      if (victim == nullptr || (victim->live && !s.live) ||
          (victim->live == s.live && s.last_ts < victim->last_ts))
        victim = &s;
    }
    if (victim == nullptr) {
      next_evict_scan = now + kEvictScanEveryNs;
      return false;
    }
    ++stats.streams_evicted;
    tap_hdr end{};
    end.tgid = victim->key.tgid;
    end.tid = victim->dir[0].last_hdr.tid;
    end.ts_ns = now;
    End(*victim, end);
    return true;
  }

  void HandleCipher(Stream& s, const tap_hdr& hdr, int di, uint64_t pos, const uint8_t* p,
                    size_t len) {
    if (!s.live) {
      if (!s.released) Release(s);
      return;
    }
    if (s.waiting) {
      if (s.pending.size() + sizeof(PendingFrame) + len > opts.max_pending_bytes ||
          pending_total + sizeof(PendingFrame) + len > kMaxPendingTotal) {
        ++stats.pending_overflow;
        Drop(s);
        return;
      }
      PendingFrame f{hdr, pos, static_cast<uint32_t>(len), static_cast<uint32_t>(di)};
      const auto* fp = reinterpret_cast<const uint8_t*>(&f);
      s.pending.insert(s.pending.end(), fp, fp + sizeof(f));
      s.pending.insert(s.pending.end(), p, p + len);
      pending_total += sizeof(f) + len;
      return;
    }
    Direction& d = s.dir[di];
    d.last_hdr = hdr;
    uint64_t end = pos + len;
    if (d.seen && end <= d.next_pos) return;  // already had these bytes
    d.seen = true;
    if (pos < d.next_pos) {
      size_t skip = static_cast<size_t>(d.next_pos - pos);
      p += skip;
      len -= skip;
      pos = d.next_pos;
    }
    if (pos > d.next_pos) {
      Gap(s, di, pos - d.next_pos);
      if (!s.live) return;
    }
    d.next_pos = end;
    if (d.dead) {
      if (!d.buf.empty()) d.buf = {}, d.start = 0;
      return;
    }
    if (!Append(s, d, p, len)) return;
    Process(s, di);
    for (Direction& x : s.dir) {
      if (x.start == x.buf.size() && x.buf.capacity() > kKeepBufferBytes) {
        x.buf = {};
        x.start = 0;
      }
    }
  }

  bool Append(Stream& s, Direction& d, const uint8_t* p, size_t len) {
    if (d.start == d.buf.size()) {
      d.buf.clear();
      d.start = 0;
    } else if (d.start > 0 && (d.start >= 16384 || d.start * 2 >= d.buf.size())) {
      d.buf.erase(d.buf.begin(), d.buf.begin() + static_cast<ptrdiff_t>(d.start));
      d.start = 0;
    }
    if (d.avail() + len > std::max(kDirBufferLimit, opts.max_pending_bytes)) {
      ++stats.pending_overflow;
      Drop(s);
      return false;
    }
    d.buf.insert(d.buf.end(), p, p + len);
    return true;
  }

  void Process(Stream& s, int di) {
    ProcessDir(s, di);
    for (int rounds = 0; s.kick && s.live && rounds < 4; ++rounds) {
      s.kick = false;
      ProcessDir(s, 0);
      ProcessDir(s, 1);
    }
  }

  void Gap(Stream& s, int di, uint64_t n) {
    ++stats.gaps;
    stats.gap_bytes += n;
    Direction& d = s.dir[di];
    if (d.dead) return;
    if (!d.encrypted || s.client_dir < 0) {
      ++stats.handshake_lost;
      Drop(s);
      return;
    }
    d.lost += n + d.avail();
    d.buf.clear();
    d.start = 0;
    if (!d.resync) d.resync_trials = 0;
    d.resync = true;
  }

  static bool ValidHeader(uint8_t type, uint16_t version, size_t len) {
    return type >= kChangeCipherSpec && type <= kHeartbeat && (version >> 8) == 3 &&
           (version & 0xFF) <= 4 && len <= kMaxRecordBody;
  }

  enum class Step { kNext, kWait, kStop };

  void ProcessDir(Stream& s, int di) {
    Direction& d = s.dir[di];
    while (s.live && !s.waiting && !d.dead) {
      if (di != s.first_dir && s.client_dir < 0) return;  // the ClientHello comes first
      if (d.resync) {
        if (!d.cipher.ready()) {  // a gap before the keys: find the records once they are here
          if (s.suite != nullptr) {
            s.waiting = true;
            s.wait_since = d.last_hdr.ts_ns;
          }
          return;
        }
        if (!Resync(s, di)) return;
        continue;
      }
      size_t avail = d.avail();
      const uint8_t* r = d.data();
      if (s.client_dir < 0 && avail >= 1 && r[0] != kHandshake && r[0] != kAlert) {
        NotTls(s);
        return;
      }
      if (avail < 5) return;
      uint8_t type = r[0];
      size_t len = Be16(r + 3);
      if (s.client_dir < 0 && type == kAlert && len <= 2) {
        // Go and OpenSSL skip a warning alert before the ClientHello: so do we.
        d.start += 5 + len;
        continue;
      }
      // Before the ClientHello is parsed, a server takes any record version (Go: below 0x1000;
      // OpenSSL: any 0x03xx): only the type and length decide.
      bool first = s.client_dir < 0 && type == kHandshake && len <= kMaxRecordBody;
      if (!first && !ValidHeader(type, Be16(r + 1), len)) {
        if (s.client_dir < 0) {
          NotTls(s);
        } else if (!d.encrypted) {
          ++stats.handshake_lost;
          Drop(s);
        } else {
          ++stats.malformed_records;
          StartResync(d);
          continue;
        }
        return;
      }
      if (avail < 5 + len) return;
      bool is_protected = d.encrypted && (s.version != 0x0304 || type == kApplicationData);
      if (!is_protected) {
        Step step = PlainRecord(s, di, type, r + 5, len);
        if (step != Step::kNext) return;
      } else {
        if (!d.cipher.ready()) {
          if (s.suite == nullptr) return;  // the ServerHello is not parsed yet
          s.waiting = true;
          s.wait_since = d.last_hdr.ts_ns;
          return;
        }
        if (!ProtectedRecord(s, di, r, 5 + len)) continue;
      }
      d.start += 5 + len;
    }
  }

  Step PlainRecord(Stream& s, int di, uint8_t type, const uint8_t* body, size_t len) {
    Direction& d = s.dir[di];
    switch (type) {
      case kHandshake:
        if (d.encrypted) return Step::kNext;  // TLS 1.3 never sends these in clear after SH
        return FeedHandshake(s, di, body, len) ? Step::kNext : Step::kStop;
      case kChangeCipherSpec:
        if (s.hrr) return Step::kNext;               // TLS 1.3 middlebox compatibility: no meaning
        if (s.suite == nullptr) return Step::kWait;  // version not known yet
        if (s.version != 0x0304) {
          d.encrypted = true;
          d.seq = 0;
        }
        return Step::kNext;
      case kApplicationData:
        if (s.suite == nullptr) return Step::kWait;
        ++stats.malformed_records;
        return Step::kNext;
      default:  // alerts in clear, heartbeats
        return Step::kNext;
    }
  }

  bool FeedHandshake(Stream& s, int di, const uint8_t* p, size_t n) {
    Direction& d = s.dir[di];
    while (n > 0) {
      if (d.hs_skip > 0) {
        size_t k = std::min<size_t>(d.hs_skip, n);
        d.hs_skip -= static_cast<uint32_t>(k);
        p += k;
        n -= k;
        continue;
      }
      if (d.hs.size() < 4) {
        size_t k = std::min<size_t>(4 - d.hs.size(), n);
        d.hs.insert(d.hs.end(), p, p + k);
        p += k;
        n -= k;
        if (d.hs.size() < 4) return true;
        uint8_t t = d.hs[0];
        uint32_t body = uint32_t{d.hs[1]} << 16 | uint32_t{d.hs[2]} << 8 | d.hs[3];
        if (s.client_dir < 0 && t != 1) {
          NotTls(s);
          return false;
        }
        if (t != 1 && t != 2) {
          d.hs.clear();
          d.hs_skip = body;
          continue;
        }
        if (body > kMaxHandshakeMessage) {
          if (s.client_dir < 0)
            NotTls(s);
          else
            HandshakeLost(s);
          return false;
        }
        d.hs.reserve(4 + body);
      }
      size_t want = 4 + (size_t{d.hs[1]} << 16 | size_t{d.hs[2]} << 8 | d.hs[3]);
      size_t k = std::min(want - d.hs.size(), n);
      d.hs.insert(d.hs.end(), p, p + k);
      p += k;
      n -= k;
      if (d.hs.size() == want) {
        bool ok = HandshakeMessage(s, di, d.hs[0], d.hs.data() + 4, want - 4);
        d.hs.clear();
        if (!ok) return false;
      }
    }
    return true;
  }

  void HandshakeLost(Stream& s) {
    ++stats.handshake_lost;
    Drop(s);
  }

  void NotTls(Stream& s) {
    ++stats.not_tls_streams;
    Drop(s);
  }

  void Undecryptable(Stream& s, const std::string& name) {
    ++stats.undecryptable_suite;
    ++stats.undecryptable_by_suite[name];
    Drop(s);
  }

  bool HandshakeMessage(Stream& s, int di, uint8_t type, const uint8_t* m, size_t n) {
    if (type == 1) {  // ClientHello
      if (n < 34) {
        if (s.client_dir < 0)
          NotTls(s);
        else
          HandshakeLost(s);
        return false;
      }
      if (s.client_dir >= 0) {
        if (di != s.client_dir) {
          HandshakeLost(s);
          return false;
        }
        return true;  // the second ClientHello after a HelloRetryRequest
      }
      s.client_dir = di;
      std::memcpy(s.client_random.data(), m + 2, 32);
      s.have_random = true;
      RandomKey rk{s.key.tgid, s.client_random};
      by_random[rk] = s.key;
      auto u = unmatched.find(rk);
      if (u != unmatched.end()) {
        Adopt(s, u->second);
        unmatched.erase(u);
      }
      s.kick = true;
      return true;
    }
    // ServerHello
    if (s.client_dir < 0 || di == s.client_dir || n < 38) {
      HandshakeLost(s);
      return false;
    }
    if (s.suite != nullptr) return true;  // renegotiation: not followed
    size_t i = 0;
    uint16_t legacy = Be16(m);
    i += 2;
    const uint8_t* random = m + i;
    i += 32;
    size_t sid = m[i++];
    if (i + sid + 3 > n) {
      HandshakeLost(s);
      return false;
    }
    i += sid;
    uint16_t suite_id = Be16(m + i);
    i += 3;  // suite, compression
    uint16_t version = legacy;
    bool etm = false;
    if (i + 2 <= n) {
      size_t ext_end = std::min(n, i + 2 + Be16(m + i));
      i += 2;
      while (i + 4 <= ext_end) {
        uint16_t et = Be16(m + i);
        size_t el = Be16(m + i + 2);
        i += 4;
        if (i + el > ext_end) break;
        if (et == 43 && el == 2) version = Be16(m + i);  // supported_versions
        if (et == 22) etm = true;                        // encrypt_then_mac
        i += el;
      }
    }
    if (std::memcmp(random, kHrrRandom, 32) == 0) {  // TLS 1.3 only: wait for the real one
      s.hrr = true;
      s.kick = true;
      return true;
    }
    std::memcpy(s.server_random.data(), random, 32);
    if (version != 0x0303 && version != 0x0304) {
      Undecryptable(s, SuiteName(suite_id) + (version < 0x0303 ? " (TLS < 1.2)" : " (version?)"));
      return false;
    }
    const Suite* suite = FindSuite(suite_id);
    if (suite == nullptr || suite->tls13 != (version == 0x0304)) {
      Undecryptable(s, SuiteName(suite_id));
      return false;
    }
    s.version = version;
    s.suite = suite;
    s.etm = etm && suite->kind == CipherKind::kCbc;
    if (s.etm) ++stats.etm_connections;
    if (version == 0x0304) s.dir[0].encrypted = s.dir[1].encrypted = true;
    TryKeys(s);
    s.kick = true;
    return true;
  }

  bool ProtectedRecord(Stream& s, int di, const uint8_t* r, size_t size) {
    Direction& d = s.dir[di];
    size_t out_len = 0;
    uint8_t type = 0;
    if (d.cipher.Open(r, size, d.seq, plain.data(), &out_len, &type)) {
      if (!ServerWouldAccept(s, di, type, out_len)) {
        // The server refuses it and ends the connection: nothing of it may become a line.
        ++stats.rejected_records;
        d.dead = true;
        return true;
      }
      d.opened = true;
      d.NoteRecord(size);
      ++stats.records_decrypted;
      Content(s, di, type, out_len);
      return true;
    }
    if (s.version == 0x0304 && !d.opened) {
      ++stats.handshake_records_skipped;
      if (++d.skipped > kMaxHandshakeRecords) {
        ++stats.wrong_keys;
        d.dead = true;
      }
      return true;
    }
    ++stats.decrypt_failures;
    StartResync(d);
    return false;
  }

  void StartResync(Direction& d) {
    if (!d.resync) d.resync_trials = 0;
    d.resync = true;
  }

  // What the key opens, the server may still refuse: a hostile client that has the keys (its
  // own) can send records the server rejects, and they must not become audit lines.
  // - plaintext longer than 2^14 bytes (record_overflow);
  // - TLS 1.3: the client's application data before its Finished, which is protected with the
  //   handshake key we never get: some record must have been skipped in that direction first
  //   (Go logs the client's traffic secret before it has read the client's Finished);
  // - TLS 1.2: anything but the Finished handshake message as the first protected record.
  bool ServerWouldAccept(Stream& s, int di, uint8_t type, size_t n) {
    Direction& d = s.dir[di];
    if (n > kMaxPlainRecord) return false;
    if (s.version == 0x0304)
      return d.opened || di != s.client_dir || d.skipped > 0 || type != kApplicationData;
    if (!d.finished) {
      if (type != kHandshake || n < 4 || plain[0] != 20) return false;  // 20: Finished
      d.finished = true;
    }
    return true;
  }

  // Looks for the next record this direction's key opens, at increasing offsets and plausible
  // sequence numbers. True when found (and consumed); false when more bytes are needed or the
  // direction was given up.
  bool Resync(Stream& s, int di) {
    Direction& d = s.dir[di];
    const size_t min = d.cipher.MinRecord();
    const bool tls13 = s.version == 0x0304;
    const size_t max_body = tls13 ? kMaxRecordBody13 : kMaxRecordBody;
    while (true) {
      if (d.avail() < 5) return false;
      const uint8_t* r = d.data();
      size_t len = Be16(r + 3);
      bool candidate =
          Be16(r + 1) == 0x0303 && len + 5 >= min && len <= max_body &&
          (tls13 ? r[0] == kApplicationData : r[0] >= kAlert && r[0] <= kApplicationData);
      if (candidate) {
        if (d.avail() < 5 + len) return false;
        uint64_t seq = 0;
        size_t out_len = 0;
        uint8_t type = 0;
        bool next_key = false;
        switch (Trial(s, d, r, 5 + len, &seq, &out_len, &type, &next_key)) {
          case TrialResult::kGiveUp:
            ++stats.resync_failures;
            d.dead = true;
            d.buf = {};
            d.start = 0;
            return false;
          case TrialResult::kFound:
            if (next_key) {  // the KeyUpdate was in the lost bytes
              ++stats.key_updates;
              if (!d.cipher.Update13()) {
                ++stats.decrypt_failures;
                d.dead = true;
                return false;
              }
            }
            d.resync = false;
            d.resync_trials = 0;
            ++stats.resyncs;
            d.plain_pos += std::max<uint64_t>(1, d.lost);
            d.lost = 0;
            d.seq = seq;
            d.opened = true;
            d.NoteRecord(5 + len);
            ++stats.records_decrypted;
            d.start += 5 + len;
            Content(s, di, type, out_len);
            return true;
          case TrialResult::kNotFound:
            break;
        }
      }
      ++d.start;
      ++d.lost;
    }
  }

  enum class TrialResult { kFound, kNotFound, kGiveUp };

  // Tries the sequence numbers a record after d.lost lost bytes can have: the explicit nonce's
  // (TLS 1.2 GCM), then outward from the estimate by the direction's mean record size. In TLS 1.3,
  // then the next key generation from sequence 0, in case a KeyUpdate was lost.
  TrialResult Trial(Stream& s, Direction& d, const uint8_t* r, size_t size, uint64_t* seq,
                    size_t* out_len, uint8_t* type, bool* next_key) {
    const uint64_t lo = d.seq;
    // At most this many records fit in the lost bytes; the mean record size says where to start.
    const uint64_t span = d.lost / d.cipher.MinRecord() + 2;
    const uint64_t mean = std::max<uint64_t>(d.mean_record(), d.cipher.MinRecord());
    const uint64_t est = std::min(d.lost / mean, span - 1);
    auto attempt = [&](RecordCipher& c, uint64_t q) -> std::optional<TrialResult> {
      if (d.resync_trials++ >= kMaxResyncTrials) return TrialResult::kGiveUp;
      if (!c.Open(r, size, q, plain.data(), out_len, type)) return std::nullopt;
      *seq = q;
      return TrialResult::kFound;
    };
    uint64_t guess = 0;
    bool has_guess = d.cipher.ExplicitSeq(r, size, &guess) && guess >= lo;
    if (has_guess)
      if (auto res = attempt(d.cipher, guess)) return *res;
    // est, est-1, est+1, est-2, ... within [0, span), kMaxSeqTrials of them
    size_t tried = 0;
    for (uint64_t k = 0; k < 2 * span && tried < kMaxSeqTrials; ++k) {
      uint64_t off = k % 2 == 0 ? est + k / 2 : est - (k + 1) / 2;
      if ((k % 2 == 1 && (k + 1) / 2 > est) || off >= span) continue;
      if (has_guess && lo + off == guess) continue;
      ++tried;
      if (auto res = attempt(d.cipher, lo + off)) return *res;
    }
    if (s.version == 0x0304 && probe_keys != nullptr && d.cipher.keys() != nullptr &&
        probe.Init13(*s.suite, d.cipher.keys()->traffic, probe_keys) && probe.Update13()) {
      std::optional<TrialResult> res;
      for (uint64_t q = 0; q < std::min({est + 64, span, uint64_t{kMaxSeqTrials}}) && !res; ++q)
        res = attempt(probe, q);
      probe.Reset();
      OPENSSL_cleanse(probe_keys, sizeof(DirKeys));
      if (res) {
        *next_key = *res == TrialResult::kFound;
        return *res;
      }
    }
    return TrialResult::kNotFound;
  }

  void Content(Stream& s, int di, uint8_t type, size_t n) {
    Direction& d = s.dir[di];
    ++d.seq;
    const uint8_t* p = plain.data();
    switch (type) {
      case kApplicationData:
        Emit(s, di, p, n);
        break;
      case kHandshake:
        if (s.version == 0x0304) {
          bool update = false;
          for (size_t i = 0; i + 4 <= n;) {
            size_t len = size_t{p[i + 1]} << 16 | size_t{p[i + 2]} << 8 | p[i + 3];
            if (p[i] == 24) update = true;  // KeyUpdate
            i += 4 + len;
          }
          if (update) {
            ++stats.key_updates;
            d.seq = 0;
            if (!d.cipher.Update13()) {
              ++stats.decrypt_failures;
              d.dead = true;
            }
          }
        }
        break;
      case kAlert:
        if (n >= 2 && p[1] == 0) ++stats.close_notify;
        break;
      default:
        break;
    }
  }

  void Emit(Stream& s, int di, const uint8_t* p, size_t n) {
    Direction& d = s.dir[di];
    tap_data& o = *out;
    for (size_t off = 0; off < n; off += TAP_CHUNK_BYTES) {
      size_t k = std::min<size_t>(TAP_CHUNK_BYTES, n - off);
      o.hdr = d.last_hdr;
      o.hdr.type = TAP_EV_DATA;
      o.hdr.conn = s.out_conn;
      o.pos = d.plain_pos + off;
      o.call_len = static_cast<uint32_t>(n);
      o.offset = static_cast<uint32_t>(off);
      o.len = static_cast<uint32_t>(k);
      o.dir = static_cast<uint8_t>(di);
      std::memcpy(o.data, p + off, k);
      ++stats.plaintext_records;
      sink(&o, TAP_DATA_HDR_BYTES + k);
    }
    stats.plaintext_bytes += n;
    d.plain_pos += n;
  }

  // --- secrets ---------------------------------------------------------------------------

  static void Store(KeyMaterial& km, const tap_secret& sec) {
    size_t len = std::min<size_t>(sec.len, TAP_SECRET_MAX);
    switch (sec.label) {
      case TAP_SECRET_MASTER:
        if (len >= 48) {
          std::memcpy(km.master, sec.secret, 48);
          km.master_len = 48;
        }
        break;
      case TAP_SECRET_CLIENT_TRAFFIC_0:
        std::memcpy(km.client_traffic, sec.secret, len);
        km.client_traffic_len = static_cast<uint8_t>(len);
        break;
      case TAP_SECRET_SERVER_TRAFFIC_0:
        std::memcpy(km.server_traffic, sec.secret, len);
        km.server_traffic_len = static_cast<uint8_t>(len);
        break;
      default:
        break;
    }
  }

  static void Merge(KeyMaterial& to, const KeyMaterial& from) {
    if (from.master_len != 0) {
      std::memcpy(to.master, from.master, sizeof(to.master));
      to.master_len = from.master_len;
    }
    if (from.client_traffic_len != 0) {
      std::memcpy(to.client_traffic, from.client_traffic, sizeof(to.client_traffic));
      to.client_traffic_len = from.client_traffic_len;
    }
    if (from.server_traffic_len != 0) {
      std::memcpy(to.server_traffic, from.server_traffic, sizeof(to.server_traffic));
      to.server_traffic_len = from.server_traffic_len;
    }
  }

  void SetConn(Stream& s, uint64_t conn) {
    if (conn != 0 && !s.conn_from_secret && !s.registered) {
      s.out_conn = conn;
      s.conn_from_secret = true;
    }
  }

  void Adopt(Stream& s, Unmatched& u) {
    if (s.km == nullptr) {
      s.km = u.km;
    } else {
      Merge(*s.km, *u.km);
      pool.Free(u.km);
    }
    u.km = nullptr;
    SetConn(s, u.conn);
  }

  void OnSecret(const tap_secret& sec) {
    ++stats.secrets_in;
    if (sec.label != TAP_SECRET_MASTER && sec.label != TAP_SECRET_CLIENT_TRAFFIC_0 &&
        sec.label != TAP_SECRET_SERVER_TRAFFIC_0)
      return;  // handshake traffic secrets: their records need not be read
    RandomKey rk{sec.hdr.tgid, {}};
    std::memcpy(rk.random.data(), sec.client_random, 32);
    auto it = by_random.find(rk);
    if (it != by_random.end()) {
      auto st = streams.find(it->second);
      if (st != streams.end()) {
        Stream& s = *st->second;
        if (!s.live) return;
        if (s.km == nullptr) s.km = static_cast<KeyMaterial*>(pool.Alloc());
        if (s.km == nullptr) {
          ++stats.secrets_dropped;
          return;
        }
        Store(*s.km, sec);
        SetConn(s, sec.hdr.conn);
        TryKeys(s);
        if (s.waiting) Resume(s);
        if (s.closed && !s.waiting && sec.hdr.ts_ns >= s.close_after) End(s, s.close_hdr);
        return;
      }
      by_random.erase(it);
    }
    auto u = unmatched.find(rk);
    if (u == unmatched.end()) {
      if (unmatched.size() >= opts.max_connections) {
        ++stats.secrets_dropped;
        return;
      }
      auto* km = static_cast<KeyMaterial*>(pool.Alloc());
      if (km == nullptr) {
        ++stats.secrets_dropped;
        return;
      }
      u = unmatched.emplace(rk, Unmatched{km, 0, sec.hdr.ts_ns}).first;
    }
    Store(*u->second.km, sec);
    if (sec.hdr.conn != 0) u->second.conn = sec.hdr.conn;
  }

  void TryKeys(Stream& s) {
    if (s.suite == nullptr || s.km == nullptr || s.client_dir < 0 || !s.live) return;
    KeyMaterial& km = *s.km;
    const Suite& suite = *s.suite;
    bool failed = false;
    if (suite.tls13) {
      for (int di = 0; di < 2; ++di) {
        Direction& d = s.dir[di];
        if (d.cipher.ready()) continue;
        bool client = di == s.client_dir;
        uint8_t len = client ? km.client_traffic_len : km.server_traffic_len;
        if (len < suite.hash_len) continue;
        if (!d.cipher.Init13(suite, client ? km.client_traffic : km.server_traffic, &km.dir[di]))
          failed = true;
      }
    } else if (km.master_len == 48 && !s.dir[0].cipher.ready()) {
      size_t mac = suite.mac_len, key = suite.key_len, iv = suite.fixed_iv_len;
      size_t total = 2 * (mac + key + iv);
      uint8_t* kb = km.key_block;
      if (!Tls12KeyBlock(suite.prf_hash, km.master, 48, s.client_random.data(),
                         s.server_random.data(), kb, total)) {
        failed = true;
      } else {
        DirKeys& c = km.dir[s.client_dir];
        DirKeys& v = km.dir[1 - s.client_dir];
        std::memcpy(c.mac_key, kb, mac);
        std::memcpy(v.mac_key, kb + mac, mac);
        std::memcpy(c.key, kb + 2 * mac, key);
        std::memcpy(v.key, kb + 2 * mac + key, key);
        std::memcpy(c.iv, kb + 2 * (mac + key), iv);
        std::memcpy(v.iv, kb + 2 * (mac + key) + iv, iv);
        OPENSSL_cleanse(kb, sizeof(km.key_block));
        if (!s.dir[s.client_dir].cipher.Init12(suite, &c, s.etm) ||
            !s.dir[1 - s.client_dir].cipher.Init12(suite, &v, s.etm))
          failed = true;
      }
    }
    if (failed) {
      ++stats.decrypt_failures;
      Drop(s);
      return;
    }
    if (!s.registered && (s.dir[0].cipher.ready() || s.dir[1].cipher.ready())) {
      PairKey out{s.key.tgid, s.out_conn};
      auto owner = owners.find(out);
      if (owner != owners.end() && !(owner->second == s.key)) {
        auto old = streams.find(owner->second);
        if (old != streams.end() && old->second->live) {
          Stream& o = *old->second;
          tap_hdr end = o.closed ? o.close_hdr : tap_hdr{};
          if (!o.closed) end.ts_ns = o.last_ts;
          End(o, end);
        }
      }
      owners[out] = s.key;
      s.registered = true;
      s.announced = true;
      ++stats.connections_decrypted;
      ++decrypts[out];
    }
  }

  void Resume(Stream& s) {
    s.waiting = false;
    s.wait_since = 0;
    s.kick = true;
    Process(s, s.first_dir);
    if (s.waiting || !s.live) return;
    std::vector<uint8_t> held;
    held.swap(s.pending);
    pending_total -= held.size();
    for (size_t i = 0; i + sizeof(PendingFrame) <= held.size();) {
      PendingFrame f;
      std::memcpy(&f, held.data() + i, sizeof(f));
      i += sizeof(f);
      HandleCipher(s, f.hdr, static_cast<int>(f.dir), f.pos, held.data() + i, f.len);
      i += f.len;
    }
  }

  // --- ends ------------------------------------------------------------------------------

  // grace: the socket may still be read for this long (TCP_CLOSE after a reset); the fd's
  // close ends it at once.
  void Close(Stream& s, const tap_hdr& hdr, uint64_t grace = 0) {
    s.closed = true;
    s.close_hdr = hdr;
    s.close_after = hdr.ts_ns + grace;
    if (s.live && s.waiting) return;  // the secrets may still come: End after them or expiry
    if (grace == 0) End(s, hdr);
  }

  void Unregister(Stream& s) {
    if (!s.registered) return;
    s.registered = false;
    auto it = decrypts.find({s.key.tgid, s.out_conn});
    if (it != decrypts.end() && --it->second <= 0) decrypts.erase(it);
    auto owner = owners.find({s.key.tgid, s.out_conn});
    if (owner != owners.end() && owner->second == s.key) owners.erase(owner);
  }

  // Frees everything of a stream but its table entry: keys wiped.
  void Release(Stream& s) {
    s.released = true;
    for (Direction& d : s.dir) {
      d.cipher.Reset();
      d.buf = {};
      d.hs = {};
      d.start = 0;
    }
    pending_total -= s.pending.size();
    s.pending = {};
    if (s.km != nullptr) pool.Free(s.km);
    s.km = nullptr;
  }

  void Drop(Stream& s) {
    if (!s.live) return;
    s.live = false;
    s.waiting = false;
    Unregister(s);
    if (s.have_random) {
      auto it = by_random.find({s.key.tgid, s.client_random});
      if (it != by_random.end() && it->second == s.key) by_random.erase(it);
    }
    // Buffers go later (HandleCipher, Tick, End): a caller up the stack may still point in them.
    if (s.km != nullptr) {
      for (Direction& d : s.dir) d.cipher.Reset();
      pool.Free(s.km);
      s.km = nullptr;
    }
  }

  void End(Stream& s, const tap_hdr& hdr) {
    if (s.announced) {
      tap_conn_end e{};
      e.hdr = hdr;
      e.hdr.type = TAP_EV_CONN_END;
      e.hdr.tgid = s.key.tgid;
      e.hdr.fd = s.fd >= 0 ? s.fd : hdr.fd;
      e.hdr.conn = s.out_conn;
      e.read_pos = s.dir[TAP_DIR_READ].plain_pos;
      e.write_pos = s.dir[TAP_DIR_WRITE].plain_pos;
      ++stats.conn_ends;
      sink(&e, sizeof(e));
    }
    Drop(s);
    Release(s);
    if (s.fd >= 0) {
      auto f = by_fd.find(FdKey(s.key.tgid, s.fd));
      if (f != by_fd.end() && f->second == s.key) by_fd.erase(f);
    }
    PairKey key = s.key;
    auto b = by_sock.find(key.id);
    if (b != by_sock.end() && b->second == key) by_sock.erase(b);
    streams.erase(key);  // s is gone
  }

  void Tick(uint64_t now) {
    for (auto it = unmatched.begin(); it != unmatched.end();) {
      if (now > it->second.since && now - it->second.since > opts.secret_wait_ns) {
        ++stats.secrets_expired;
        pool.Free(it->second.km);
        it = unmatched.erase(it);
      } else {
        ++it;
      }
    }
    std::vector<Stream*> ended;
    for (auto& [k, sp] : streams) {
      Stream& s = *sp;
      if (s.live && s.waiting && now > s.wait_since && now - s.wait_since > opts.secret_wait_ns) {
        ++stats.no_secrets;
        Drop(s);
      }
      if (!s.live && !s.released) Release(s);
      if (s.closed && !s.waiting && now >= s.close_after) ended.push_back(&s);
    }
    for (Stream* s : ended) End(*s, s->close_hdr);
  }
};

DecryptStage::DecryptStage(Sink sink, StageOptions options)
    : impl_(std::make_unique<Impl>(std::move(sink), options)) {}

DecryptStage::~DecryptStage() = default;

void DecryptStage::OnRecord(const void* record, size_t size) { impl_->OnRecord(record, size); }

void DecryptStage::Tick(uint64_t now_mono_ns) { impl_->Tick(now_mono_ns); }

const StageStats& DecryptStage::stats() const { return impl_->stats; }

bool DecryptStage::Decrypts(uint32_t tgid, uint64_t conn) const {
  return impl_->decrypts.count({tgid, conn}) != 0;
}

}  // namespace mat::tls
