#include "http/http1.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace mat::http {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

constexpr Direction kReq = Direction::kRequest;
constexpr Direction kResp = Direction::kResponse;

struct Got {
  HttpExchange ex;
  ExchangeEvent event;
};

class Harness {
 public:
  explicit Harness(Http1Options options = {}, bool mark_start = true)
      : conn_(options, [this](HttpExchange&& ex, ExchangeEvent ev) {
          got.push_back(Got{std::move(ex), ev});
        }) {
    if (mark_start) {
      conn_.MarkStreamStart(kReq);
      conn_.MarkStreamStart(kResp);
    }
  }

  void Req(std::string_view bytes, uint64_t ts = 1) { conn_.OnData(kReq, bytes, ts); }
  void Resp(std::string_view bytes, uint64_t ts = 2) { conn_.OnData(kResp, bytes, ts); }
  void Close(uint64_t ts = 99) { conn_.OnClose(ts); }
  Http1Connection& conn() { return conn_; }
  const Http1Stats& stats() const { return conn_.stats(); }

  std::vector<Got> got;

 private:
  Http1Connection conn_;
};

std::string Describe(const Got& g) {
  std::ostringstream o;
  o << (g.event == ExchangeEvent::kResponseComplete ? "RESPONSE" : "NO_RESPONSE")
    << " incomplete=" << g.ex.incomplete << "\n";
  const HttpRequest& q = g.ex.request;
  o << q.method << " " << q.target << " HTTP/" << q.version_major << "." << q.version_minor << "\n";
  for (const auto& [k, v] : q.headers) o << "[" << k << "]=[" << v << "]\n";
  o << "body(" << q.body_size << (q.body_truncated ? ",truncated" : "") << ")=" << q.body << "\n";
  o << "ts=" << q.first_byte_ns << "/" << q.headers_done_ns << "/" << q.complete_ns << "\n";
  if (g.ex.response) {
    const HttpResponse& r = *g.ex.response;
    o << "HTTP/" << r.version_major << "." << r.version_minor << " " << r.status << "\n";
    for (const auto& [k, v] : r.headers) o << "[" << k << "]=[" << v << "]\n";
    o << "body(" << r.body_size << (r.body_truncated ? ",truncated" : "") << ")=" << r.body << "\n";
    o << "ts=" << r.first_byte_ns << "/" << r.headers_done_ns << "/" << r.complete_ns << "\n";
  }
  return o.str();
}

std::vector<std::string> DescribeAll(const std::vector<Got>& got) {
  std::vector<std::string> out;
  for (const Got& g : got) out.push_back(Describe(g));
  return out;
}

std::string Chunk(std::string_view data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return std::string(size) + std::string(data) + "\r\n";
}

// ---- wire bytes ----

const std::string kGetContainers =
    "GET /v1.41/containers/json?all=1 HTTP/1.1\r\n"
    "Host: api.moby.localhost\r\n"
    "User-Agent: Docker-Client/20.10.24 (linux)\r\n"
    "\r\n";

const std::string kOkEmptyList =
    "HTTP/1.1 200 OK\r\n"
    "Api-Version: 1.41\r\n"
    "Content-Type: application/json\r\n"
    "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
    "Content-Length: 3\r\n"
    "\r\n"
    "[]\n";

const std::string kCreateBody = R"({"Image":"alpine","Cmd":["echo","hi"]})"
                                "\n";

std::string CreateRequest(const std::string& name) {
  return "POST /v1.41/containers/create?name=" + name +
         " HTTP/1.1\r\n"
         "Host: api.moby.localhost\r\n"
         "User-Agent: Docker-Client/20.10.24 (linux)\r\n"
         "Content-Length: " +
         std::to_string(kCreateBody.size()) +
         "\r\n"
         "Content-Type: application/json\r\n"
         "\r\n" +
         kCreateBody;
}

const std::string kCreatedBody = R"({"Id":"4f3c","Warnings":[]})"
                                 "\n";

const std::string kCreated =
    "HTTP/1.1 201 Created\r\n"
    "Api-Version: 1.41\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: " +
    std::to_string(kCreatedBody.size()) + "\r\n\r\n" + kCreatedBody;

std::string Get(const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: api\r\n\r\n";
}

std::string Ok(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string CurlChunkedUpload() {
  return "POST /v1.41/build?t=demo HTTP/1.1\r\n"
         "Host: localhost\r\n"
         "User-Agent: curl/7.88.1\r\n"
         "Accept: */*\r\n"
         "Transfer-Encoding: chunked\r\n"
         "Content-Type: application/json\r\n"
         "\r\n" +
         Chunk(R"({"name":)") + Chunk(R"("demo","size":)") + Chunk("12345}") + "0\r\n\r\n";
}

const std::string kChunkedResponse =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: application/json\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "5\r\nhello\r\n"
    "7\r\n, world\r\n"
    "0\r\n\r\n";

// ---- tests ----

TEST(FindHeaderTest, CaseInsensitiveFirstMatch) {
  Headers h = {{"Content-Type", "a"}, {"X-Multi", "1"}, {"x-multi", "2"}};
  ASSERT_NE(FindHeader(h, "content-type"), nullptr);
  EXPECT_EQ(*FindHeader(h, "CONTENT-TYPE"), "a");
  EXPECT_EQ(*FindHeader(h, "X-MULTI"), "1");
  EXPECT_EQ(FindHeader(h, "Content-Typ"), nullptr);
  EXPECT_EQ(FindHeader(h, "Content-Type2"), nullptr);
  EXPECT_EQ(FindHeader({}, "a"), nullptr);
}

TEST(Http1Test, SimpleGet200) {
  Harness h;
  h.Req(kGetContainers, 100);
  EXPECT_TRUE(h.got.empty());
  h.Resp(kOkEmptyList, 200);
  ASSERT_EQ(h.got.size(), 1u);
  const Got& g = h.got[0];
  EXPECT_EQ(g.event, ExchangeEvent::kResponseComplete);
  EXPECT_FALSE(g.ex.incomplete);
  EXPECT_EQ(g.ex.request.method, "GET");
  EXPECT_EQ(g.ex.request.target, "/v1.41/containers/json?all=1");
  EXPECT_EQ(g.ex.request.version_major, 1);
  EXPECT_EQ(g.ex.request.version_minor, 1);
  EXPECT_THAT(g.ex.request.headers,
              ElementsAre(Pair("Host", "api.moby.localhost"),
                          Pair("User-Agent", "Docker-Client/20.10.24 (linux)")));
  EXPECT_EQ(g.ex.request.body, "");
  EXPECT_EQ(g.ex.request.body_size, 0u);
  EXPECT_EQ(g.ex.request.first_byte_ns, 100u);
  EXPECT_EQ(g.ex.request.headers_done_ns, 100u);
  EXPECT_EQ(g.ex.request.complete_ns, 100u);
  ASSERT_TRUE(g.ex.response.has_value());
  EXPECT_EQ(g.ex.response->status, 200);
  EXPECT_EQ(g.ex.response->body, "[]\n");
  EXPECT_EQ(g.ex.response->body_size, 3u);
  EXPECT_FALSE(g.ex.response->body_truncated);
  EXPECT_EQ(*FindHeader(g.ex.response->headers, "content-type"), "application/json");
  EXPECT_EQ(g.ex.response->headers.size(), 4u);
  EXPECT_EQ(g.ex.response->complete_ns, 200u);
  EXPECT_EQ(h.stats().requests, 1u);
  EXPECT_EQ(h.stats().responses, 1u);
  EXPECT_EQ(h.stats().parse_errors, 0u);
  h.Close();
  EXPECT_EQ(h.got.size(), 1u);
}

TEST(Http1Test, KeepAliveThreeExchanges) {
  Harness h;
  for (int i = 0; i < 3; ++i) {
    h.Req(Get("/v1.41/info?n=" + std::to_string(i)), 10 * i + 1);
    h.Resp(Ok("body" + std::to_string(i)), 10 * i + 2);
    ASSERT_EQ(h.got.size(), static_cast<size_t>(i + 1));
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(h.got[i].event, ExchangeEvent::kResponseComplete);
    EXPECT_EQ(h.got[i].ex.request.target, "/v1.41/info?n=" + std::to_string(i));
    EXPECT_EQ(h.got[i].ex.response->body, "body" + std::to_string(i));
    EXPECT_EQ(h.got[i].ex.request.first_byte_ns, static_cast<uint64_t>(10 * i + 1));
    EXPECT_EQ(h.got[i].ex.response->first_byte_ns, static_cast<uint64_t>(10 * i + 2));
  }
  h.Close();
  EXPECT_EQ(h.got.size(), 3u);
}

TEST(Http1Test, Pipelining) {
  Harness h;
  h.Req(Get("/a") + Get("/b") + Get("/c"));
  EXPECT_TRUE(h.got.empty());
  h.Resp(Ok("A") + Ok("BB") + "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nCCC");
  ASSERT_EQ(h.got.size(), 3u);
  EXPECT_EQ(h.got[0].ex.request.target, "/a");
  EXPECT_EQ(h.got[0].ex.response->body, "A");
  EXPECT_EQ(h.got[1].ex.request.target, "/b");
  EXPECT_EQ(h.got[1].ex.response->body, "BB");
  EXPECT_EQ(h.got[2].ex.request.target, "/c");
  EXPECT_EQ(h.got[2].ex.response->status, 404);
  EXPECT_EQ(h.got[2].ex.response->body, "CCC");
  EXPECT_EQ(h.stats().requests, 3u);
  EXPECT_EQ(h.stats().responses, 3u);
  EXPECT_EQ(h.stats().orphan_responses, 0u);
}

TEST(Http1Test, PostContentLengthJson) {
  Harness h;
  h.Req(CreateRequest("web"));
  h.Resp(kCreated);
  ASSERT_EQ(h.got.size(), 1u);
  const HttpRequest& q = h.got[0].ex.request;
  EXPECT_EQ(q.method, "POST");
  EXPECT_EQ(q.target, "/v1.41/containers/create?name=web");
  EXPECT_EQ(q.body, kCreateBody);
  EXPECT_EQ(q.body_size, kCreateBody.size());
  EXPECT_FALSE(q.body_truncated);
  EXPECT_EQ(*FindHeader(q.headers, "content-length"), std::to_string(kCreateBody.size()));
  EXPECT_EQ(h.got[0].ex.response->status, 201);
  EXPECT_EQ(h.got[0].ex.response->body, kCreatedBody);
  EXPECT_EQ(kCreatedBody.size(), 28u);
}

TEST(Http1Test, ChunkedRequestAndResponse) {
  Harness h;
  h.Req(CurlChunkedUpload());
  h.Resp(kChunkedResponse);
  ASSERT_EQ(h.got.size(), 1u);
  const HttpRequest& q = h.got[0].ex.request;
  EXPECT_EQ(q.method, "POST");
  EXPECT_EQ(q.target, "/v1.41/build?t=demo");
  EXPECT_EQ(q.body, R"({"name":"demo","size":12345})");
  EXPECT_EQ(q.body_size, 28u);
  EXPECT_EQ(*FindHeader(q.headers, "transfer-encoding"), "chunked");
  EXPECT_EQ(h.got[0].ex.response->body, "hello, world");
  EXPECT_EQ(h.got[0].ex.response->body_size, 12u);
}

TEST(Http1Test, ChunkedTrailersAreNotHeaders) {
  Harness h;
  h.Req(Get("/t"));
  h.Resp(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n" +
      Ok("next"));
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].ex.response->body, "abc");
  EXPECT_THAT(h.got[0].ex.response->headers, ElementsAre(Pair("Transfer-Encoding", "chunked")));
  EXPECT_EQ(h.stats().orphan_responses, 1u);  // "next" had no request
}

TEST(Http1Test, HeaderCaseTrimAndRepeats) {
  Harness h;
  h.Req("GET / HTTP/1.1\r\nhOsT:   api  \r\nX-Dup: one\r\nX-Dup:two\t\r\nX-Empty:\r\n\r\n");
  // Split a header name and value over several calls.
  h.Resp("HTTP/1.0 200 OK\r\nSet-Coo");
  h.Resp("kie: a=1\r\nSet-Cookie: b");
  h.Resp("=2 \r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_THAT(h.got[0].ex.request.headers, ElementsAre(Pair("hOsT", "api"), Pair("X-Dup", "one"),
                                                       Pair("X-Dup", "two"), Pair("X-Empty", "")));
  EXPECT_EQ(h.got[0].ex.response->version_minor, 0);
  EXPECT_THAT(h.got[0].ex.response->headers,
              ElementsAre(Pair("Set-Cookie", "a=1"), Pair("Set-Cookie", "b=2"),
                          Pair("Content-Length", "0")));
}

TEST(Http1Test, TimestampsFollowTheCarryingCall) {
  Harness h;
  const std::string req = CreateRequest("ts");
  const size_t head_end = req.find("\r\n\r\n") + 4;
  h.Req(req.substr(0, 10), 10);
  h.Req(req.substr(10, head_end - 10), 20);
  h.Req(req.substr(head_end, 5), 30);
  h.Req(req.substr(head_end + 5), 40);
  h.Resp(kCreated.substr(0, 5), 50);
  h.Resp(kCreated.substr(5), 60);
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].ex.request.first_byte_ns, 10u);
  EXPECT_EQ(h.got[0].ex.request.headers_done_ns, 20u);
  EXPECT_EQ(h.got[0].ex.request.complete_ns, 40u);
  EXPECT_EQ(h.got[0].ex.response->first_byte_ns, 50u);
  EXPECT_EQ(h.got[0].ex.response->headers_done_ns, 60u);
  EXPECT_EQ(h.got[0].ex.response->complete_ns, 60u);
}

// A chunked POST and a pipelined pair, responses chunked / length / HEAD-less.
struct Conversation {
  std::string requests = CurlChunkedUpload() + Get("/v1.41/_ping") + CreateRequest("x");
  std::string responses = kChunkedResponse + Ok("OK") + kCreated;
};

std::vector<std::string> RunWhole(const Conversation& c, bool mark) {
  Harness h({}, mark);
  h.Req(c.requests);
  h.Resp(c.responses);
  h.Close();
  return DescribeAll(h.got);
}

TEST(Http1Test, SplitAtEveryOffsetGivesTheSameExchanges) {
  const Conversation c;
  const std::vector<std::string> want = RunWhole(c, true);
  ASSERT_EQ(want.size(), 3u);
  EXPECT_THAT(want[0], ::testing::HasSubstr("body(28)={\"name\":\"demo\",\"size\":12345}"));
  EXPECT_THAT(want[0], ::testing::HasSubstr("body(12)=hello, world"));
  EXPECT_THAT(want[1], ::testing::HasSubstr("GET /v1.41/_ping"));
  EXPECT_THAT(want[1], ::testing::HasSubstr("body(2)=OK"));
  EXPECT_THAT(want[2], ::testing::HasSubstr("POST /v1.41/containers/create?name=x"));
  EXPECT_THAT(want[2], ::testing::HasSubstr("HTTP/1.1 201"));
  for (bool mark : {true, false}) {
    EXPECT_EQ(RunWhole(c, mark), want);
    for (size_t k = 0; k <= c.requests.size(); ++k) {
      Harness h({}, mark);
      h.Req(std::string_view(c.requests).substr(0, k));
      h.Req(std::string_view(c.requests).substr(k));
      h.Resp(c.responses);
      h.Close();
      ASSERT_EQ(DescribeAll(h.got), want) << "request split at " << k << " mark=" << mark;
      ASSERT_EQ(h.stats().parse_errors, 0u);
    }
    for (size_t k = 0; k <= c.responses.size(); ++k) {
      Harness h({}, mark);
      h.Req(c.requests);
      h.Resp(std::string_view(c.responses).substr(0, k));
      h.Resp(std::string_view(c.responses).substr(k));
      h.Close();
      ASSERT_EQ(DescribeAll(h.got), want) << "response split at " << k << " mark=" << mark;
    }
    Harness h({}, mark);
    for (char ch : c.requests) h.Req(std::string_view(&ch, 1));
    for (char ch : c.responses) h.Resp(std::string_view(&ch, 1));
    h.Close();
    EXPECT_EQ(DescribeAll(h.got), want) << "one byte at a time, mark=" << mark;
    EXPECT_EQ(h.stats().parse_errors, 0u);
    EXPECT_EQ(h.stats().resyncs, 0u);
    EXPECT_EQ(h.stats().skipped_bytes, 0u);
  }
}

TEST(Http1Test, OneByteAtATimeInterleaved) {
  const Conversation c;
  const std::vector<std::string> want = RunWhole(c, true);
  Harness h;
  size_t i = 0, j = 0;
  while (i < c.requests.size() || j < c.responses.size()) {
    if (i < c.requests.size()) h.Req(std::string_view(c.requests).substr(i++, 1));
    // Keep responses behind requests, as a server would.
    if (j < c.responses.size() && j + 200 < i) h.Resp(std::string_view(c.responses).substr(j++, 1));
    if (i == c.requests.size() && j < c.responses.size()) {
      h.Resp(std::string_view(c.responses).substr(j++, 1));
    }
  }
  h.Close();
  EXPECT_EQ(DescribeAll(h.got), want);
}

TEST(Http1Test, JoinMidRequestBodySkipsTheCutExchange) {
  const std::string first = CreateRequest("cut");
  const std::string cut = first.substr(first.size() - 12);  // inside the JSON body
  for (bool one_call : {false, true}) {
    Harness h({}, /*mark_start=*/false);
    if (one_call) {
      h.Req(cut + Get("/v1.41/info"));  // the body ends with "\n": a line start
    } else {
      h.Req(cut);
      h.Req(Get("/v1.41/info"));
    }
    h.Resp(kCreated + Ok("{\"info\":1}"));  // all timestamps equal: pairing by count
    ASSERT_EQ(h.got.size(), 1u) << one_call;
    EXPECT_EQ(h.got[0].event, ExchangeEvent::kResponseComplete);
    EXPECT_EQ(h.got[0].ex.request.target, "/v1.41/info");
    EXPECT_EQ(h.got[0].ex.response->status, 200);
    EXPECT_EQ(h.got[0].ex.response->body, "{\"info\":1}");
    EXPECT_EQ(h.stats().orphan_responses, 1u);
    EXPECT_EQ(h.stats().resyncs, 1u);
    EXPECT_EQ(h.stats().skipped_bytes, 12u);
    EXPECT_EQ(h.stats().parse_errors, 0u);
    h.Close();
    EXPECT_EQ(h.got.size(), 1u);
  }
}

TEST(Http1Test, JoinAtRequestBoundaryUsesTimestampsForOrphans) {
  // The capture starts after request 1 was read; its response is written at t=100, before
  // request 2 arrives at t=200: it cannot be request 2's response.
  Harness h({}, false);
  h.Resp(kCreated, 100);
  h.Req(Get("/v1.41/info"), 200);
  h.Resp(Ok("yes"), 300);
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].ex.request.target, "/v1.41/info");
  EXPECT_EQ(h.got[0].ex.response->body, "yes");
  EXPECT_EQ(h.stats().orphan_responses, 1u);
  EXPECT_EQ(h.stats().resyncs, 0u);
}

TEST(Http1Test, JoinMidResponseBody) {
  Harness h({}, false);
  const std::string r = kCreated.substr(kCreated.size() - 10);
  h.Resp(r, 5);
  h.Req(Get("/next"), 10);
  h.Resp(Ok("n"), 20);
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].ex.request.target, "/next");
  EXPECT_EQ(h.got[0].ex.response->body, "n");
  EXPECT_EQ(h.stats().orphan_responses, 0u);
  EXPECT_EQ(h.stats().resyncs, 1u);
  EXPECT_EQ(h.stats().skipped_bytes, 10u);
}

TEST(Http1Test, RequestLineSplitWhileUnsynchronised) {
  const std::string prefix = "tail of something\r\n";
  const std::string req = Get("/v1.41/version");
  const std::string line_end = "HTTP/1.1\r\n";
  const size_t line_len = req.find(line_end) + line_end.size();
  for (size_t k = 1; k < line_len + 2; ++k) {
    Harness h({}, false);
    h.Req(prefix + req.substr(0, k), 7);
    h.Req(req.substr(k), 8);
    // The skipped bytes may be the end of a request: its response comes first.
    h.Resp(Ok("skipped") + Ok("v"), 9);
    ASSERT_EQ(h.got.size(), 1u) << k;
    EXPECT_EQ(h.got[0].ex.request.method, "GET");
    EXPECT_EQ(h.got[0].ex.request.target, "/v1.41/version");
    EXPECT_EQ(h.got[0].ex.request.first_byte_ns, 7u);
    EXPECT_EQ(h.got[0].ex.request.complete_ns, 8u);
    EXPECT_EQ(h.got[0].ex.response->body, "v");
    EXPECT_EQ(h.stats().skipped_bytes, prefix.size());
    EXPECT_EQ(h.stats().resyncs, 1u);
    EXPECT_EQ(h.stats().orphan_responses, 1u);
    EXPECT_EQ(h.stats().parse_errors, 0u);
  }
}

TEST(Http1Test, UnsynchronisedTailIsBoundedAndRejectsLongLines) {
  Harness h({}, false);
  // An endless "request line" is not a plausible start: it is skipped, not buffered.
  h.Req("GET /");
  for (int i = 0; i < 100; ++i) h.Req(std::string(1000, 'a'));
  h.Req(" HTTP/1.1\r\n\r\n");
  h.Req(Get("/real"));
  h.Close();
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].ex.request.target, "/real");
  EXPECT_EQ(h.stats().skipped_bytes, 5u + 100u * 1000u + 13u);
}

TEST(Http1Test, HeadResponseHasNoBody) {
  Harness h;
  h.Req("HEAD /_ping HTTP/1.1\r\nHost: api\r\n\r\n" + Get("/version"));
  h.Resp("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\n" + Ok("v2"));
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[0].ex.request.method, "HEAD");
  EXPECT_EQ(h.got[0].ex.response->status, 200);
  EXPECT_EQ(h.got[0].ex.response->body, "");
  EXPECT_EQ(h.got[0].ex.response->body_size, 0u);
  EXPECT_EQ(*FindHeader(h.got[0].ex.response->headers, "Content-Length"), "2");
  EXPECT_EQ(h.got[1].ex.request.target, "/version");
  EXPECT_EQ(h.got[1].ex.response->body, "v2");
  EXPECT_EQ(h.stats().parse_errors, 0u);
}

TEST(Http1Test, NoContentAndNotModifiedHaveNoBody) {
  Harness h;
  h.Req(Get("/a") + Get("/b") + Get("/c"));
  h.Resp("HTTP/1.1 204 No Content\r\n\r\n" +
         std::string("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n") + Ok("c"));
  ASSERT_EQ(h.got.size(), 3u);
  EXPECT_EQ(h.got[0].ex.response->status, 204);
  EXPECT_EQ(h.got[1].ex.response->status, 304);
  EXPECT_EQ(h.got[1].ex.response->body_size, 0u);
  EXPECT_EQ(h.got[2].ex.response->body, "c");
}

TEST(Http1Test, ContinueThenFinalResponse) {
  Harness h;
  h.Req(
      "PUT /v1.41/containers/x/archive?path=/tmp HTTP/1.1\r\nHost: api\r\n"
      "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n",
      1);
  h.Resp("HTTP/1.1 100 Continue\r\n\r\n", 2);
  EXPECT_TRUE(h.got.empty());
  h.Req("hello", 3);
  h.Resp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 4);
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].ex.request.body, "hello");
  EXPECT_EQ(h.got[0].ex.request.complete_ns, 3u);
  EXPECT_EQ(h.got[0].ex.response->status, 200);
  EXPECT_EQ(h.got[0].ex.response->first_byte_ns, 4u);
  EXPECT_EQ(h.stats().interim_responses, 1u);
  EXPECT_EQ(h.stats().responses, 1u);
  EXPECT_EQ(h.stats().orphan_responses, 0u);
}

TEST(Http1Test, ResponseBeforeRequestBodyEndsWaitsForTheBody) {
  Harness h;
  h.Req("POST /up HTTP/1.1\r\nContent-Length: 6\r\n\r\nabc", 1);
  h.Resp("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n", 2);
  EXPECT_TRUE(h.got.empty());
  h.Req("def", 3);
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].event, ExchangeEvent::kResponseComplete);
  EXPECT_EQ(h.got[0].ex.request.body, "abcdef");
  EXPECT_EQ(h.got[0].ex.response->status, 413);
}

const std::string kAttach =
    "POST /v1.41/containers/4f3c/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\n"
    "Host: api.moby.localhost\r\n"
    "User-Agent: Docker-Client/20.10.24 (linux)\r\n"
    "Content-Length: 0\r\n"
    "Connection: Upgrade\r\n"
    "Content-Type: text/plain\r\n"
    "Upgrade: tcp\r\n"
    "\r\n";

const std::string kUpgraded =
    "HTTP/1.1 101 UPGRADED\r\n"
    "Content-Type: application/vnd.docker.raw-stream\r\n"
    "Connection: Upgrade\r\n"
    "Upgrade: tcp\r\n"
    "\r\n";

TEST(Http1Test, SwitchingProtocolsEndsHttp) {
  for (bool raw_before_101 : {false, true}) {
    Harness h;
    h.Req(kAttach);
    if (raw_before_101) h.Req("ls -l\n" + Get("/looks/like/http"));
    h.Resp(kUpgraded + std::string("\x01\x00\x00\x00\x00\x00\x00\x03hi\n", 11));
    ASSERT_EQ(h.got.size(), 1u);
    EXPECT_EQ(h.got[0].event, ExchangeEvent::kResponseComplete);
    EXPECT_EQ(h.got[0].ex.request.target,
              "/v1.41/containers/4f3c/attach?stream=1&stdin=1&stdout=1");
    EXPECT_EQ(h.got[0].ex.response->status, 101);
    h.Req("exit\n" + Get("/also/not/http"));
    h.Resp("garbage\r\n" + kOkEmptyList);
    h.Close();
    EXPECT_EQ(h.got.size(), 1u);
    EXPECT_EQ(h.stats().parse_errors, 0u);
    EXPECT_EQ(h.stats().requests, 1u);
    EXPECT_EQ(h.stats().responses, 1u);
    EXPECT_EQ(h.stats().orphan_responses, 0u);
    EXPECT_EQ(h.stats().upgrades, 1u);
  }
}

TEST(Http1Test, DeclinedUpgradeKeepsParsing) {
  Harness h;
  h.Req("GET /ws HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" +
        Get("/after"));
  EXPECT_TRUE(h.got.empty());
  h.Resp("HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nno\n" + Ok("after"));
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[0].ex.request.target, "/ws");
  EXPECT_EQ(h.got[0].ex.response->status, 400);
  EXPECT_EQ(h.got[1].ex.request.target, "/after");
  EXPECT_EQ(h.got[1].ex.response->body, "after");
  EXPECT_EQ(h.stats().parse_errors, 0u);
  EXPECT_EQ(h.stats().upgrades, 0u);
}

TEST(Http1Test, ConnectTunnel) {
  Harness h;
  h.Req("CONNECT registry:443 HTTP/1.1\r\nHost: registry:443\r\n\r\n");
  h.Req(std::string("\x16\x03\x01\x02\x00", 5));
  h.Resp("HTTP/1.1 200 Connection established\r\n\r\n" + std::string("\x16\x03\x03", 3));
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].ex.request.method, "CONNECT");
  EXPECT_EQ(h.got[0].ex.request.target, "registry:443");
  EXPECT_EQ(h.got[0].ex.response->status, 200);
  h.Req(Get("/inside/tunnel"));
  h.Close();
  EXPECT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.stats().parse_errors, 0u);
  EXPECT_EQ(h.stats().upgrades, 1u);
}

// A request whose start line is good and whose head is not: audited with the server's answer
// (incomplete); the server read on (no close), so the next one is audited too.
TEST(Http1Test, MalformedRequestThenGoodOne) {
  Harness h;
  h.Req("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 12abc\r\n\r\n" + Get("/good"));
  h.Resp("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" + Ok("good"));
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[0].ex.request.target, "/x");
  EXPECT_TRUE(h.got[0].ex.incomplete);
  EXPECT_EQ(h.got[0].ex.response->status, 400);
  EXPECT_EQ(h.got[1].event, ExchangeEvent::kResponseComplete);
  EXPECT_EQ(h.got[1].ex.request.target, "/good");
  EXPECT_EQ(h.got[1].ex.response->body, "good");
  EXPECT_EQ(h.stats().parse_errors, 1u);
  EXPECT_EQ(h.stats().requests, 2u);
  EXPECT_EQ(h.stats().orphan_responses, 0u);
}

// Framing a hostile client can choose to hide a request behind: Go's net/http (dockerd,
// kube-apiserver, MKE's controller) serves these, so the auditor must read them as Go does.
// Transfer-Encoding: chunked with a Content-Length: the chunked coding wins (RFC 9112 6.3;
// nginx refuses such a request with 400, which is then its answer).
TEST(Http1Test, ChunkedWithContentLengthIsReadAsChunkedAsGoReadsIt) {
  for (const char* framing : {"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
                              "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"}) {
    Harness h;
    h.Req(std::string("POST /v1.41/secrets/create HTTP/1.1\r\nHost: a\r\n") + framing + "\r\n" +
          Chunk(R"({"Data":"c2VjcmV0"})") + "0\r\n\r\n" + kGetContainers);
    h.Resp(kCreated + kOkEmptyList);
    h.Close();
    ASSERT_EQ(h.got.size(), 2u) << framing;
    EXPECT_EQ(h.got[0].ex.request.target, "/v1.41/secrets/create");
    EXPECT_EQ(h.got[0].ex.request.body, R"({"Data":"c2VjcmV0"})");
    EXPECT_EQ(h.got[0].ex.response->status, 201);
    EXPECT_FALSE(h.got[0].ex.incomplete);
    EXPECT_EQ(h.got[1].ex.request.target, "/v1.41/containers/json?all=1");
    EXPECT_EQ(h.got[1].ex.response->status, 200);
  }
}

// The same Content-Length twice (after trimming): Go reads it as one.
TEST(Http1Test, RepeatedEqualContentLengthsAreOneAsGoReadsThem) {
  Harness h;
  h.Req(
      "POST /v1.41/secrets/create HTTP/1.1\r\nContent-Length: 2\r\nContent-Length:  2 \r\n\r\n{}" +
      kGetContainers);
  h.Resp(kCreated + kOkEmptyList);
  h.Close();
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[0].ex.request.target, "/v1.41/secrets/create");
  EXPECT_EQ(h.got[0].ex.request.body, "{}");
  EXPECT_EQ(h.got[0].ex.response->status, 201);
  EXPECT_EQ(h.got[1].ex.request.target, "/v1.41/containers/json?all=1");
  EXPECT_EQ(h.stats().parse_errors, 0u);
}

// An HTTP/1.0 request's Transfer-Encoding: Go's net/http ignores it (golang.org/issue/12785), so
// the bytes after the head are the next request, which Go serves on a keep-alive connection.
TEST(Http1Test, Http10TransferEncodingIsIgnoredAsGoIgnoresIt) {
  Harness h;
  h.Req(
      "POST /v1.41/containers/create HTTP/1.0\r\nConnection: keep-alive\r\n"
      "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}"
      "POST /v1.41/secrets/create HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}" +
      kGetContainers);
  h.Resp("HTTP/1.0 201 Created\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n" + kCreated +
         kOkEmptyList);
  h.Close();
  ASSERT_EQ(h.got.size(), 3u);
  EXPECT_EQ(h.got[0].ex.request.target, "/v1.41/containers/create");
  EXPECT_EQ(h.got[0].ex.request.body, "{}");
  EXPECT_EQ(h.got[1].ex.request.target, "/v1.41/secrets/create");
  EXPECT_EQ(h.got[1].ex.response->status, 201);
  EXPECT_EQ(h.got[2].ex.request.target, "/v1.41/containers/json?all=1");
  EXPECT_EQ(h.stats().parse_errors, 0u);
}

// More that Go's net/http serves: Transfer-Encoding: chunked with a Content-Length that is
// not a number, or two that differ (Go drops them all unread), and a header line with an empty
// name (Go skips it); the next request follows the body directly.
TEST(Http1Test, OtherFramingsGoServesHideNoRequest) {
  for (const char* head : {
           "Transfer-Encoding: chunked\r\nContent-Length: zz\r\n",
           "Content-Length: 1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n",
       }) {
    Harness h;
    h.Req(std::string("POST /v1.41/secrets/create HTTP/1.1\r\n") + head + "\r\n" + Chunk("{}") +
          "0\r\n\r\n" + kGetContainers);
    h.Resp(kCreated + kOkEmptyList);
    h.Close();
    ASSERT_EQ(h.got.size(), 2u) << head;
    EXPECT_EQ(h.got[0].ex.request.target, "/v1.41/secrets/create");
    EXPECT_EQ(h.got[0].ex.request.body, "{}");
    EXPECT_EQ(h.got[1].ex.request.target, "/v1.41/containers/json?all=1");
  }
  Harness h;
  h.Req("POST /v1.41/secrets/create HTTP/1.1\r\n: x\r\nContent-Length: 2\r\n\r\n{}" +
        kGetContainers);
  h.Resp(kCreated + kOkEmptyList);
  h.Close();
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[0].ex.request.target, "/v1.41/secrets/create");
  EXPECT_EQ(h.got[0].ex.request.headers.size(), 1u);  // the line without a name is not one
  EXPECT_EQ(h.got[1].ex.request.target, "/v1.41/containers/json?all=1");
  EXPECT_EQ(h.stats().parse_errors, 0u);
}

// Header lines nginx serves a request with (a name with bytes other than a token's, which it
// ignores; control bytes or DEL in a value): the request must not vanish from the audit.
TEST(Http1Test, HeaderLinesNginxServesHideNoRequest) {
  for (const char* line : {"X@Y: 1\r\n", "X-\xe9: 1\r\n", "User-Agent: a\x01z\r\n", "X:\x7f\r\n",
                           "Content-\r\nLength: 2\r\n", "X: 1\r\r\n", "Y\r\r\n"}) {
    Harness h;
    h.Req(std::string("POST /v1.41/secrets/create HTTP/1.1\r\n") + line +
          "Content-Length: 2\r\n\r\n{}" + kGetContainers);
    h.Resp(kCreated + kOkEmptyList);
    h.Close();
    ASSERT_EQ(h.got.size(), 2u) << line;
    EXPECT_EQ(h.got[0].ex.request.target, "/v1.41/secrets/create");
    EXPECT_EQ(h.got[0].ex.response->status, 201);
    EXPECT_EQ(h.got[1].ex.request.target, "/v1.41/containers/json?all=1");
  }
}

// An empty Content-Length in a request: Go's net/http ignores it and serves the request
// without a body (nginx answers 400).
TEST(Http1Test, EmptyContentLengthIsNoneAsGoReadsIt) {
  Harness h;
  h.Req("DELETE /v1.41/secrets/abc HTTP/1.1\r\nContent-Length: \r\n\r\n" + kGetContainers);
  h.Resp("HTTP/1.1 204 No Content\r\n\r\n" + kOkEmptyList);
  h.Close();
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[0].ex.request.target, "/v1.41/secrets/abc");
  EXPECT_EQ(h.got[0].ex.response->status, 204);
  EXPECT_EQ(h.got[1].ex.request.target, "/v1.41/containers/json?all=1");
  EXPECT_EQ(h.stats().parse_errors, 0u);
}

// A method http-parser did not know (any token: Go's net/http serves it, nginx serves any of
// A-Z, '_' and '-') with a body, and the next request right after that body, not on a line of
// its own: both servers answer both; the auditor drops the first as malformed and, resynchronising
// at line starts, never sees the second, so a client can hide any request behind such a one.
// Any token is a method now, as Go reads it; nginx answers the others 400 and closes.
TEST(Http1Test, ARequestAfterAnUnknownMethodsBodyIsNotHidden) {
  Harness h;
  h.Req(
      "PT /x HTTP/1.1\r\nContent-Length: 1\r\n\r\na"
      "POST /v1.41/secrets/create HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}");
  h.Resp("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n" + kCreated);
  h.Close();
  std::vector<std::string> targets;
  for (const Got& g : h.got) targets.push_back(g.ex.request.target);
  EXPECT_THAT(targets, ::testing::Contains("/v1.41/secrets/create"));
}

// An HTTP/0.9 request (no version, no headers): nginx 1.22 serves a GET so sent (a body with no
// status line, then it closes); Go answers 400. The auditor drops it as malformed (http-parser
// took it as 0.9 only when a blank line followed), so a GET through nginx can go unaudited.
TEST(Http1Test, Http09GetIsAudited) {
  Harness h;
  h.Req("GET /v1.41/secrets\r\n");
  h.Resp("[{\"ID\":\"abc\"}]");
  h.Close();
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].ex.request.target, "/v1.41/secrets");
}

// A request line the parser cannot read that still names a method and a target (a lower-case
// or unknown version, tabs for spaces, a NUL in the target): nginx and Go answer 400 and close,
// and nginx logs the line. It is audited by that method and target, with the 400, incomplete;
// the request pipelined after it was never read. A line naming no method stays unreported.
TEST(Http1Test, RejectedRequestLineIsAuditedByItsMethodAndTarget) {
  const std::string kNul("/a\0x", 4);
  const std::pair<std::string, std::string> cases[] = {
      {"GET /a http/1.1", "/a"},       {"GET /a HTTX/1.1", "/a"},
      {"GET\t/a\tHTTP/1.1", "/a"},     {"GET " + kNul + " HTTP/1.1", kNul},
      {"GET /a HTTP/1.1 extra", "/a"},
  };
  const std::string kBad = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n";
  for (const auto& [line, target] : cases) {
    SCOPED_TRACE(line);
    Harness h;
    h.Req(line + "\r\nHost: h\r\n\r\n" + Get("/next"));
    h.Resp(kBad);
    h.Close();
    ASSERT_EQ(h.got.size(), 1u);
    EXPECT_EQ(h.got[0].event, ExchangeEvent::kResponseComplete);
    EXPECT_EQ(h.got[0].ex.request.method, "GET");
    EXPECT_EQ(h.got[0].ex.request.target, target);
    EXPECT_TRUE(h.got[0].ex.incomplete);
    EXPECT_EQ(h.got[0].ex.response->status, 400);
    EXPECT_EQ(h.stats().requests_after_close, 1u);  // /next
  }
  Harness h;
  h.Req("\x16\x03\x01 /a HTTP/1.1\r\n\r\n" + Get("/next"));
  h.Resp(kBad);
  h.Close();
  EXPECT_TRUE(h.got.empty());
  EXPECT_EQ(h.stats().orphan_responses, 1u);
}

TEST(Http1Test, MalformedResponseReportsItsRequest) {
  Harness h;
  h.Req(Get("/a") + Get("/b"));
  h.Resp("HTTP/1.1 200 OK\r\nContent-Length: zz\r\n\r\n" + Ok("b"));
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[0].event, ExchangeEvent::kNoResponse);
  EXPECT_TRUE(h.got[0].ex.incomplete);
  EXPECT_EQ(h.got[0].ex.request.target, "/a");
  EXPECT_EQ(h.got[1].event, ExchangeEvent::kResponseComplete);
  EXPECT_EQ(h.got[1].ex.request.target, "/b");
  EXPECT_EQ(h.got[1].ex.response->body, "b");
  EXPECT_EQ(h.stats().parse_errors, 1u);
}

// A head the parser rejects (a line without a colon holding a space), then requests: each is
// queued once (no loop); the ones after the rejected one depend on the server's answer to it,
// and none came: only the first is reported, without a status.
TEST(Http1Test, RejectedHeadsWithoutLooping) {
  Harness h({}, false);
  h.Req("FOOBAR / HTTP/1.1\r\nFOOBAR / HTTP/1.1\r\n\r\nFOOBAR / HTTP/1.1\r\n\r\n" + Get("/ok"));
  h.Close();
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].ex.request.method, "FOOBAR");
  EXPECT_EQ(h.got[0].event, ExchangeEvent::kNoResponse);
  EXPECT_EQ(h.stats().parse_errors, 1u);  // the first; the next two and /ok parse
  EXPECT_EQ(h.stats().requests, 4u);
  EXPECT_EQ(h.stats().requests_after_close, 3u);
}

TEST(Http1Test, RequestWithoutResponseReportedAtClose) {
  Harness h;
  h.Req(Get("/a") + Get("/b"), 5);
  h.Resp(Ok("a"), 6);
  ASSERT_EQ(h.got.size(), 1u);
  h.Close(9);
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[1].event, ExchangeEvent::kNoResponse);
  EXPECT_FALSE(h.got[1].ex.response.has_value());
  EXPECT_FALSE(h.got[1].ex.incomplete);
  EXPECT_EQ(h.got[1].ex.request.target, "/b");
  EXPECT_EQ(h.got[1].ex.request.complete_ns, 5u);
  h.Req(Get("/after-close"));
  h.Close();
  EXPECT_EQ(h.got.size(), 2u);
}

TEST(Http1Test, RequestBodyInFlightAtClose) {
  Harness h;
  h.Req("POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345", 4);
  h.Close();
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].event, ExchangeEvent::kNoResponse);
  EXPECT_FALSE(h.got[0].ex.incomplete);
  EXPECT_EQ(h.got[0].ex.request.body, "12345");
  EXPECT_EQ(h.got[0].ex.request.headers_done_ns, 4u);
  EXPECT_EQ(h.got[0].ex.request.complete_ns, 0u);
}

TEST(Http1Test, RequestHeadersInFlightAtCloseAreNotReported) {
  Harness h;
  h.Req(Get("/a") + "GET /partial HTTP/1.1\r\nHo");
  h.Close();
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].ex.request.target, "/a");
  EXPECT_EQ(h.stats().parse_errors, 0u);
}

TEST(Http1Test, ResponseReadUntilClose) {
  Harness h;
  h.Req(Get("/v1.41/containers/x/logs?follow=1"), 1);
  h.Resp("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nline 1\n", 2);
  h.Resp("line 2\n", 3);
  EXPECT_TRUE(h.got.empty());
  h.Close(50);
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].event, ExchangeEvent::kResponseComplete);
  EXPECT_EQ(h.got[0].ex.response->body, "line 1\nline 2\n");
  EXPECT_EQ(h.got[0].ex.response->complete_ns, 50u);
  EXPECT_EQ(h.stats().parse_errors, 0u);
}

TEST(Http1Test, ResponseCutByCloseIsNoResponse) {
  Harness h;
  h.Req(Get("/a"));
  h.Resp("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  h.Close();
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].event, ExchangeEvent::kNoResponse);
  EXPECT_FALSE(h.got[0].ex.response.has_value());
  EXPECT_EQ(h.stats().parse_errors, 0u);
}

TEST(Http1Test, BodyTruncation) {
  Http1Options o;
  o.max_body_bytes = 8;
  Harness h(o);
  h.Req("POST /p HTTP/1.1\r\nContent-Length: 20\r\n\r\n01234567890123456789");
  h.Resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + Chunk("abcde") + Chunk("fghij") +
         "0\r\n\r\n");
  h.Req("POST /q HTTP/1.1\r\nContent-Length: 8\r\n\r\n01234567");
  h.Resp(Ok("12345678"));
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[0].ex.request.body, "01234567");
  EXPECT_EQ(h.got[0].ex.request.body_size, 20u);
  EXPECT_TRUE(h.got[0].ex.request.body_truncated);
  EXPECT_EQ(h.got[0].ex.response->body, "abcdefgh");
  EXPECT_EQ(h.got[0].ex.response->body_size, 10u);
  EXPECT_TRUE(h.got[0].ex.response->body_truncated);
  EXPECT_EQ(h.got[1].ex.request.body, "01234567");
  EXPECT_FALSE(h.got[1].ex.request.body_truncated);
  EXPECT_EQ(h.got[1].ex.response->body, "12345678");
  EXPECT_FALSE(h.got[1].ex.response->body_truncated);
}

TEST(Http1Test, HeaderBlockLimitIsExact) {
  // Counted: target, names, values, and 4 bytes per header line. "/" + "Host" + "a" + 4 = 10.
  for (size_t limit : {9u, 10u}) {
    Http1Options o;
    o.max_header_bytes = limit;
    Harness h(o);
    h.Req("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    h.Close();
    // Over the limit, the request is still reported, by its start line only, incomplete.
    ASSERT_EQ(h.got.size(), 1u) << limit;
    EXPECT_EQ(h.got[0].ex.request.target, "/");
    EXPECT_EQ(h.got[0].ex.incomplete, limit != 10) << limit;
    EXPECT_EQ(h.got[0].ex.request.headers.empty(), limit != 10) << limit;
    EXPECT_EQ(h.stats().parse_errors, limit == 10 ? 0u : 1u) << limit;
    EXPECT_EQ(h.stats().headers_too_large, limit == 10 ? 0u : 1u) << limit;
  }
}

TEST(Http1Test, HeaderBlockOverLimit) {
  Http1Options o;
  o.max_header_bytes = 256;
  Harness h(o);
  const std::string big = "GET /big HTTP/1.1\r\nHost: api\r\nX-Big: " + std::string(300, 'x') +
                          "\r\nX-After: 1\r\n\r\n";
  // Fed in small pieces: the limit must hold across calls too.
  for (size_t i = 0; i < big.size(); i += 7) h.Req(big.substr(i, 7));
  h.Req(Get("/good"));
  h.Resp("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n" + Ok("g"));
  // The oversized request is audited by its start line, incomplete, with the server's answer.
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[0].ex.request.method, "GET");
  EXPECT_EQ(h.got[0].ex.request.target, "/big");
  EXPECT_TRUE(h.got[0].ex.request.headers.empty());
  EXPECT_TRUE(h.got[0].ex.incomplete);
  ASSERT_TRUE(h.got[0].ex.response.has_value());
  EXPECT_EQ(h.got[0].ex.response->status, 431);
  EXPECT_EQ(h.got[1].ex.request.target, "/good");
  EXPECT_FALSE(h.got[1].ex.incomplete);
  EXPECT_EQ(h.got[1].ex.response->body, "g");
  EXPECT_EQ(h.stats().parse_errors, 1u);
  EXPECT_EQ(h.stats().headers_too_large, 1u);
  EXPECT_EQ(h.stats().requests, 2u);
  EXPECT_EQ(h.stats().orphan_responses, 0u);
}

// A header block far over the limit (beyond what the parser buffers), in one call or many: the
// request is named by its start line, and the next request is audited as usual.
TEST(Http1Test, HugeHeaderBlockIsNamedAndTheNextRequestAudited) {
  for (size_t piece : {size_t{1} << 20, size_t{4096}}) {
    Http1Options o;
    o.max_header_bytes = 1024;
    Harness h(o);
    const std::string huge =
        "POST /api/v1/namespaces/default/configmaps?x=1 HTTP/1.1\r\nHost: a\r\n" +
        std::string(64 * 1024, 'h') + ": v\r\nContent-Length: 0\r\n\r\n";
    const std::string all = huge + Get("/after");
    for (size_t i = 0; i < all.size(); i += piece) h.Req(all.substr(i, piece));
    h.Resp("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n" + Ok("a"));
    ASSERT_EQ(h.got.size(), 2u) << piece;
    EXPECT_EQ(h.got[0].ex.request.method, "POST");
    EXPECT_EQ(h.got[0].ex.request.target, "/api/v1/namespaces/default/configmaps?x=1");
    EXPECT_TRUE(h.got[0].ex.incomplete);
    ASSERT_TRUE(h.got[0].ex.response.has_value());
    EXPECT_EQ(h.got[0].ex.response->status, 431);
    EXPECT_EQ(h.got[1].ex.request.target, "/after");
    EXPECT_EQ(h.stats().headers_too_large, 1u);
  }
}

// The gap is exactly the rest of a Content-Length body: the request completes at the gap,
// in sync, and is not incomplete (only body bytes were lost).
TEST(Http1Test, GapInRequestBody) {
  Harness h;
  h.Req("POST /v1.41/images/load HTTP/1.1\r\nContent-Length: 20\r\n\r\nhello", 1);
  h.conn().OnGap(kReq, 15, 2);
  h.Req(Get("/v1.41/images/json"), 3);
  h.Resp(Ok("loaded") + Ok("[]"), 4);
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[0].event, ExchangeEvent::kResponseComplete);
  EXPECT_FALSE(h.got[0].ex.incomplete);
  EXPECT_EQ(h.got[0].ex.request.target, "/v1.41/images/load");
  EXPECT_EQ(h.got[0].ex.request.body, "hello");
  EXPECT_EQ(h.got[0].ex.request.body_size, 20u);
  EXPECT_TRUE(h.got[0].ex.request.body_truncated);
  EXPECT_EQ(h.got[0].ex.request.complete_ns, 2u);
  EXPECT_EQ(h.got[0].ex.response->body, "loaded");
  EXPECT_EQ(h.got[1].event, ExchangeEvent::kResponseComplete);
  EXPECT_FALSE(h.got[1].ex.incomplete);
  EXPECT_EQ(h.got[1].ex.request.target, "/v1.41/images/json");
  EXPECT_EQ(h.got[1].ex.response->body, "[]");
  EXPECT_EQ(h.stats().parse_errors, 0u);
  EXPECT_EQ(h.stats().orphan_responses, 0u);
  EXPECT_EQ(h.stats().resyncs, 0u);
  EXPECT_EQ(h.stats().gaps_skipped_in_body, 1u);
}

TEST(Http1Test, GapInRequestHeadersDiscardsTheRequest) {
  Harness h;
  h.Req("GET /lost HTTP/1.1\r\nHo", 1);
  h.conn().OnGap(kReq, 100, 2);
  h.Req("st: a\r\n\r\n", 3);  // rest of the lost request: skipped
  h.Req(Get("/kept"), 4);
  h.Resp(Ok("lost") + Ok("kept"), 5);
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].ex.request.target, "/kept");
  EXPECT_EQ(h.got[0].ex.response->body, "kept");
  EXPECT_EQ(h.stats().orphan_responses, 1u);
}

// A gap inside a Content-Length response body: the stream stays in sync, the rest of the
// body completes the response, which is reported as usual (body: the bytes before the gap).
TEST(Http1Test, GapInResponseBodyKeepsSync) {
  Harness h;
  h.Req(Get("/a") + Get("/b"), 1);
  h.Resp("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", 2);
  h.conn().OnGap(kResp, 50, 3);
  EXPECT_TRUE(h.got.empty());
  h.Resp(std::string(43, 'z'), 4);  // the rest of /a's body: counted, not kept
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].event, ExchangeEvent::kResponseComplete);
  EXPECT_FALSE(h.got[0].ex.incomplete);
  EXPECT_EQ(h.got[0].ex.request.target, "/a");
  EXPECT_EQ(h.got[0].ex.response->status, 200);
  EXPECT_EQ(h.got[0].ex.response->body, "partial");
  EXPECT_EQ(h.got[0].ex.response->body_size, 100u);
  EXPECT_TRUE(h.got[0].ex.response->body_truncated);
  EXPECT_EQ(h.got[0].ex.response->complete_ns, 4u);
  h.Resp(Ok("b"), 5);
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[1].ex.request.target, "/b");
  EXPECT_EQ(h.got[1].ex.response->body, "b");
  EXPECT_FALSE(h.got[1].ex.incomplete);
  EXPECT_EQ(h.stats().gaps_skipped_in_body, 1u);
  EXPECT_EQ(h.stats().resyncs, 0u);
  EXPECT_EQ(h.stats().skipped_bytes, 0u);
}

// A gap longer than the rest of the body cannot be absorbed: the response is abandoned, but
// its status was seen, so its request is reported with it, marked incomplete.
TEST(Http1Test, GapInResponseReportsHeadIncomplete) {
  Harness h;
  h.Req(Get("/a") + Get("/b"), 1);
  h.Resp("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", 2);
  h.conn().OnGap(kResp, 93 + Ok("b").size(), 3);  // the rest of /a's body, all of /b's
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[0].event, ExchangeEvent::kResponseComplete);
  EXPECT_TRUE(h.got[0].ex.incomplete);
  EXPECT_EQ(h.got[0].ex.request.target, "/a");
  EXPECT_EQ(h.got[0].ex.response->status, 200);
  EXPECT_EQ(h.got[0].ex.response->body, "partial");
  EXPECT_EQ(h.got[0].ex.response->body_size, 7u);
  EXPECT_EQ(h.got[0].ex.response->complete_ns, 0u);
  // The gap went past /a's body: the start of the next response (/b's) was lost with it.
  EXPECT_EQ(h.got[1].event, ExchangeEvent::kNoResponse);
  EXPECT_TRUE(h.got[1].ex.incomplete);
  EXPECT_EQ(h.got[1].ex.request.target, "/b");
  EXPECT_FALSE(h.got[1].ex.response.has_value());
  h.Req(Get("/c"), 4);
  h.Resp(Ok("c"), 5);
  ASSERT_EQ(h.got.size(), 3u);
  EXPECT_EQ(h.got[2].ex.request.target, "/c");
  EXPECT_EQ(h.got[2].ex.response->body, "c");
  EXPECT_FALSE(h.got[2].ex.incomplete);
  EXPECT_EQ(h.stats().gaps_skipped_in_body, 0u);
  EXPECT_EQ(h.stats().orphan_responses, 0u);
}

// ---- gaps inside bodies (the tap keeps only the first 64 KiB of each write) ----

constexpr size_t kTapLimit = 64 * 1024;

// A body with no NUL byte, so a filler byte kept by mistake would show.
std::string Pattern(size_t n) {
  std::string b(n, '\0');
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<char>('a' + i % 26);
  return b;
}

size_t HeadSize(const std::string& message) { return message.find("\r\n\r\n") + 4; }

// Python's HTTPS server writes a 1 MiB response in one SSL_write: we get its first 64 KiB,
// then a gap for the rest. The status, headers and framing were all seen.
TEST(Http1Test, LargeResponseCutByTapThenKeepAlive) {
  const std::string body = Pattern(1 << 20);
  const std::string wire =
      "HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.11.2\r\nConnection: keep-alive\r\n"
      "Content-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n" +
      body;
  const size_t head = HeadSize(wire);
  Harness h;
  h.Req(Get("/big.bin"), 1);
  h.Resp(std::string_view(wire).substr(0, kTapLimit), 2);
  EXPECT_TRUE(h.got.empty());
  h.conn().OnGap(kResp, wire.size() - kTapLimit, 3);
  ASSERT_EQ(h.got.size(), 1u);
  const Got& g = h.got[0];
  EXPECT_EQ(g.event, ExchangeEvent::kResponseComplete);
  EXPECT_FALSE(g.ex.incomplete);
  EXPECT_EQ(g.ex.request.target, "/big.bin");
  ASSERT_TRUE(g.ex.response.has_value());
  EXPECT_EQ(g.ex.response->status, 200);
  EXPECT_EQ(*FindHeader(g.ex.response->headers, "content-length"), "1048576");
  EXPECT_EQ(g.ex.response->body_size, 1048576u);
  EXPECT_TRUE(g.ex.response->body_truncated);
  EXPECT_EQ(g.ex.response->body.size(), kTapLimit - head);
  EXPECT_EQ(g.ex.response->body, body.substr(0, kTapLimit - head));  // seen bytes only
  EXPECT_EQ(g.ex.response->first_byte_ns, 2u);
  EXPECT_EQ(g.ex.response->complete_ns, 3u);
  // Keep-alive: the next exchange on the connection pairs as usual.
  h.Req(Get("/small"), 4);
  h.Resp(Ok("next"), 5);
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[1].event, ExchangeEvent::kResponseComplete);
  EXPECT_FALSE(h.got[1].ex.incomplete);
  EXPECT_EQ(h.got[1].ex.request.target, "/small");
  EXPECT_EQ(h.got[1].ex.response->status, 200);
  EXPECT_EQ(h.got[1].ex.response->body, "next");
  EXPECT_EQ(h.stats().gaps_skipped_in_body, 1u);
  EXPECT_EQ(h.stats().responses, 2u);
  EXPECT_EQ(h.stats().resyncs, 0u);
  EXPECT_EQ(h.stats().skipped_bytes, 0u);
  EXPECT_EQ(h.stats().parse_errors, 0u);
  EXPECT_EQ(h.stats().orphan_responses, 0u);
  h.Close();
  EXPECT_EQ(h.got.size(), 2u);
}

// The kept body never exceeds max_body_bytes, and bytes after a gap are counted, not kept,
// even when there is room (no hole in the kept body); a second gap in the same body too.
TEST(Http1Test, BodyAfterAGapIsCountedNotKept) {
  for (size_t max : {4u, 64u}) {
    Http1Options o;
    o.max_body_bytes = max;
    Harness h(o);
    h.Req(Get("/a"), 1);
    h.Resp("HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n0123456789", 2);
    h.conn().OnGap(kResp, 5, 3);
    h.Resp("ABCDE", 4);
    h.conn().OnGap(kResp, 5, 5);
    EXPECT_TRUE(h.got.empty());
    h.Resp("VWXYZ", 6);
    ASSERT_EQ(h.got.size(), 1u) << max;
    EXPECT_FALSE(h.got[0].ex.incomplete);
    EXPECT_EQ(h.got[0].ex.response->body, max == 4 ? "0123" : "0123456789");
    EXPECT_EQ(h.got[0].ex.response->body_size, 30u);
    EXPECT_TRUE(h.got[0].ex.response->body_truncated);
    EXPECT_EQ(h.got[0].ex.response->complete_ns, 6u);
    EXPECT_EQ(h.stats().gaps_skipped_in_body, 2u);
  }
}

// A large upload: the client's first write loses all but its first 64 KiB, the next writes
// arrive. The request stays whole (not incomplete) and pairs with its response.
TEST(Http1Test, GapInUploadBodyKeepsTheRequest) {
  const std::string body = Pattern(300000);
  const std::string upload =
      "PUT /v1.41/containers/4f3c/archive?path=/tmp HTTP/1.1\r\nHost: api\r\n"
      "Content-Type: application/x-tar\r\nContent-Length: 300000\r\n\r\n" +
      body;
  const size_t head = HeadSize(upload);
  const size_t first_write = 200000;
  Harness h;
  h.Req(std::string_view(upload).substr(0, kTapLimit), 1);
  h.conn().OnGap(kReq, first_write - kTapLimit, 2);
  h.Req(std::string_view(upload).substr(first_write), 3);
  h.Req(Get("/v1.41/containers/4f3c/json"), 4);
  h.Resp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" + Ok("{}"), 5);
  ASSERT_EQ(h.got.size(), 2u);
  const HttpExchange& ex = h.got[0].ex;
  EXPECT_EQ(h.got[0].event, ExchangeEvent::kResponseComplete);
  EXPECT_FALSE(ex.incomplete);
  EXPECT_EQ(ex.request.method, "PUT");
  EXPECT_EQ(ex.request.target, "/v1.41/containers/4f3c/archive?path=/tmp");
  EXPECT_EQ(ex.request.body_size, 300000u);
  EXPECT_TRUE(ex.request.body_truncated);
  EXPECT_EQ(ex.request.body, body.substr(0, kTapLimit - head));
  EXPECT_EQ(ex.request.complete_ns, 3u);
  EXPECT_EQ(ex.response->status, 200);
  EXPECT_EQ(h.got[1].ex.request.target, "/v1.41/containers/4f3c/json");
  EXPECT_EQ(h.got[1].ex.response->body, "{}");
  EXPECT_EQ(h.stats().gaps_skipped_in_body, 1u);
  EXPECT_EQ(h.stats().parse_errors, 0u);
  EXPECT_EQ(h.stats().resyncs, 0u);
}

// The gap is exactly the rest of the body: the response completes at the gap.
TEST(Http1Test, GapExactlyTheRestOfTheBody) {
  Harness h;
  h.Req(Get("/missing") + Get("/next"), 1);
  h.Resp("HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\nabc", 2);
  h.conn().OnGap(kResp, 7, 3);
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].event, ExchangeEvent::kResponseComplete);
  EXPECT_FALSE(h.got[0].ex.incomplete);
  EXPECT_EQ(h.got[0].ex.response->status, 404);
  EXPECT_EQ(h.got[0].ex.response->body, "abc");
  EXPECT_EQ(h.got[0].ex.response->body_size, 10u);
  EXPECT_EQ(h.got[0].ex.response->complete_ns, 3u);
  h.Resp(Ok("n"), 4);
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[1].ex.request.target, "/next");
  EXPECT_EQ(h.got[1].ex.response->body, "n");
  EXPECT_EQ(h.stats().resyncs, 0u);
}

// One byte more than the rest of the body: the old path (abandon, resynchronise). The gap
// took the first byte of the next request; the one after it is found and pairs correctly.
TEST(Http1Test, GapOneByteLongerThanTheRequestBody) {
  for (bool one_call : {false, true}) {
    Harness h;
    h.Req("POST /v1.41/images/load HTTP/1.1\r\nContent-Length: 20\r\n\r\nhello", 1);
    h.conn().OnGap(kReq, 16, 2);
    const std::string rest = Get("/lost").substr(1);  // "ET /lost HTTP/1.1...": not a method
    if (one_call) {
      h.Req(rest + Get("/after"), 3);
    } else {
      h.Req(rest, 3);
      h.Req(Get("/after"), 3);
    }
    h.Resp(Ok("loaded") + Ok("lost") + Ok("after"), 4);
    ASSERT_EQ(h.got.size(), 2u) << one_call;
    EXPECT_EQ(h.got[0].event, ExchangeEvent::kResponseComplete);
    EXPECT_TRUE(h.got[0].ex.incomplete);
    EXPECT_EQ(h.got[0].ex.request.target, "/v1.41/images/load");
    EXPECT_EQ(h.got[0].ex.request.body, "hello");
    EXPECT_EQ(h.got[0].ex.response->body, "loaded");
    EXPECT_EQ(h.got[1].event, ExchangeEvent::kResponseComplete);
    EXPECT_FALSE(h.got[1].ex.incomplete);
    EXPECT_EQ(h.got[1].ex.request.target, "/after");
    EXPECT_EQ(h.got[1].ex.response->body, "after");
    EXPECT_EQ(h.stats().gaps_skipped_in_body, 0u);
    EXPECT_EQ(h.stats().orphan_responses, 1u);  // /lost's
    EXPECT_EQ(h.stats().requests, 2u);
    h.Close();
    EXPECT_EQ(h.got.size(), 2u);
  }
}

// Same, with the gap ending after the method so that the remains are skipped as a line.
TEST(Http1Test, GapIntoTheNextRequestSkipsItsRemains) {
  Harness h;
  h.Req(Get("/a") + "POST /b HTTP/1.1\r\nContent-Length: 4\r\n\r\nab", 1);
  h.conn().OnGap(kReq, 2 + 10, 2);  // "cd" and "GET /lost " of the next request
  h.Req("HTTP/1.1\r\nHost: api\r\n\r\n" + Get("/c"), 3);
  h.Resp(Ok("a") + Ok("b") + Ok("lost") + Ok("c"), 4);
  ASSERT_EQ(h.got.size(), 3u);
  EXPECT_EQ(h.got[0].ex.request.target, "/a");
  EXPECT_EQ(h.got[0].ex.response->body, "a");
  EXPECT_EQ(h.got[1].ex.request.target, "/b");
  EXPECT_TRUE(h.got[1].ex.incomplete);
  EXPECT_EQ(h.got[1].ex.response->body, "b");
  EXPECT_EQ(h.got[2].ex.request.target, "/c");
  EXPECT_EQ(h.got[2].ex.response->body, "c");
  EXPECT_FALSE(h.got[2].ex.incomplete);
  EXPECT_EQ(h.stats().orphan_responses, 1u);
  EXPECT_EQ(h.stats().resyncs, 1u);
}

// A chunked body: lost bytes may hold chunk framing, so the old path applies. The status was
// seen: the exchange is reported with it, incomplete.
TEST(Http1Test, GapInChunkedBodyAbandons) {
  Harness h;
  h.Req(Get("/a") + Get("/b"), 1);
  h.Resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + Chunk("hello"), 2);
  h.conn().OnGap(kResp, 3, 3);
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].event, ExchangeEvent::kResponseComplete);
  EXPECT_TRUE(h.got[0].ex.incomplete);
  EXPECT_EQ(h.got[0].ex.response->status, 200);
  EXPECT_EQ(h.got[0].ex.response->body, "hello");
  EXPECT_EQ(h.got[0].ex.response->body_size, 5u);
  h.Resp("orld\r\n0\r\n\r\n" + Ok("b"), 4);  // the remains are skipped
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[1].ex.request.target, "/b");
  EXPECT_EQ(h.got[1].ex.response->body, "b");
  EXPECT_EQ(h.stats().gaps_skipped_in_body, 0u);
  EXPECT_EQ(h.stats().resyncs, 1u);
}

TEST(Http1Test, GapInChunkedUploadAbandons) {
  Harness h;
  const std::string up = CurlChunkedUpload();
  const size_t cut = HeadSize(up) + 4;
  h.Req(up.substr(0, cut), 1);
  h.conn().OnGap(kReq, 2, 2);
  h.Req(up.substr(cut + 2) + Get("/next"), 3);
  h.Resp(Ok("built") + Ok("n"), 4);
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_TRUE(h.got[0].ex.incomplete);
  EXPECT_EQ(h.got[0].ex.request.target, "/v1.41/build?t=demo");
  EXPECT_EQ(h.got[0].ex.response->body, "built");
  EXPECT_EQ(h.got[1].ex.request.target, "/next");
  EXPECT_EQ(h.got[1].ex.response->body, "n");
  EXPECT_EQ(h.stats().gaps_skipped_in_body, 0u);
}

// A body read until the connection closes has no length: the old path.
TEST(Http1Test, GapInReadUntilCloseBodyAbandons) {
  Harness h;
  h.Req(Get("/logs"), 1);
  h.Resp("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nline 1\n", 2);
  h.conn().OnGap(kResp, 100, 3);
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].event, ExchangeEvent::kResponseComplete);
  EXPECT_TRUE(h.got[0].ex.incomplete);
  EXPECT_EQ(h.got[0].ex.response->status, 200);
  EXPECT_EQ(h.got[0].ex.response->body, "line 1\n");
  EXPECT_EQ(h.stats().gaps_skipped_in_body, 0u);
}

// The header block was not complete: nothing is known about the framing (old path).
TEST(Http1Test, GapInResponseHeadersIsNoResponse) {
  Harness h;
  h.Req(Get("/a") + Get("/b"), 1);
  h.Resp("HTTP/1.1 200 OK\r\nContent-Le", 2);
  h.conn().OnGap(kResp, 20, 3);
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].event, ExchangeEvent::kNoResponse);
  EXPECT_TRUE(h.got[0].ex.incomplete);
  EXPECT_FALSE(h.got[0].ex.response.has_value());
  EXPECT_EQ(h.got[0].ex.request.target, "/a");
  h.Resp("ngth: 3\r\n\r\nab\n" + Ok("b"), 4);  // the remains are skipped
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[1].ex.request.target, "/b");
  EXPECT_EQ(h.got[1].ex.response->body, "b");
  EXPECT_EQ(h.stats().gaps_skipped_in_body, 0u);
}

// A gap of unknown size (0) is never absorbed.
TEST(Http1Test, GapOfUnknownSizeAbandons) {
  Harness h;
  h.Req(Get("/a"), 1);
  h.Resp("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 2);
  h.conn().OnGap(kResp, 0, 3);
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_TRUE(h.got[0].ex.incomplete);
  EXPECT_EQ(h.got[0].ex.response->status, 200);
  EXPECT_EQ(h.stats().gaps_skipped_in_body, 0u);
}

// A hostile peer claims a 10^15 byte body and a 10^12 byte gap is reported: absorbed in O(1)
// (no filler loop), the count stays exact, and a gap past the claimed end resynchronises.
TEST(Http1Test, AbsurdBodyAndGapSizesAreCheap) {
  constexpr uint64_t kLen = 1000000000000000ull;  // 10^15
  constexpr uint64_t kGap = 1000000000000ull;     // 10^12
  for (Direction dir : {kReq, kResp}) {
    Harness h;
    const std::string head = dir == kReq ? "POST /up HTTP/1.1\r\nContent-Length: "
                                         : "HTTP/1.1 200 OK\r\nContent-Length: ";
    if (dir == kResp) h.Req(Get("/down"), 1);
    h.conn().OnData(dir, head + std::to_string(kLen) + "\r\n\r\nabcde", 2);
    h.conn().OnGap(dir, kGap, 3);
    h.conn().OnData(dir, "fghij", 4);
    h.conn().OnGap(dir, kGap, 5);
    EXPECT_TRUE(h.got.empty());
    EXPECT_EQ(h.stats().gaps_skipped_in_body, 2u);
    // The rest, exactly: the message completes.
    h.conn().OnGap(dir, kLen - 10 - 2 * kGap - 1, 6);
    EXPECT_TRUE(h.got.empty());
    h.conn().OnData(dir, "z", 7);
    if (dir == kReq) {
      h.Req(Get("/next"), 8);
      h.Resp(Ok("up") + Ok("next"), 9);
      ASSERT_EQ(h.got.size(), 2u);
      EXPECT_EQ(h.got[0].ex.request.body, "abcde");
      EXPECT_EQ(h.got[0].ex.request.body_size, kLen);
      EXPECT_EQ(h.got[0].ex.request.complete_ns, 7u);
      EXPECT_EQ(h.got[1].ex.request.target, "/next");
      EXPECT_EQ(h.got[1].ex.response->body, "next");
    } else {
      ASSERT_EQ(h.got.size(), 1u);
      EXPECT_EQ(h.got[0].ex.response->body, "abcde");
      EXPECT_EQ(h.got[0].ex.response->body_size, kLen);
      EXPECT_EQ(h.got[0].ex.response->complete_ns, 7u);
    }
    EXPECT_FALSE(h.got[0].ex.incomplete);
    EXPECT_EQ(h.stats().gaps_skipped_in_body, 3u);
    EXPECT_EQ(h.stats().resyncs, 0u);
  }
  // A gap beyond the claimed length: not absorbed, and no huge work either.
  Harness h;
  h.Req(Get("/down"), 1);
  h.Resp("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kLen) + "\r\n\r\nab", 2);
  h.conn().OnGap(kResp, ~uint64_t{0}, 3);
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_TRUE(h.got[0].ex.incomplete);
  EXPECT_EQ(h.got[0].ex.response->status, 200);
  EXPECT_EQ(h.got[0].ex.response->body_size, 2u);
  EXPECT_EQ(h.stats().gaps_skipped_in_body, 0u);
}

// After a gap in a body, the bytes that follow may be split anywhere.
TEST(Http1Test, BytesAfterABodyGapSplitAnywhere) {
  const std::string body = Pattern(20000);
  const std::string wire = Ok(body) + Ok("second") + kCreated;
  const size_t head = HeadSize(wire);
  const size_t seen = 4096;
  const size_t real_tail = 300;  // the last body bytes come in a later write
  const size_t gap = head + body.size() - real_tail - seen;
  const std::string after = wire.substr(seen + gap);
  const std::string requests = Get("/1") + Get("/2") + CreateRequest("x");
  auto run = [&](const std::vector<std::string_view>& pieces) {
    Harness h;
    h.Req(requests, 1);
    h.Resp(std::string_view(wire).substr(0, seen), 2);
    h.conn().OnGap(kResp, gap, 3);
    for (std::string_view p : pieces) h.Resp(p, 4);
    h.Close(5);
    EXPECT_EQ(h.stats().gaps_skipped_in_body, 1u);
    EXPECT_EQ(h.stats().parse_errors, 0u);
    EXPECT_EQ(h.stats().resyncs, 0u);
    return DescribeAll(h.got);
  };
  const std::vector<std::string> want = run({after});
  ASSERT_EQ(want.size(), 3u);
  EXPECT_THAT(want[0], ::testing::StartsWith("RESPONSE incomplete=0\nGET /1 "));
  EXPECT_THAT(want[0],
              ::testing::HasSubstr("body(20000,truncated)=" + body.substr(0, seen - head) + "\n"));
  EXPECT_THAT(want[1], ::testing::HasSubstr("body(6)=second"));
  EXPECT_THAT(want[2], ::testing::HasSubstr("HTTP/1.1 201"));
  const std::string_view a(after);
  for (size_t k = 0; k <= a.size(); ++k) {
    ASSERT_EQ(run({a.substr(0, k), a.substr(k)}), want) << "split at " << k;
  }
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < a.size(); ++i) bytes.push_back(a.substr(i, 1));
  EXPECT_EQ(run(bytes), want) << "one byte at a time";
}

// Random holes cut into a stream of Content-Length messages (uploads or responses), reported
// with their exact size. A hole inside one body costs nothing but body bytes: every exchange
// is reported complete, the cut body keeps exactly the bytes before the hole.
TEST(Http1Test, RandomHolesInsideBodiesKeepEveryExchange) {
  std::mt19937 rng(4242);
  for (int round = 0; round < 400; ++round) {
    Http1Options o;
    o.max_body_bytes = 1 + rng() % 64;
    const bool cut_requests = rng() % 2 == 0;
    const int n = 1 + static_cast<int>(rng() % 4);
    std::string wire[2];  // requests, responses
    std::vector<std::string> bodies[2];
    std::vector<size_t> body_start[2];
    for (int i = 0; i < n; ++i) {
      for (int d = 0; d < 2; ++d) {
        std::string body = Pattern(1 + rng() % 200);
        std::rotate(body.begin(), body.begin() + static_cast<long>(rng() % body.size()),
                    body.end());
        const std::string msg =
            d == 0 ? "POST /" + std::to_string(i) +
                         " HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) +
                         "\r\n\r\n" + body
                   : Ok(body);
        body_start[d].push_back(wire[d].size() + HeadSize(msg));
        wire[d] += msg;
        bodies[d].push_back(body);
      }
    }
    // A hole [a, b) inside body `cut` of one direction; it may reach the body's end.
    const int side = cut_requests ? 0 : 1;
    const int cut = static_cast<int>(rng() % n);
    const size_t bs = body_start[side][cut], be = bs + bodies[side][cut].size();
    const size_t a = bs + rng() % (be - bs);
    const size_t b = a + 1 + rng() % (be - a);
    Harness h(o);
    auto feed = [&](Direction dir, size_t from, size_t to) {
      const std::string& w = wire[static_cast<int>(dir)];
      while (from < to) {
        const size_t k = std::min<size_t>(1 + rng() % 50, to - from);
        h.conn().OnData(dir, std::string_view(w).substr(from, k), 2);
        from += k;
      }
    };
    const Direction dir = cut_requests ? kReq : kResp;
    if (!cut_requests) feed(kReq, 0, wire[0].size());
    feed(dir, 0, a);
    h.conn().OnGap(dir, b - a, 3);
    feed(dir, b, wire[side].size());
    if (cut_requests) feed(kResp, 0, wire[1].size());
    h.Close(4);
    ASSERT_EQ(h.got.size(), static_cast<size_t>(n)) << round;
    for (int i = 0; i < n; ++i) {
      const Got& g = h.got[i];
      ASSERT_EQ(g.event, ExchangeEvent::kResponseComplete) << round << " " << i;
      EXPECT_FALSE(g.ex.incomplete) << round;
      EXPECT_EQ(g.ex.request.target, "/" + std::to_string(i)) << round;
      for (int d = 0; d < 2; ++d) {
        const std::string& want = bodies[d][i];
        const std::string& body = d == 0 ? g.ex.request.body : g.ex.response->body;
        const uint64_t size = d == 0 ? g.ex.request.body_size : g.ex.response->body_size;
        const bool trunc = d == 0 ? g.ex.request.body_truncated : g.ex.response->body_truncated;
        const bool was_cut = d == side && i == cut;
        const size_t kept = std::min(was_cut ? a - bs : want.size(), o.max_body_bytes);
        EXPECT_EQ(size, want.size()) << round << " " << i << " " << d;
        EXPECT_EQ(body, want.substr(0, kept)) << round << " " << i << " " << d;
        EXPECT_EQ(trunc, was_cut || want.size() > o.max_body_bytes) << round;
      }
    }
    EXPECT_EQ(h.stats().gaps_skipped_in_body, 1u) << round;
    EXPECT_EQ(h.stats().resyncs, 0u) << round;
    EXPECT_EQ(h.stats().parse_errors, 0u) << round;
    EXPECT_EQ(h.stats().orphan_responses, 0u) << round;
  }
}

// The connection's budget: pipelined requests waiting for responses hold at most
// max_connection_bytes (headers and bodies). A body is kept only within what is left, kept
// bodies are given up for a new head, and when the heads alone would go over, the request
// stream is cut. Nothing is reported before its response.
TEST(Http1Test, ConnectionBudgetCutsTheConnection) {
  Http1Options o;
  o.max_connection_bytes = 3000;
  Harness h(o);
  // A body first: only what the budget has left is kept.
  h.Req("POST /body HTTP/1.1\r\nContent-Length: 2000\r\n\r\n" + std::string(2000, 'b'));
  const std::string pad(900, 'p');
  std::string reqs;
  for (int i = 0; i < 6; ++i)
    reqs += "GET /r" + std::to_string(i) + " HTTP/1.1\r\nHost: a\r\nX-Pad: " + pad + "\r\n\r\n";
  h.Req(reqs);
  EXPECT_TRUE(h.got.empty());
  // ~915 counted bytes each: the body is given up, then three heads fit with /body's.
  EXPECT_EQ(h.stats().budget_bodies_cut, 1u);
  EXPECT_EQ(h.stats().budget_drops, 1u);
  EXPECT_EQ(h.stats().connections_cut, 1u);
  EXPECT_GT(h.stats().cut_bytes, 0u);
  h.Resp(Ok("1") + Ok("2"));
  h.Close();
  ASSERT_EQ(h.got.size(), 4u);
  EXPECT_EQ(h.got[0].ex.request.target, "/body");
  EXPECT_EQ(h.got[0].ex.request.body_size, 2000u);
  EXPECT_TRUE(h.got[0].ex.request.body_truncated);
  EXPECT_TRUE(h.got[0].ex.request.body.empty());
  EXPECT_EQ(h.got[0].ex.response->body, "1");
  EXPECT_EQ(h.got[1].ex.request.target, "/r0");
  EXPECT_EQ(h.got[1].ex.response->body, "2");
  EXPECT_EQ(h.got[2].event, ExchangeEvent::kNoResponse);
  EXPECT_EQ(h.got[3].ex.request.target, "/r2");
}

TEST(Http1Test, MaxPendingRequestsOverflow) {
  Http1Options o;
  o.max_pending_requests = 2;
  Harness h(o);
  h.Req(Get("/1") + Get("/2") + Get("/3"));
  EXPECT_TRUE(h.got.empty());
  EXPECT_EQ(h.stats().dropped_requests, 1u);
  EXPECT_EQ(h.stats().connections_cut, 1u);
  h.Resp(Ok("r1") + Ok("r2") + Ok("r3"));
  ASSERT_EQ(h.got.size(), 2u);
  EXPECT_EQ(h.got[0].ex.request.target, "/1");
  EXPECT_EQ(h.got[0].ex.response->body, "r1");
  EXPECT_EQ(h.got[1].ex.request.target, "/2");
  EXPECT_EQ(h.got[1].ex.response->body, "r2");
  EXPECT_EQ(h.stats().orphan_responses, 1u);
  h.Close();
  EXPECT_EQ(h.got.size(), 2u);
}

TEST(Http1Test, OrphanResponseWithoutRequests) {
  Harness h;
  h.Resp(Ok("who"));
  h.Close();
  EXPECT_TRUE(h.got.empty());
  EXPECT_EQ(h.stats().orphan_responses, 1u);
  EXPECT_EQ(h.stats().responses, 1u);
}

// The server reads nothing after a request that asks for the close (here HTTP/1.0 without
// keep-alive): what follows is counted, never audited (nginx and Go close after answering).
TEST(Http1Test, ConnectionCloseRequestsEndTheRequestStream) {
  Harness h;
  const std::string after = "GET /b HTTP/1.1\r\nConnection: close\r\n\r\n" + Get("/c");
  h.Req("GET /a HTTP/1.0\r\n\r\n" + after);
  h.Resp("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na");
  h.Close();
  ASSERT_EQ(h.got.size(), 1u);
  EXPECT_EQ(h.got[0].ex.request.version_minor, 0);
  EXPECT_EQ(h.got[0].ex.response->status, 200);
  EXPECT_EQ(h.stats().bytes_after_close, after.size());
  EXPECT_EQ(h.stats().requests, 1u);
  EXPECT_EQ(h.stats().parse_errors, 0u);
}

TEST(Http1Test, RandomGarbageAndSplitsNeverCrash) {
  const Conversation c;
  std::mt19937 rng(12345);
  for (int round = 0; round < 300; ++round) {
    Http1Options o;
    o.max_body_bytes = 16;
    o.max_header_bytes = 200 + rng() % 200;
    o.max_pending_requests = 1 + rng() % 3;
    Harness h(o, rng() % 2 == 0);
    std::string req = c.requests + c.requests;
    std::string resp = c.responses + c.responses;
    for (int m = 0; m < 5; ++m) {
      req[rng() % req.size()] = static_cast<char>(rng());
      resp[rng() % resp.size()] = static_cast<char>(rng());
    }
    size_t i = 0, j = 0;
    while (i < req.size() || j < resp.size()) {
      const int what = static_cast<int>(rng() % 10);
      if (what == 0) {
        h.conn().OnGap(rng() % 2 ? kReq : kResp, rng() % 50, i + j);
        continue;
      }
      if (what < 6 && i < req.size()) {
        const size_t n = std::min<size_t>(1 + rng() % 40, req.size() - i);
        h.Req(std::string_view(req).substr(i, n), i + j);
        i += n;
      } else if (j < resp.size()) {
        const size_t n = std::min<size_t>(1 + rng() % 40, resp.size() - j);
        h.Resp(std::string_view(resp).substr(j, n), i + j);
        j += n;
      }
    }
    h.Close();
    const Http1Stats& s = h.stats();
    // Every queued request reported once, but those the server never read.
    ASSERT_EQ(h.got.size(), s.requests - s.requests_after_close) << round;
    for (const Got& g : h.got) {
      ASSERT_LE(g.ex.request.body.size(), 16u);
      ASSERT_EQ(g.event == ExchangeEvent::kResponseComplete, g.ex.response.has_value());
    }
  }
}

}  // namespace
}  // namespace mat::http

// ---- stage reports: ResponseStarted, RequestReceived, timeouts ----
namespace stage_reports {

struct Report {
  mat::http::ExchangeEvent event;
  std::string target;
  uint64_t sequence;
  bool has_response;
};

TEST(Http1Stages, LongRunningResponseIsReportedWhenItsHeadersAreComplete) {
  std::vector<Report> seen;
  mat::http::Http1Options options;
  options.report_started = [](const mat::http::HttpRequest& r) {
    return r.target.find("watch=true") != std::string::npos;
  };
  mat::http::Http1Connection c(
      options, [&](mat::http::HttpExchange&& e, mat::http::ExchangeEvent ev) {
        seen.push_back({ev, e.request.target, e.sequence, e.response.has_value()});
      });
  c.MarkStreamStart(mat::http::Direction::kRequest);
  c.MarkStreamStart(mat::http::Direction::kResponse);
  c.OnData(mat::http::Direction::kRequest, "GET /a HTTP/1.1\r\n\r\n", 1);
  c.OnData(mat::http::Direction::kResponse, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 2);
  c.OnData(mat::http::Direction::kRequest, "GET /api/v1/pods?watch=true HTTP/1.1\r\n\r\n", 3);
  c.OnData(mat::http::Direction::kResponse,
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nevent\r\n", 4);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].event, mat::http::ExchangeEvent::kResponseComplete);
  EXPECT_EQ(seen[0].sequence, 1u);
  EXPECT_EQ(seen[1].event, mat::http::ExchangeEvent::kResponseStarted);
  EXPECT_EQ(seen[1].target, "/api/v1/pods?watch=true");
  EXPECT_EQ(seen[1].sequence, 2u);
  EXPECT_TRUE(seen[1].has_response);
  c.OnClose(5);  // the watch never ended: reported once more, with the same sequence
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[2].sequence, 2u);
}

TEST(Http1Stages, RequestReceivedAndTimeoutReports) {
  std::vector<Report> seen;
  mat::http::Http1Options options;
  options.report_received = true;
  mat::http::Http1Connection c(
      options, [&](mat::http::HttpExchange&& e, mat::http::ExchangeEvent ev) {
        seen.push_back({ev, e.request.target, e.sequence, e.response.has_value()});
      });
  c.OnData(mat::http::Direction::kRequest, "POST /slow HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
           100);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].event, mat::http::ExchangeEvent::kRequestReceived);
  EXPECT_EQ(seen[0].sequence, 1u);
  c.Expire(100);  // completed at 100: not before 100
  EXPECT_EQ(seen.size(), 1u);
  c.Expire(101);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].event, mat::http::ExchangeEvent::kRequestTimedOut);
  c.Expire(500);  // once only
  EXPECT_EQ(seen.size(), 2u);
  c.OnData(mat::http::Direction::kResponse, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
           600);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[2].event, mat::http::ExchangeEvent::kResponseComplete);
  EXPECT_EQ(seen[2].sequence, 1u);
}

}  // namespace stage_reports
