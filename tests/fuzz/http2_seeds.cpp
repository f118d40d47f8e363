// Writes a seed corpus for http2_fuzz into the directory given as argv[1]: valid conversations
// (HPACK by nghttp2's encoder, frames by hand) covering every frame type and the paths of the
// parser, in the input format of fuzz_input.h.

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "fuzz_input.h"

namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

std::string U32(uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string Frame(uint8_t type, uint8_t flags, uint32_t sid, const std::string& payload) {
  const size_t n = payload.size();
  std::string f{static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n),
                static_cast<char>(type), static_cast<char>(flags)};
  return f + U32(sid) + payload;
}

class Encoder {
 public:
  Encoder() { nghttp2_hd_deflate_new(&d_, 4096); }
  ~Encoder() { nghttp2_hd_deflate_del(d_); }
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;
  std::string Block(const Fields& fields) {
    std::vector<nghttp2_nv> nva;
    for (const auto& [name, value] : fields) {
      nva.push_back(nghttp2_nv{const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(name.data())),
                               const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(value.data())),
                               name.size(), value.size(), NGHTTP2_NV_FLAG_NONE});
    }
    std::string out(nghttp2_hd_deflate_bound(d_, nva.data(), nva.size()), '\0');
    const ssize_t n = nghttp2_hd_deflate_hd(d_, reinterpret_cast<uint8_t*>(out.data()), out.size(),
                                            nva.data(), nva.size());
    out.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return out;
  }
  void ChangeTableSize(size_t n) { nghttp2_hd_deflate_change_table_size(d_, n); }

 private:
  nghttp2_hd_deflater* d_ = nullptr;
};

std::string Headers(uint32_t sid, const std::string& block, bool end_stream) {
  return Frame(0x1, 0x4 | (end_stream ? 0x1 : 0), sid, block);
}
std::string Data(uint32_t sid, const std::string& body, bool end) {
  return Frame(0x0, end ? 0x1 : 0, sid, body);
}
std::string Settings() { return Frame(0x4, 0, 0, std::string("\x00\x01", 2) + U32(4096)); }

Fields Get(const std::string& path) {
  return {{":method", "GET"},
          {":scheme", "https"},
          {":authority", "10.0.0.1:6443"},
          {":path", path},
          {"user-agent", "kubectl/v1.27.4"}};
}

Fields Post(const std::string& path) {
  return {{":method", "POST"},
          {":scheme", "https"},
          {":authority", "10.0.0.1:6443"},
          {":path", path},
          {"content-type", "application/json"}};
}

// One seed: a configuration byte, then the records of both directions, interleaved in the
// order the pieces are added.
class Seed {
 public:
  explicit Seed(uint8_t config) { bytes_.push_back(static_cast<char>(config)); }
  Seed& Req(const std::string& b) {
    bytes_ += mat::fuzz::DataRecords(false, b);
    return *this;
  }
  Seed& Resp(const std::string& b) {
    bytes_ += mat::fuzz::DataRecords(true, b);
    return *this;
  }
  Seed& Gap(bool response, uint8_t missing) {
    bytes_ += mat::fuzz::GapRecord(response, missing);
    return *this;
  }
  Seed& Expire() {
    bytes_ += mat::fuzz::ExpireRecord();
    return *this;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::vector<Seed> seeds;
  const uint8_t kStart = mat::fuzz::kConfigAtStart | mat::fuzz::kConfigPreface;
  const std::string server_start = Settings() + Frame(0x4, 0x1, 0, "");

  {  // GET and POST, responses with DATA, PING, WINDOW_UPDATE, GOAWAY.
    Encoder q, r;
    Seed s(kStart);
    s.Req(Settings() + Frame(0x8, 0, 0, U32(65535)) +
          Headers(1, q.Block(Get("/api/v1/pods")), true));
    s.Resp(server_start +
           Headers(1, r.Block({{":status", "200"}, {"content-type", "application/json"}}), false));
    s.Req(Headers(3, q.Block(Post("/api/v1/namespaces/default/pods")), false) +
          Data(3, R"({"kind":"Pod"})", true) + Frame(0x6, 0, 0, std::string(8, 'p')));
    s.Resp(Data(1, "{\"items\":[]}", true) +
           Headers(3, r.Block({{":status", "201"}, {"content-type", "application/json"}}), false) +
           Data(3, "{}", true) + Frame(0x7, 0, 0, U32(3) + U32(0)));
    seeds.push_back(s);
  }
  {  // Small limits, CONTINUATION, padding, PRIORITY, trailers, 100-continue, Expire.
    Encoder q, r;
    Seed s(kStart | mat::fuzz::kConfigSmall);
    const std::string b = q.Block(Post("/apis/apps/v1/namespaces/default/deployments"));
    s.Req(Settings() + Frame(0x1, 0x20 | 0x8, 1, "\x02" + U32(0) + "\x10" + b.substr(0, 4) + "zz") +
          Frame(0x9, 0, 1, b.substr(4, 3)) + Frame(0x9, 0x4, 1, b.substr(7)));
    s.Resp(server_start + Headers(1, r.Block({{":status", "100"}}), false));
    s.Req(Frame(0x0, 0x8, 1,
                "\x03"
                "0123456789abcdefghij"
                "pad") +
          Headers(1, q.Block({{"x-checksum", "1"}}), true));
    s.Expire();
    s.Resp(Headers(1, r.Block({{":status", "200"}, {"grpc-encoding", "identity"}}), false) +
           Data(1, "0123456789abcdefghij", false) +
           Headers(1, r.Block({{"grpc-status", "0"}}), true) + Frame(0x2, 0, 3, U32(1) + "\x10"));
    seeds.push_back(s);
  }
  {  // Interleaved streams, RST_STREAM, PUSH_PROMISE, dynamic table size updates.
    Encoder q, r;
    Seed s(kStart);
    const std::string q1 = q.Block(Get("/api/v1/pods?watch=true"));
    const std::string q3 = q.Block(Get("/api/v1/nodes"));
    q.ChangeTableSize(0);
    const std::string q5 = q.Block(Get("/api/v1/services"));
    q.ChangeTableSize(4096);
    const std::string q7 = q.Block(Get("/api/v1/services"));
    s.Req(Settings() + Headers(1, q1, true) + Headers(3, q3, true) + Headers(5, q5, true) +
          Headers(7, q7, true));
    const std::string promise = r.Block(Get("/pushed.css"));
    const std::string r1 = r.Block({{":status", "200"}, {"content-type", "application/json"}});
    const std::string r3 = r.Block({{":status", "200"}, {"content-type", "application/json"}});
    s.Resp(server_start + Frame(0x5, 0x4, 3, U32(2) + promise) + Headers(1, r1, false) +
           Headers(3, r3, false) + Data(1, "{\"type\":\"ADDED\"}", false) + Data(3, "[]", true) +
           Headers(2, r.Block({{":status", "200"}}), true));
    s.Req(Frame(0x3, 0, 1, U32(8)) + Frame(0x3, 0, 5, U32(8)));
    seeds.push_back(s);
  }
  {  // A mid-stream join and gaps.
    Encoder q, r;
    q.Block(Get("/api/v1/pods"));
    r.Block({{":status", "200"}, {"content-type", "application/json"}});
    Seed s(0);
    s.Resp(std::string("\x00\x10\x00\x00\x00\x00\x00\x00\x07", 9).substr(3) + "tail of a frame");
    s.Req(Headers(9, q.Block(Get("/api/v1/pods")), true));
    s.Resp(Headers(9, r.Block({{":status", "200"}, {"content-type", "application/json"}}), false));
    s.Resp(Data(9, std::string(100, 'd'), false).substr(0, 40));
    s.Gap(true, 69);
    s.Req(Headers(11, q.Block(Get("/healthz")), true));
    s.Gap(false, 0);
    s.Req(Headers(13, q.Block(Get("/readyz")), true));
    s.Resp(Headers(11, r.Block({{":status", "200"}}), true) + Data(9, "x", true));
    seeds.push_back(s);
  }
  {  // A fatal error from the start.
    Encoder q;
    Seed s(kStart);
    s.Req(Settings() + Headers(1, q.Block(Get("/a")), true) + Frame(0x4, 0, 1, ""));
    seeds.push_back(s);
  }

  for (size_t i = 0; i < seeds.size(); ++i) {
    const std::string path = dir + "/seed-" + std::to_string(i);
    std::ofstream out(path, std::ios::binary);
    out << seeds[i].bytes();
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      return 1;
    }
  }
  std::printf("%zu seeds written to %s\n", seeds.size(), dir.c_str());
  return 0;
}
