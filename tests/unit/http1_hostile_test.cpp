// Hostile HTTP/1.1 byte sequences (issue 17), fed in both directions as nginx 1.22 answered
// them (each response below was recorded from nginx 1.22.1 on this machine, Date headers
// kept): the server's answers are the ground truth. No line for bytes the server never read
// as a request, no status for a request it never answered, no pairing shift.
#include <gtest/gtest.h>
#include <malloc.h>

#include <memory>
#include <string>
#include <vector>

#include "http/http1.h"

namespace mat::http {
namespace {

constexpr Direction kReq = Direction::kRequest;
constexpr Direction kResp = Direction::kResponse;

struct Got {
  HttpExchange ex;
  ExchangeEvent event;
};

class Harness {
 public:
  explicit Harness(Http1Options options = {})
      : conn_(options, [this](HttpExchange&& ex, ExchangeEvent ev) {
          got.push_back(Got{std::move(ex), ev});
        }) {
    conn_.MarkStreamStart(kReq);
    conn_.MarkStreamStart(kResp);
  }
  void Req(std::string_view bytes, uint64_t ts = 1) { conn_.OnData(kReq, bytes, ts); }
  void Resp(std::string_view bytes, uint64_t ts = 2) { conn_.OnData(kResp, bytes, ts); }
  void Close(uint64_t ts = 99) { conn_.OnClose(ts); }
  const Http1Stats& stats() const { return conn_.stats(); }

  // "METHOD target status" per reported exchange ("-" for no status).
  std::vector<std::string> Lines() const {
    std::vector<std::string> out;
    for (const Got& g : got) {
      std::string line = g.ex.request.method + " " + g.ex.request.target + " ";
      if (g.event == ExchangeEvent::kResponseComplete && g.ex.response)
        line += std::to_string(g.ex.response->status);
      else
        line += "-";
      out.push_back(line);
    }
    return out;
  }

  std::vector<Got> got;

 private:
  Http1Connection conn_;
};

using Lines = std::vector<std::string>;

const std::string kGet = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";

const std::string k200 =
    "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 15:37:42 GMT\r\n"
    "Content-Type: text/plain\r\nContent-Length: 3\r\n"
    "Last-Modified: Sun, 06 Dec 2026 15:37:23 GMT\r\nConnection: keep-alive\r\n"
    "ETag: \"6b158133-3\"\r\nAccept-Ranges: bytes\r\n\r\nok\n";

const std::string k404 =
    "HTTP/1.1 404 Not Found\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 15:37:42 GMT\r\n"
    "Content-Type: text/html\r\nContent-Length: 153\r\nConnection: keep-alive\r\n\r\n"
    "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
    "<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n"
    "</body>\r\n</html>\r\n";

const std::string k400Close =
    "HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 15:37:42 GMT\r\n"
    "Content-Type: text/html\r\nContent-Length: 157\r\nConnection: close\r\n\r\n"
    "<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n"
    "<center><h1>400 Bad Request</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n"
    "</body>\r\n</html>\r\n";

// nginx's 200 to a request that asked for the close (or to an HTTP/1.0 one).
const std::string k200Close =
    "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 15:37:42 GMT\r\n"
    "Content-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";

// Row 1: framings nginx refuses (400, close) and Go reads one way or another, each followed
// by a pipelined GET nginx never reads.
TEST(Http1Hostile, AmbiguousFramingThenPipelinedGet) {
  for (const char* framing : {
           "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
           "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
           "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
           "Content-Length: -1\r\n\r\n",
       }) {
    Harness h;
    h.Req(std::string("POST /x HTTP/1.1\r\nHost: a\r\n") + framing + kGet);
    h.Resp(k400Close);
    h.Close();
    EXPECT_EQ(h.Lines(), (Lines{"POST /x 400"})) << framing;
    EXPECT_EQ(h.stats().orphan_responses, 0u) << framing;
  }
}

// The same, the response first seen before the pipelined bytes (another order of events).
TEST(Http1Hostile, AmbiguousFramingAnsweredBeforeThePipelinedBytesArrive) {
  Harness h;
  h.Req("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n");
  h.Resp(k400Close);
  h.Req(kGet);
  h.Close();
  EXPECT_EQ(h.Lines(), (Lines{"POST /x 400"}));
  EXPECT_GT(h.stats().bytes_after_close, 0u);
}

// Row 2: a chunk size ended by a bare LF (nginx 1.22 accepts it), a fake request in the chunk
// data: nginx served the POST (200) and the real next request (404).
TEST(Http1Hostile, BareLfChunkSizeCarryingAFakeRequest) {
  const std::string fake = "GET /fake HTTP/1.1\r\nHost: a\r\n\r\n";
  Harness h;
  h.Req("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string("1e\n") +
        fake.substr(0, 30) + "\r\n0\r\n\r\n" + "GET /real HTTP/1.1\r\nHost: a\r\n\r\n");
  h.Resp(k200 + k404);
  h.Close();
  EXPECT_EQ(h.Lines(), (Lines{"POST /x 200", "GET /real 404"}));
}

// Row 3: Connection: close (request or response), HTTP/1.0, then a pipelined DELETE.
TEST(Http1Hostile, NothingAfterTheClose) {
  const std::string del = "DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n";
  {
    Harness h;  // the request asks for the close
    h.Req("GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + del);
    h.Resp(k200Close);
    h.Close();
    EXPECT_EQ(h.Lines(), (Lines{"GET /x 200"}));
    EXPECT_GT(h.stats().bytes_after_close, 0u);
  }
  {
    Harness h;  // the request asks for it, and the server's answer never comes
    h.Req("GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + del);
    h.Close();
    EXPECT_EQ(h.Lines(), (Lines{"GET /x -"}));
  }
  {
    Harness h;  // HTTP/1.0 without keep-alive
    h.Req("GET /x HTTP/1.0\r\n\r\n" + del);
    h.Resp(k200Close);
    h.Close();
    EXPECT_EQ(h.Lines(), (Lines{"GET /x 200"}));
  }
  {
    Harness h;  // the response says it
    h.Req(kGet + del + del);
    h.Resp(k200Close);
    h.Close();
    EXPECT_EQ(h.Lines(), (Lines{"GET /x 200"}));
    EXPECT_EQ(h.stats().requests_after_close, 2u);
  }
  {
    Harness h;  // keep-alive: both served
    h.Req("GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + del);
    h.Resp(k200 + k200);
    h.Close();
    EXPECT_EQ(h.Lines(), (Lines{"GET /x 200", "DELETE /x 200"}));
  }
}

// Row 4: a header name with '(' or a value with a control byte: nginx ignores the header and
// serves the request (200); the pipelined GET too.
TEST(Http1Hostile, HeadersNginxIgnoresDoNotStopTheRequest) {
  for (const char* line : {"X(y): 1\r\n", "X: a\x01z\r\n", "(: 1\r\n", "X: \x1b[31m\r\n"}) {
    Harness h;
    h.Req(std::string("DELETE /x HTTP/1.1\r\nHost: a\r\n") + line + "\r\n" + kGet);
    h.Resp(k200 + k200);
    h.Close();
    EXPECT_EQ(h.Lines(), (Lines{"DELETE /x 200", "GET /x 200"})) << line;
    // Read as nginx reads it, not merely paired with its answer: not a rejected head.
    EXPECT_FALSE(h.got.at(0).ex.incomplete) << line;
    EXPECT_EQ(h.stats().parse_errors, 0u) << line;
  }
}

// Header lines both servers refuse (400, close): the request is audited with that 400, the
// pipelined GET not at all.
TEST(Http1Hostile, HeadersNginxRefusesGetItsStatusAndHideNothingElse) {
  for (const std::string& line :
       {std::string("X: a\0b\r\n", 8), std::string("X\x01y: 1\r\n"), std::string("X y: 1\r\n")}) {
    Harness h;
    h.Req("DELETE /x HTTP/1.1\r\nHost: a\r\n" + line + "\r\n" + kGet);
    h.Resp(k400Close);
    h.Close();
    EXPECT_EQ(h.Lines(), (Lines{"DELETE /x 400"})) << line;
  }
}

// Row 5: a 404, then a request with a bad header name: 404 then 200 (no shift).
TEST(Http1Hostile, NotFoundThenBadHeaderNameKeepPairing) {
  Harness h;
  h.Req("GET /nope HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n");
  h.Resp(k404 + k200);
  h.Close();
  EXPECT_EQ(h.Lines(), (Lines{"GET /nope 404", "GET /x 200"}));
  EXPECT_FALSE(h.got.at(1).ex.incomplete);
}

// Row 6: a valid GET then garbage: the GET is 200, the garbage gets nginx's 400 and no line.
TEST(Http1Hostile, GetThenGarbage) {
  for (const std::string& garbage :
       {std::string("\0\x01garbage here\r\n\r\n", 18), std::string("garbage\r\n\r\n"),
        std::string("GET\r\n\r\n"), std::string("\x16\x03\x01\x02\x00\x01\r\n\r\n")}) {
    Harness h;
    h.Req(kGet + garbage);
    h.Resp(k200 + k400Close);
    h.Close();
    EXPECT_EQ(h.Lines(), (Lines{"GET /x 200"})) << garbage;
    EXPECT_EQ(h.stats().orphan_responses, 1u) << garbage;  // the garbage's 400
  }
  // Garbage first, then a GET after nginx closed: nothing at all.
  Harness h;
  h.Req("garbage\r\n\r\n" + kGet);
  h.Resp(k400Close);
  h.Close();
  EXPECT_EQ(h.Lines(), Lines{});
}

// The answer to garbage (a placeholder in the queue) is no request's, not even at the
// ResponseStarted stage of long-running calls (found by http1_fuzz: an empty request reported).
TEST(Http1Hostile, GarbagesAnswerStartsNoStage) {
  Http1Options o;
  o.report_started = [](const HttpRequest&) { return true; };
  Harness h(o);
  h.Req(kGet + "garbage\r\n\r\n");
  h.Resp(k200 + k400Close);
  h.Close();
  ASSERT_EQ(h.got.size(), 2u);  // GET /x: started, then complete
  for (const Got& g : h.got) EXPECT_EQ(g.ex.request.target, "/x");
}

// Row 7: a 90 KB header (nginx with large buffers serves it, dockerd accepts 1 MiB).
TEST(Http1Hostile, NinetyKilobyteHeaderIsAudited) {
  Harness h;  // default options
  h.Req("DELETE /v1.41/secrets/abc HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(90000, 'p') +
        "\r\n\r\n");
  h.Resp(k200);
  h.Close();
  EXPECT_EQ(h.Lines(), (Lines{"DELETE /v1.41/secrets/abc 200"}));
  EXPECT_FALSE(h.got.at(0).ex.incomplete);
}

// nginx answers a head over its buffers (8 KiB by default) before it has read it whole: 400
// and close. The request it refused is the one whose head was in progress.
TEST(Http1Hostile, RefusedBeforeItsHeadWasWhole) {
  Harness h;
  h.Req(kGet +
        "DELETE /v1.41/secrets/abc HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(30000, 'p'));
  h.Resp(k200 + k400Close);
  h.Req(std::string(60000, 'p') + "\r\n\r\n" + kGet);
  h.Close();
  EXPECT_EQ(h.Lines(), (Lines{"GET /x 200", "DELETE /v1.41/secrets/abc 400"}));
  EXPECT_TRUE(h.got.at(1).ex.incomplete);
}

// Beyond the auditor's own cap: still audited with method and URI, marked incomplete.
TEST(Http1Hostile, HeaderOverTheCapIsNamedWithItsStatus) {
  Http1Options o;
  o.max_header_bytes = 4096;
  Harness h(o);
  h.Req("DELETE /v1.41/secrets/abc HTTP/1.1\r\nX-Pad: " + std::string(20000, 'p') + "\r\n\r\n" +
        kGet);
  h.Resp(k200 + k200);
  h.Close();
  ASSERT_EQ(h.Lines(), (Lines{"DELETE /v1.41/secrets/abc 200", "GET /x 200"}));
  EXPECT_TRUE(h.got[0].ex.incomplete);
}

// Row 8: HTTP/0.9 (nginx serves "GET /x" with the body alone, then closes) and lower-case
// methods (nginx: 400 and close; Go serves any token).
TEST(Http1Hostile, Http09AndLowerCaseMethods) {
  {
    Harness h;
    h.Req("GET /x\r\n");
    h.Resp("ok\n");
    h.Close();
    ASSERT_EQ(h.Lines(), (Lines{"GET /x -"}));
    EXPECT_EQ(h.got[0].ex.note, "HTTP/0.9 answer: no status line");
    EXPECT_EQ(h.got[0].ex.request.version_major, 0);
  }
  {
    Harness h;  // what follows a 0.9 request is never read (nginx closes)
    h.Req("GET /x\r\n" + kGet);
    h.Resp("ok\n");
    h.Close();
    EXPECT_EQ(h.Lines(), (Lines{"GET /x -"}));
  }
  {
    Harness h;  // a 0.9 line split across writes
    h.Req("GET /se");
    h.Req("crets\r\n");
    h.Resp("[]");
    h.Close();
    EXPECT_EQ(h.Lines(), (Lines{"GET /secrets -"}));
  }
  {
    Harness h;
    h.Req("get /x HTTP/1.1\r\nHost: a\r\n\r\n" + kGet);
    h.Resp(k400Close);
    h.Close();
    EXPECT_EQ(h.Lines(), (Lines{"get /x 400"}));
  }
  {
    Harness h;  // as Go answers: 405 for a method its router does not know, keep-alive
    h.Req("delete /x HTTP/1.1\r\nHost: a\r\n\r\n" + kGet);
    h.Resp("HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n" + k200);
    h.Close();
    EXPECT_EQ(h.Lines(), (Lines{"delete /x 405", "GET /x 200"}));
  }
}

// Go's net/http answers what it cannot parse with a 400 whose body runs to the close (no
// length) and closes: the same lines as with nginx. And it answers HTTP/0.9 with a 400 too.
TEST(Http1Hostile, GoStyleRefusals) {
  const std::string go400 =
      "HTTP/1.1 400 Bad Request: message cannot contain multiple Content-Length headers\r\n"
      "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request";
  {
    Harness h;
    h.Req("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd" +
          kGet);
    h.Resp(go400);
    h.Close();
    EXPECT_EQ(h.Lines(), (Lines{"POST /x 400"}));
  }
  {
    Harness h;
    h.Req("GET /x\r\n" + kGet);
    h.Resp(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Connection: close\r\n\r\n400 Bad Request");
    h.Close();
    ASSERT_EQ(h.Lines(), (Lines{"GET /x 400"}));
    EXPECT_TRUE(h.got[0].ex.note.empty());
  }
}

// Row 9: a request without a response is never given a status.
TEST(Http1Hostile, NoResponseNoStatus) {
  Harness h;
  h.Req(kGet + "DELETE /y HTTP/1.1\r\nHost: a\r\n\r\n");
  h.Resp(k200);
  h.Close();
  ASSERT_EQ(h.Lines(), (Lines{"GET /x 200", "DELETE /y -"}));
  EXPECT_EQ(h.got[1].event, ExchangeEvent::kNoResponse);
  EXPECT_FALSE(h.got[1].ex.response.has_value());
}

// Row 10: the memory attack, one connection of it: the bare-LF trick, 256 pipelined POSTs of
// 64 KiB, and the server's 400 with close. No made-up POST line, within the budget.
TEST(Http1Hostile, PipelinedPostFloodAfterARefusedRequest) {
  Harness h;  // default options: 8 MiB per connection, 256 waiting requests
  const std::string body(64 * 1024, 'b');
  std::string post =
      "POST /flood HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  h.Req("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n");
  for (int i = 0; i < 256; ++i) h.Req(post);
  EXPECT_TRUE(h.got.empty());  // nothing reported before the server answers
  h.Resp(k400Close);
  h.Close();
  EXPECT_EQ(h.Lines(), (Lines{"POST /x 400"}));
}

// The memory attack of issue 17, whole: 32 connections, each the bare-LF trick then 256
// pipelined POSTs of 64 KiB, all fed before any answer (the worst order). The heap grows by
// at most max_total_bytes (64 MiB) of kept bodies plus the heads and parser buffers (the old
// code kept 8 MiB a connection: 256 MiB); then nginx's 400s with close: no line but the 400s.
TEST(Http1Hostile, MemoryAttackIsBoundedInTotal) {
  constexpr int kConnections = 32;
  std::vector<std::unique_ptr<Harness>> conns;
  for (int c = 0; c < kConnections; ++c) conns.push_back(std::make_unique<Harness>());
  const std::string body(64 * 1024, 'b');
  const std::string post =
      "POST /flood HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  const size_t before = mallinfo2().uordblks;
  size_t peak = 0;
  for (int c = 0; c < kConnections; ++c) {
    Harness& h = *conns[c];
    h.Req("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n");
    for (int i = 0; i < 256; ++i) h.Req(post);
    peak = std::max(peak, mallinfo2().uordblks);
  }
  const size_t grown = peak > before ? peak - before : 0;
  RecordProperty("heap_growth_bytes", std::to_string(grown));
  EXPECT_LT(grown, (64u << 20) + kConnections * (1u << 20)) << grown;
  for (auto& c : conns) {
    c->Resp(k400Close);
    c->Close();
    EXPECT_EQ(c->Lines(), (Lines{"POST /x 400"}));
  }
}

// A connection over its budget is cut, never reports a request early, and what it parsed
// before the cut keeps its pairing.
TEST(Http1Hostile, BudgetCutReportsNothingEarly) {
  Http1Options o;
  o.max_pending_requests = 4;
  Harness h(o);
  for (int i = 0; i < 10; ++i) h.Req("GET /r" + std::to_string(i) + " HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_TRUE(h.got.empty());
  EXPECT_EQ(h.stats().connections_cut, 1u);
  h.Resp(k200 + k404);
  h.Close();
  EXPECT_EQ(h.Lines(), (Lines{"GET /r0 200", "GET /r1 404", "GET /r2 -", "GET /r3 -"}));
}

}  // namespace
}  // namespace mat::http
