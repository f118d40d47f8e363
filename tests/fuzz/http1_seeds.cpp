// Writes a seed corpus for http1_fuzz into the directory given as argv[1]: HTTP/1.1
// conversations covering every framing, pipelining, interim and bodiless responses, upgrades,
// gaps, closes and hostile shapes, in the input format of fuzz_input.h (as http1_fuzz.cpp reads
// it).

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "fuzz_input.h"

namespace {

constexpr uint8_t kStart = mat::fuzz::kConfigAtStart;
constexpr uint8_t kSmall = mat::fuzz::kConfigSmall;
constexpr uint8_t Amplify(unsigned a) { return static_cast<uint8_t>(0xc0 | (a & 7) << 3); }

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
  // `missing` = byte << shift (http1_fuzz's reading of a gap record).
  Seed& Gap(bool response, uint8_t byte, unsigned shift = 0) {
    bytes_.push_back(
        static_cast<char>((response ? mat::fuzz::kControlResponse : 0) | 0x40 | (shift & 0x1f)));
    bytes_.push_back(static_cast<char>(byte));
    return *this;
  }
  Seed& Expire() {
    bytes_ += mat::fuzz::ExpireRecord();
    return *this;
  }
  Seed& Close() {
    bytes_.push_back(static_cast<char>(0x61));
    return *this;
  }
  Seed& Start(bool response) {
    bytes_.push_back(static_cast<char>((response ? mat::fuzz::kControlResponse : 0) | 0x62));
    return *this;
  }
  // Bytes fed in calls of `n` (<= 8192) bytes.
  Seed& Split(bool response, const std::string& b, size_t n) {
    for (size_t i = 0; i < b.size(); i += n) {
      const size_t v = std::min(n, b.size() - i) - 1;
      bytes_.push_back(
          static_cast<char>((response ? mat::fuzz::kControlResponse : 0) | 0x20 | (v >> 8)));
      bytes_.push_back(static_cast<char>(v & 0xff));
      bytes_ += b.substr(i, v + 1);
    }
    return *this;
  }
  // Bytes fed one record of `n` bytes at a time (short records: control byte < 0x20).
  Seed& Pieces(bool response, const std::string& b, size_t n) {
    for (size_t i = 0; i < b.size(); i += n) {
      const std::string piece = b.substr(i, n);
      bytes_.push_back(
          static_cast<char>((response ? mat::fuzz::kControlResponse : 0) | (piece.size() - 1)));
      bytes_ += piece;
    }
    return *this;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

std::string Chunk(const std::string& data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return std::string(size) + data + "\r\n";
}

const std::string kGet = "GET /v1.41/containers/json?all=1 HTTP/1.1\r\nHost: docker\r\n\r\n";
const std::string kOk =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    "Content-Length: 3\r\n\r\n[]\n";
std::string Post(const std::string& body) {
  return "POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: "
         "application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}
const std::string kCreated = "HTTP/1.1 201 Created\r\nContent-Length: 12\r\n\r\n{\"Id\":\"4f\"}\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::vector<Seed> seeds;

  // Keep-alive exchanges, pipelining, every framing.
  seeds.push_back(
      Seed(kStart).Req(kGet).Resp(kOk).Req(Post("{\"Image\":\"alpine\"}")).Resp(kCreated));
  seeds.push_back(Seed(kStart | kSmall).Req(kGet + kGet + Post("{}")).Resp(kOk + kOk + kCreated));
  seeds.push_back(
      Seed(kStart)
          .Req("PUT /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + Chunk("hello") +
               Chunk(" world") + "0\r\nX-Trailer: 1\r\n\r\n")
          .Resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nabcde\r\n"
                "0\r\n\r\n"));
  seeds.push_back(Seed(kStart).Req(kGet).Resp("HTTP/1.0 200 OK\r\n\r\nuntil the end").Close());
  seeds.push_back(
      Seed(kStart)
          .Req("HEAD /x HTTP/1.1\r\n\r\n" + kGet + kGet)
          .Resp("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nHTTP/1.1 204 No "
                "Content\r\nContent-Length: 5\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n"));
  seeds.push_back(Seed(kStart)
                      .Req("POST /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
                      .Resp("HTTP/1.1 100 Continue\r\n\r\n")
                      .Req("data")
                      .Resp(kOk));
  // Split into small records.
  seeds.push_back(
      Seed(kStart).Pieces(false, kGet + Post("{\"a\":1}"), 7).Pieces(true, kOk + kCreated, 5));
  // Upgrades and tunnels, declined or not.
  seeds.push_back(Seed(kStart)
                      .Req("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                           "\x81\x05hello")
                      .Resp("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\n\r\n\x81\x02ok"));
  seeds.push_back(Seed(kStart)
                      .Req("GET /ws HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n" + kGet)
                      .Resp(kOk + kOk));
  seeds.push_back(Seed(kStart)
                      .Req("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n\x16\x03\x01")
                      .Resp("HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03"));
  // Gaps: inside a body (cheap and huge), past its end, in a head, unknown size.
  seeds.push_back(Seed(kStart)
                      .Req(kGet)
                      .Resp("HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\nabc")
                      .Gap(true, 0xee, 20)
                      .Resp(std::string(10, 'x'))
                      .Req(kGet)
                      .Resp(kOk));
  seeds.push_back(Seed(kStart)
                      .Req(Post(std::string(300, 'b')).substr(0, 150))
                      .Gap(false, 100)
                      .Req(std::string(61, 'b') + kGet)
                      .Resp(kCreated + kOk));
  seeds.push_back(
      Seed(kStart).Req("GET /a HTTP/1.1\r\nHo").Gap(false, 0).Req(kGet).Resp(kOk + kOk));
  seeds.push_back(
      Seed(0).Req("ntainers/json HTTP/1.1\r\n\r\n" + kGet).Resp("K\r\n\r\n" + kOk + kOk));
  // Expiry, close in the middle, data after the close.
  seeds.push_back(Seed(kStart | kSmall).Req(kGet + kGet).Expire().Resp(kOk).Close().Resp(kOk));
  seeds.push_back(Seed(0).Start(false).Start(true).Req(kGet).Resp(kOk));
  // Hostile shapes (issue 17): smuggling framings, forged pipelined requests, padding.
  seeds.push_back(Seed(kStart)
                      .Req("POST /a HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: "
                           "chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n")
                      .Resp("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"));
  seeds.push_back(Seed(kStart)
                      .Req("POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2d\nGET /fake "
                           "HTTP/1.1\r\nHost: h\r\nX: 12345\r\n\r\n\r\n0\r\n\r\n" +
                           kGet)
                      .Resp(kOk + kOk));
  seeds.push_back(Seed(kStart)
                      .Req("GET /a HTTP/1.1\r\nBad(Name: 1\r\n\r\nDELETE /b HTTP/1.1\r\n\r\n")
                      .Resp(kOk + kOk));
  seeds.push_back(Seed(kStart)
                      .Req("GET /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
                      .Resp("HTTP/1.1 400 Bad Request\r\n\r\n"));
  seeds.push_back(Seed(kStart | Amplify(4))
                      .Req("GET /padded HTTP/1.1\r\nX: ")
                      .Req(std::string(4000, 'a'))
                      .Req("\r\n\r\n")
                      .Resp(kOk));
  seeds.push_back(Seed(kStart | kSmall | Amplify(5))
                      .Req("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;")
                      .Req(std::string(2000, 'e')));
  seeds.push_back(Seed(kSmall | Amplify(6)).Req("GET /x HTTP/1.1\r\n\r\n").Resp("HTTP/1.1 200"));
  // Lines near the chunk-line limit, whole and in pieces (the split check compares them).
  const std::string chunked = "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  seeds.push_back(Seed(kStart)
                      .Split(false,
                             chunked + "5;" + std::string(4200, 'e') + "\r\nhello\r\n0\r\nT: " +
                                 std::string(3000, 't') + "\r\n\r\n" + kGet,
                             1000)
                      .Resp(kOk + kOk));
  seeds.push_back(Seed(kStart)
                      .Req("GET  /spaces   HTTP/1.1\r\nX: a\r\n folded\r\n\r\n" +
                           std::string("GET /lf HTTP/1.1\nHost: h\n\n"))
                      .Resp("HTTP/1.1 200\nContent-Length: 0\n\n" + kOk));

  for (size_t i = 0; i < seeds.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "/seed-%02zu", i);
    std::ofstream out(dir + name, std::ios::binary);
    out << seeds[i].bytes();
    if (!out) {
      std::fprintf(stderr, "cannot write %s%s\n", dir.c_str(), name);
      return 1;
    }
  }
  std::printf("%zu seeds written to %s\n", seeds.size(), dir.c_str());
  return 0;
}
