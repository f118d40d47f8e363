// H1Parser on its own (no pairing): framing, limits, errors, and that the way the bytes are
// split never changes the messages found.
#include "http/h1_parser.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "http/http1.h"

namespace mat::http {
namespace {

struct Msg {
  std::string method, target;
  int status = 0, major = 0, minor = 0;
  std::vector<std::pair<std::string, std::string>> fields;
  std::string body;
  size_t end = 0;  // stream offset just past the message
  bool upgrade = false;
  bool operator==(const Msg&) const = default;
};

enum class End { kIdle, kPartial, kError };

struct Result {
  std::vector<Msg> msgs;
  End end = End::kIdle;
  bool operator==(const Result&) const = default;
};

std::string Esc(std::string_view s) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '\r') {
      o += "\\r";
    } else if (c == '\n') {
      o += "\\n";
    } else if (c < 0x20 || c >= 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      o += b;
    } else {
      o += static_cast<char>(c);
    }
  }
  return o;
}

std::ostream& operator<<(std::ostream& o, const Result& r) {
  for (const Msg& m : r.msgs) {
    o << "[" << m.method << " " << Esc(m.target) << " " << m.status << " " << m.major << "."
      << m.minor << " {";
    for (const auto& [k, v] : m.fields) o << Esc(k) << "=" << Esc(v) << ";";
    o << "} body(" << m.body.size() << ") end@" << m.end << (m.upgrade ? " upgrade" : "") << "]";
  }
  return o << (r.end == End::kIdle ? " idle" : r.end == End::kPartial ? " partial" : " ERROR");
}

// Drives one parser the way Http1Connection does: Reset after each message, stop at an error,
// Finish at the end. `no_body` decides the verdict of a head (responses to HEAD, 204, ...).
class Driver final : public H1Listener {
 public:
  Driver(H1Parser::Kind kind, size_t max_head) : parser_(kind, max_head) {}
  bool (*no_body)(const H1Head&) = nullptr;

  void Feed(std::string_view bytes) {
    size_t pos = 0;
    while (pos < bytes.size() && r_.end != End::kError) {
      done_ = false;
      const size_t used = parser_.Execute(*this, bytes.data() + pos, bytes.size() - pos);
      ASSERT_LE(used, bytes.size() - pos);
      pos += used;
      if (done_) {
        cur_.end = base_ + pos;
        cur_.upgrade = parser_.upgrade();
        r_.msgs.push_back(cur_);
        parser_.Reset();
      } else if (parser_.failed() || pos < bytes.size()) {
        ASSERT_TRUE(parser_.failed());
        r_.end = End::kError;
      }
    }
    base_ += bytes.size();
  }

  Result Finish() {
    if (r_.end == End::kError) return r_;
    if (in_message_) {
      done_ = false;
      parser_.Finish(*this);
      if (done_) {
        cur_.end = base_;
        r_.msgs.push_back(cur_);
        parser_.Reset();
      }
    }
    r_.end = in_message_ ? End::kPartial : End::kIdle;
    return r_;
  }

  H1Parser& parser() { return parser_; }

 private:
  void OnMessageBegin() override {
    EXPECT_FALSE(in_message_);
    in_message_ = true;
    cur_ = Msg{};
  }
  H1HeadVerdict OnHead(const H1Head& h) override {
    EXPECT_TRUE(in_message_);
    cur_.method = h.method;
    cur_.target = h.target;
    cur_.status = h.status;
    cur_.major = h.version_major;
    cur_.minor = h.version_minor;
    for (const auto& [k, v] : h.fields) cur_.fields.emplace_back(k, v);
    return no_body != nullptr && no_body(h) ? H1HeadVerdict::kNoBody : H1HeadVerdict::kBody;
  }
  void OnBody(const char* at, size_t n) override {
    EXPECT_TRUE(in_message_);
    EXPECT_GT(n, 0u);
    cur_.body.append(at, n);
  }
  void OnMessageComplete() override {
    EXPECT_TRUE(in_message_);
    in_message_ = false;
    done_ = true;
  }

  H1Parser parser_;
  Result r_;
  Msg cur_;
  bool in_message_ = false;
  bool done_ = false;
  size_t base_ = 0;
};

constexpr auto kReq = H1Parser::Kind::kRequest;
constexpr auto kResp = H1Parser::Kind::kResponse;
constexpr size_t kMaxHead = 80 * 1024;

// The bytes in pieces ending at `cuts` (ascending offsets).
Result Parse(H1Parser::Kind kind, std::string_view bytes, const std::vector<size_t>& cuts = {},
             size_t max_head = kMaxHead, bool (*no_body)(const H1Head&) = nullptr) {
  Driver d(kind, max_head);
  d.no_body = no_body;
  size_t prev = 0;
  for (size_t c : cuts) {
    d.Feed(bytes.substr(prev, c - prev));
    prev = c;
  }
  d.Feed(bytes.substr(prev));
  return d.Finish();
}

// Every split in two pieces, in three pieces around the middle, and one byte at a time, gives
// the messages of the whole.
void ExpectSplitInvariant(H1Parser::Kind kind, const std::string& bytes, size_t max_head = kMaxHead,
                          bool (*no_body)(const H1Head&) = nullptr) {
  const Result whole = Parse(kind, bytes, {}, max_head, no_body);
  for (size_t i = 1; i < bytes.size(); ++i) {
    ASSERT_EQ(Parse(kind, bytes, {i}, max_head, no_body), whole) << "cut at " << i;
    const size_t j = i + (bytes.size() - i) / 2;
    if (j > i && j < bytes.size()) {
      ASSERT_EQ(Parse(kind, bytes, {i, j}, max_head, no_body), whole) << "cuts " << i << "," << j;
    }
  }
  std::vector<size_t> all;
  for (size_t i = 1; i < bytes.size(); ++i) all.push_back(i);
  ASSERT_EQ(Parse(kind, bytes, all, max_head, no_body), whole) << "byte by byte";
}

// Cuts every `step` bytes (for inputs too long to try every split).
std::vector<size_t> Every(size_t step, size_t size) {
  std::vector<size_t> cuts;
  for (size_t i = step; i < size; i += step) cuts.push_back(i);
  return cuts;
}

std::string Chunk(std::string_view data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return std::string(size) + std::string(data) + "\r\n";
}

const std::string kGet = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";

// ---- framing ----

TEST(H1ParserTest, RequestsWithEveryFraming) {
  const std::string bytes =
      "GET /a?x=1 HTTP/1.1\r\nHost: h\r\nX:  v w \t\r\n\r\n"
      "POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
      "PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" +
      Chunk("hel") + Chunk("lo!") + "0\r\n\r\n" + "DELETE /d HTTP/1.0\r\nContent-Length: 0\r\n\r\n";
  const Result r = Parse(kReq, bytes);
  ASSERT_EQ(r.end, End::kIdle) << r;
  ASSERT_EQ(r.msgs.size(), 4u) << r;
  EXPECT_EQ(r.msgs[0].method, "GET");
  EXPECT_EQ(r.msgs[0].target, "/a?x=1");
  EXPECT_EQ(r.msgs[0].fields,
            (std::vector<std::pair<std::string, std::string>>{{"Host", "h"}, {"X", "v w"}}));
  EXPECT_EQ(r.msgs[1].body, "hello");
  EXPECT_EQ(r.msgs[2].method, "PUT");
  EXPECT_EQ(r.msgs[2].body, "hello!");
  EXPECT_EQ(r.msgs[3].major, 1);
  EXPECT_EQ(r.msgs[3].minor, 0);
  EXPECT_EQ(r.msgs[3].end, bytes.size());
  ExpectSplitInvariant(kReq, bytes);
}

TEST(H1ParserTest, RequestWithoutLengthHasNoBody) {
  const Result r = Parse(kReq, "POST /p HTTP/1.1\r\n\r\n" + kGet);
  ASSERT_EQ(r.msgs.size(), 2u) << r;
  EXPECT_EQ(r.msgs[0].body, "");
  EXPECT_EQ(r.msgs[1].target, "/b");
}

TEST(H1ParserTest, ResponsesWithEveryFraming) {
  const std::string bytes =
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
      "HTTP/1.1 201 Created\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" +
      Chunk("abc") + "0\r\nTrailer: 1\r\n\r\n" +
      "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"
      "HTTP/1.1 500\r\n\r\nuntil the end";
  auto no_body = [](const H1Head& h) { return h.status == 204; };
  const Result r = Parse(kResp, bytes, {}, kMaxHead, no_body);
  ASSERT_EQ(r.end, End::kIdle) << r;
  ASSERT_EQ(r.msgs.size(), 4u) << r;
  EXPECT_EQ(r.msgs[0].status, 200);
  EXPECT_EQ(r.msgs[0].body, "ok");
  EXPECT_EQ(r.msgs[1].body, "abc");
  EXPECT_EQ(r.msgs[1].fields.size(), 1u);  // the trailer is not a field
  EXPECT_EQ(r.msgs[2].status, 204);
  EXPECT_EQ(r.msgs[2].body, "");
  EXPECT_EQ(r.msgs[3].status, 500);
  EXPECT_EQ(r.msgs[3].body, "until the end");
  ExpectSplitInvariant(kResp, bytes, kMaxHead, no_body);
}

TEST(H1ParserTest, ReadUntilCloseOnlyCompletesAtFinish) {
  Driver d(kResp, kMaxHead);
  d.Feed("HTTP/1.0 200 OK\r\n\r\nabc");
  d.Feed("def");
  const Result r = d.Finish();
  ASSERT_EQ(r.msgs.size(), 1u) << r;
  EXPECT_EQ(r.msgs[0].body, "abcdef");
  // A response with a non-chunked Transfer-Encoding is read until the end too.
  const Result te = Parse(kResp, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz");
  ASSERT_EQ(te.msgs.size(), 1u) << te;
  EXPECT_EQ(te.msgs[0].body, "zz");
}

TEST(H1ParserTest, FinishLeavesOtherMessagesUnfinished) {
  EXPECT_EQ(Parse(kResp, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab").end, End::kPartial);
  EXPECT_EQ(Parse(kReq, "GET / HTTP/1.1\r\nHost: h\r\n").end, End::kPartial);
  EXPECT_EQ(Parse(kReq, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab").end,
            End::kPartial);
  EXPECT_EQ(Parse(kReq, "\r\n\r\n").end, End::kIdle);
}

TEST(H1ParserTest, BareLineFeedsAndLeadingEmptyLines) {
  const std::string bytes =
      "\r\n\nGET /a HTTP/1.1\nHost: h\n\n"
      "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\nhello\n0\n\n" +
      kGet;
  const Result r = Parse(kReq, bytes);
  ASSERT_EQ(r.end, End::kIdle) << r;
  ASSERT_EQ(r.msgs.size(), 3u) << r;
  EXPECT_EQ(r.msgs[1].body, "hello");
  ExpectSplitInvariant(kReq, bytes);
}

TEST(H1ParserTest, ChunkExtensionsAndWhitespace) {
  const std::string bytes =
      "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value;q=\"x\"\r\nhello\r\n"
      "A \t;ext\r\n0123456789\r\n"
      "0000000003\r\nabc\r\n"
      "0;last\r\nX-Trailer: t\r\n\r\n" +
      kGet;
  const Result r = Parse(kReq, bytes);
  ASSERT_EQ(r.msgs.size(), 2u) << r;
  EXPECT_EQ(r.msgs[0].body, "hello0123456789abc");
  ExpectSplitInvariant(kReq, bytes);
}

TEST(H1ParserTest, ObsFoldJoinsValues) {
  const std::string bytes = "GET /a HTTP/1.1\r\nX: a\r\n b\r\n\t c \r\nY: d\r\n   \r\n\r\n";
  const Result r = Parse(kReq, bytes);
  ASSERT_EQ(r.msgs.size(), 1u) << r;
  EXPECT_EQ(r.msgs[0].fields,
            (std::vector<std::pair<std::string, std::string>>{{"X", "a b c"}, {"Y", "d"}}));
  ExpectSplitInvariant(kReq, bytes);
}

TEST(H1ParserTest, NoBodyVerdictAndUpgrade) {
  // A HEAD-like verdict skips a Content-Length body.
  auto always = [](const H1Head&) { return true; };
  const Result head =
      Parse(kResp, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", {},
            kMaxHead, always);
  ASSERT_EQ(head.msgs.size(), 2u) << head;
  EXPECT_EQ(head.msgs[0].end, 38u);
  // Upgrade requests complete at the end of their head (or of their body) and say so.
  const Result ws = Parse(kReq,
                          "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, "
                          "Upgrade\r\n\r\n");
  ASSERT_EQ(ws.msgs.size(), 1u) << ws;
  EXPECT_TRUE(ws.msgs[0].upgrade);
  const Result body = Parse(kReq,
                            "POST /u HTTP/1.1\r\nUpgrade: h2c\r\nConnection: upgrade\r\n"
                            "Content-Length: 3\r\n\r\nabc");
  ASSERT_EQ(body.msgs.size(), 1u) << body;
  EXPECT_TRUE(body.msgs[0].upgrade);
  EXPECT_EQ(body.msgs[0].body, "abc");
  const Result connect = Parse(kReq, "CONNECT h:443 HTTP/1.1\r\nContent-Length: 3\r\n\r\n");
  ASSERT_EQ(connect.msgs.size(), 1u) << connect;
  EXPECT_TRUE(connect.msgs[0].upgrade);
  EXPECT_EQ(connect.msgs[0].body, "");  // CONNECT has no body whatever its headers say
  const Result no = Parse(kReq, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n");
  ASSERT_EQ(no.msgs.size(), 1u) << no;
  EXPECT_FALSE(no.msgs[0].upgrade);
}

// ---- errors ----

TEST(H1ParserTest, FramingErrors) {
  for (const char* head : {
           "POST /p HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
           "POST /p HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\n",
           "POST /p HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
           "POST /p HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
           "POST /p HTTP/1.1\r\nContent-Length: 5 5\r\n\r\n",
           "POST /p HTTP/1.1\r\nContent-Length:\r\nContent-Length: 5\r\n\r\n",
           "POST /p HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
           "POST /p HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n",
           "POST /p HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
           "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
       }) {
    EXPECT_EQ(Parse(kReq, std::string(head) + "hello" + kGet).end, End::kError) << head;
  }
  EXPECT_EQ(Parse(kResp, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx").end,
            End::kError);
  EXPECT_EQ(
      Parse(kResp, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n")
          .end,
      End::kError);
}

// Framings Go's net/http reads and serves (so failing would hide the request): the same
// Content-Length repeated, and Transfer-Encoding: chunked with a Content-Length (the chunked
// coding decides).
TEST(H1ParserTest, FramingsGoServes) {
  for (const char* head : {
           "POST /p HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
           "POST /p HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5\r\nhello\r\n0\r\n\r\n",
           "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
           "5\r\nhello\r\n0\r\n\r\n",
           "POST /p HTTP/1.1\r\nContent-Length:  \r\nTransfer-Encoding: chunked\r\n\r\n"
           "5\r\nhello\r\n0\r\n\r\n",
           // With Transfer-Encoding, Go drops every Content-Length unread, whatever it says.
           "POST /p HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n"
           "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
           "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: -1\r\n\r\n"
           "5\r\nhello\r\n0\r\n\r\n",
           // A line with an empty field name: Go skips it and its continuation lines.
           "POST /p HTTP/1.1\r\n: x\r\n  y\r\nContent-Length: 5\r\n:\r\n\r\nhello",
       }) {
    const std::string bytes = std::string(head) + kGet;
    const Result r = Parse(kReq, bytes);
    ASSERT_EQ(r.end, End::kIdle) << head << r;
    ASSERT_EQ(r.msgs.size(), 2u) << head << r;
    EXPECT_EQ(r.msgs[0].body, "hello") << head;
    ExpectSplitInvariant(kReq, bytes);
  }
  // An empty Content-Length: none (Go serves the request without a body).
  const std::string bytes = "DELETE /p HTTP/1.1\r\nContent-Length: \r\n\r\n" + kGet;
  const Result r = Parse(kReq, bytes);
  ASSERT_EQ(r.end, End::kIdle) << r;
  ASSERT_EQ(r.msgs.size(), 2u) << r;
  EXPECT_EQ(r.msgs[0].body, "");
  EXPECT_EQ(Parse(kResp, "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n").end, End::kError);
}

TEST(H1ParserTest, HeadErrors) {
  for (const char* bytes : {
           "GET /a HTTP/1.1 \r\n\r\n",               // trailing space
           "G(T /a HTTP/1.1\r\n\r\n",                // a method that is not a token
           "POST /a\r\n\r\n",                        // HTTP/0.9 other than GET
           "GET /a HTTP/11\r\n\r\n",                 // version
           "GET /a HXTP/1.1\r\n\r\n",                // version
           "GET /a\x7f HTTP/1.1\r\n\r\n",            // control byte in the target
           "GET /a HTTP/1.1\r\nX\x01: 1\r\n\r\n",    // a control byte in the name
           "GET /a HTTP/1.1\r\nX\x7f: 1\r\n\r\n",    // DEL in the name
           "GET /a HTTP/1.1\r\nX : 1\r\n\r\n",       // space before the colon
           "GET /a HTTP/1.1\r\nX 1\r\n\r\n",         // no colon, a space
           "GET /a HTTP/1.1\r\n X: 1\r\n\r\n",       // fold without a field
           "GET /a HTTP/1.1\r\nX: a\rb\r\n\r\n",     // CR in a value
           "GET /a HTTP/1.1\r\n\r\r\nX: 1\r\n\r\n",  // CR CR LF is no end of the head
       }) {
    EXPECT_EQ(Parse(kReq, std::string(bytes) + kGet).end, End::kError) << Esc(bytes);
  }
  static constexpr char kNul[] = "GET /a HTTP/1.1\r\nX: a\0b\r\n\r\n";
  EXPECT_EQ(Parse(kReq, std::string(kNul, sizeof kNul - 1)).end, End::kError);
  for (const char* bytes : {
           "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 200OK\r\n\r\n",
           "HTTP/1.1  200 OK\r\n\r\n", "HTTPS/1.1 200 OK\r\n\r\n", "XTTP/1.1 200 OK\r\n\r\n",
           "HTTP/1.1 200 OK\r\n: 1\r\n\r\n",        // empty name (skipped in requests only)
           "HTTP/1.1 200 OK\r\nX(: 1\r\n\r\n",      // not a token (skipped in requests only)
           "HTTP/1.1 200 OK\r\nX\r\n\r\n",          // no colon (skipped in requests only)
           "HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n",  // a control byte (allowed in requests)
       }) {
    EXPECT_EQ(Parse(kResp, bytes).end, End::kError) << Esc(bytes);
  }
}

// Any token is a method, as Go's net/http reads it (nginx answers 400 to lower-case ones and
// closes: the response decides, see http1.h); "GET target" alone is HTTP/0.9, which nginx
// serves, and ends at its line.
TEST(H1ParserTest, TokenMethodsAndHttp09) {
  for (const char* method : {"get", "FOO", "M-SEARCH", "x!#$%&'*+.^_`|~"}) {
    const Result r = Parse(kReq, std::string(method) + " /a HTTP/1.1\r\n\r\n");
    ASSERT_EQ(r.end, End::kIdle) << method;
    ASSERT_EQ(r.msgs.size(), 1u) << method;
    EXPECT_EQ(r.msgs[0].method, method);
  }
  for (const std::vector<size_t>& cuts : {std::vector<size_t>{}, {3}, {5, 6}, {7}}) {
    const Result r = Parse(kReq, "GET /a\r\n", cuts);
    ASSERT_EQ(r.end, End::kIdle);
    ASSERT_EQ(r.msgs.size(), 1u);
    EXPECT_EQ(r.msgs[0].target, "/a");
    EXPECT_EQ(r.msgs[0].major, 0);
    EXPECT_EQ(r.msgs[0].minor, 9);
    EXPECT_EQ(r.msgs[0].end, 8u);
  }
}

TEST(H1ParserTest, ChunkErrors) {
  const std::string head = "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const char* body : {
           "\r\nhello\r\n0\r\n\r\n",                   // no size
           " 5\r\nhello\r\n0\r\n\r\n",                 // leading space
           "0x5\r\nhello\r\n0\r\n\r\n",                // not hex
           "-5\r\nhello\r\n0\r\n\r\n",                 // negative
           "5\r\nhelloXY0\r\n\r\n",                    // no CRLF after the data
           "5\r\nhello\r\r0\r\n\r\n",                  // CR CR
           "10000000000000000\r\nhello\r\n0\r\n\r\n",  // over 2^64
           "1000000000000000\r\n",                     // 2^60
       }) {
    EXPECT_EQ(Parse(kReq, head + body + kGet).end, End::kError) << Esc(body);
  }
  // Up to 2^60 - 1 is a size (it then waits for the data).
  EXPECT_EQ(Parse(kReq, head + "fffffffffffffff\r\nabc").end, End::kPartial);
}

TEST(H1ParserTest, ErrorPositionIsInsideTheInput) {
  // After an error Execute returns where parsing could not go on; the driver resynchronises
  // from there, so it must lie inside what was given.
  H1Parser p(kReq, kMaxHead);
  struct Null final : H1Listener {
    void OnMessageBegin() override {}
    H1HeadVerdict OnHead(const H1Head&) override { return H1HeadVerdict::kBody; }
    void OnBody(const char*, size_t) override {}
    void OnMessageComplete() override {}
  } null;
  const std::string bad = "GET /a HTTP/1.1\r\nX : 1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
  const size_t used = p.Execute(null, bad.data(), bad.size());
  EXPECT_TRUE(p.failed());
  EXPECT_LT(used, bad.size());
  // Nothing more is taken until Reset.
  EXPECT_EQ(p.Execute(null, bad.data(), bad.size()), 0u);
  p.Reset();
  EXPECT_FALSE(p.failed());
  EXPECT_EQ(p.Execute(null, kGet.data(), kGet.size()), kGet.size());
  EXPECT_TRUE(p.message_done());
}

// ---- limits ----

TEST(H1ParserTest, HeadLimitCountsNamesValuesAndTarget) {
  // Counted: target, names, values (trimmed), 4 bytes a field; not the method or version.
  const std::string bytes = "GET /abc HTTP/1.1\r\nName: value\r\n\r\n";  // 4 + 4 + 5 + 4 = 17
  EXPECT_EQ(Parse(kReq, bytes, {}, 17).end, End::kIdle);
  EXPECT_EQ(Parse(kReq, bytes, {}, 16).end, End::kError);
  const std::string resp = "HTTP/1.1 200 Fine\r\nA: b\r\n\r\n";  // 4 + 1 + 1 + 4 = 10
  EXPECT_EQ(Parse(kResp, resp, {}, 10).msgs.size(), 1u);
  EXPECT_EQ(Parse(kResp, resp, {}, 9).end, End::kError);
}

TEST(H1ParserTest, UnfinishedHeadIsBounded) {
  // A head that never ends fails once it is longer than the limit and its slack, whether it
  // came in one piece or many (the parser holds at most that much of it).
  const std::string endless = "GET /a HTTP/1.1\r\nX: " + std::string(200 * 1024, 'a');
  EXPECT_EQ(Parse(kReq, endless).end, End::kError);
  EXPECT_EQ(Parse(kReq, endless, Every(1000, endless.size())).end, End::kError);
  EXPECT_EQ(Parse(kReq, endless, Every(1000, endless.size()), 1024).end, End::kError);
  const std::string lines = "GET /a HTTP/1.1\r\n" + [] {
    std::string s;
    for (int i = 0; i < 40000; ++i) s += "X: y\r\n";
    return s;
  }();
  EXPECT_EQ(Parse(kReq, lines, Every(4096, lines.size())).end, End::kError);
}

TEST(H1ParserTest, ChunkAndTrailerLinesAreBounded) {
  const std::string head = "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string ok = head + "5;" + std::string(4000, 'e') + "\r\nhello\r\n0\r\n\r\n" + kGet;
  EXPECT_EQ(Parse(kReq, ok).msgs.size(), 2u);
  EXPECT_EQ(Parse(kReq, ok, Every(1000, ok.size())).msgs.size(), 2u);
  const std::string endless = head + "5;" + std::string(100 * 1024, 'e');
  EXPECT_EQ(Parse(kReq, endless, Every(1000, endless.size())).end, End::kError);
  EXPECT_EQ(Parse(kReq, endless).end, End::kError);
  const std::string trailer = head + "0\r\nT: " + std::string(100 * 1024, 't');
  EXPECT_EQ(Parse(kReq, trailer, Every(1000, trailer.size())).end, End::kError);
}

// ---- split invariance ----

// A chunk-size line over the 4096-byte limit was accepted when it came in one piece and
// rejected when it was split: the same connection gave different requests depending on how
// the sender's writes fell.
TEST(H1ParserTest, LongChunkLineDoesNotDependOnTheSplit) {
  const std::string head = "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const std::string& bytes : {
           head + "5;" + std::string(5000, 'e') + "\r\nhello\r\n0\r\n\r\n" + kGet,
           head + "5\r\nhello\r\n0\r\nT: " + std::string(5000, 't') + "\r\n\r\n" + kGet,
       }) {
    const Result whole = Parse(kReq, bytes);
    for (size_t step : {1000, 4096, 4097}) {
      EXPECT_EQ(Parse(kReq, bytes, Every(step, bytes.size())), whole) << "every " << step;
    }
    EXPECT_EQ(whole.end, End::kError) << whole;
  }
}

// Likewise a header block longer than the limit and its slack (here: padded with whitespace,
// which the counted limit does not see) was accepted in one piece and rejected in several.
TEST(H1ParserTest, LongHeadBlockDoesNotDependOnTheSplit) {
  const size_t max_head = 1024;
  const std::string padded = "GET /a HTTP/1.1\r\nX:" + std::string(20000, ' ') + "a\r\n\r\n" + kGet;
  std::string folded = "GET /a HTTP/1.1\r\nX: a\r\n";
  for (int i = 0; i < 5000; ++i) folded += " \t \r\n";
  folded += "\r\n" + kGet;
  for (const std::string& bytes : {padded, folded}) {
    const Result whole = Parse(kReq, bytes, {}, max_head);
    for (size_t step : {100, 1000, 4096}) {
      EXPECT_EQ(Parse(kReq, bytes, Every(step, bytes.size()), max_head), whole) << "every " << step;
    }
    EXPECT_EQ(whole.end, End::kError) << whole;
  }
  // A block just under the cap (the limit plus its 8 KiB slack) is read either way.
  const std::string under =
      "GET /a HTTP/1.1\r\nX:" + std::string(max_head + 8000, ' ') + "a\r\n\r\n";
  EXPECT_EQ(Parse(kReq, under, {}, max_head).msgs.size(), 1u);
  EXPECT_EQ(Parse(kReq, under, Every(100, under.size()), max_head).msgs.size(), 1u);
}

TEST(H1ParserTest, SplitInvarianceOverACorpus) {
  const std::vector<std::string> requests = {
      "GET /a HTTP/1.1\r\nHost: h\r\n\r\n" + kGet,
      "POST /p HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world" + kGet,
      "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + Chunk("a") + Chunk("bcdefgh") +
          "0\r\nT: 1\r\n\r\n" + kGet,
      "\r\n\nGET /a HTTP/1.1\nX: a\n b\n\n" + kGet,
      "GET /a HTTP/1.1\r\nX : 1\r\n\r\n" + kGet,       // error in the head
      "GET /a HTTP/1.1\r\nX(: 1\r\nY\r\n\r\n" + kGet,  // lines skipped
      "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXY" + kGet,  // in data
      "GET /ws HTTP/1.1\r\nUpgrade: ws\r\nConnection: upgrade\r\n\r\n" + kGet,
  };
  for (const std::string& r : requests) ExpectSplitInvariant(kReq, r);
  const std::vector<std::string> responses = {
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
          Chunk("xyz") + "0\r\n\r\nHTTP/1.0 200 OK\r\n\r\nthe rest",
      "HTTP/1.1 200\nContent-Length: 0\n\nHTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nx",
  };
  auto no_body = [](const H1Head& h) { return h.status < 200 || h.status == 204; };
  for (const std::string& r : responses) ExpectSplitInvariant(kResp, r, kMaxHead, no_body);
}

// ---- accepted as http-parser 2.9 and nginx accept them ----

// Several spaces between the parts of a request line: http-parser and nginx read the request
// (nginx serves it), so it must be audited, not dropped as malformed.
TEST(H1ParserTest, RequestLineWithSeveralSpaces) {
  const std::string bytes = "GET  /a   HTTP/1.1\r\nHost: h\r\n\r\n" + kGet;
  const Result r = Parse(kReq, bytes);
  ASSERT_EQ(r.end, End::kIdle) << r;
  ASSERT_EQ(r.msgs.size(), 2u) << r;
  EXPECT_EQ(r.msgs[0].method, "GET");
  EXPECT_EQ(r.msgs[0].target, "/a");
  EXPECT_EQ(r.msgs[0].minor, 1);
  ExpectSplitInvariant(kReq, bytes);
}

// Header lines nginx serves a request with: a name with bytes other than a token's (nginx
// ignores the line) and a value with control bytes or DEL (nginx keeps it). Go answers them
// 400. The request is read, the odd name's line skipped.
TEST(H1ParserTest, RequestHeaderLinesNginxServes) {
  const std::string bytes =
      std::string("POST /p HTTP/1.1\r\nX@Y: 1\r\nContent(Length): 9\r\n") +
      "X-\xff: 2\r\nUser-Agent: a\x01z\x7f\r\r\nX: \x1b[0m\r\nNo-colon\r\r\r\n"
      "Content-\r\n  Length: 3\r\n" +
      "Content-Length: 5\r\n\r\nhello" + kGet;
  const Result r = Parse(kReq, bytes);
  ASSERT_EQ(r.end, End::kIdle) << r;
  ASSERT_EQ(r.msgs.size(), 2u) << r;
  EXPECT_EQ(r.msgs[0].body, "hello");
  ASSERT_EQ(r.msgs[0].fields.size(), 3u) << r;
  EXPECT_EQ(r.msgs[0].fields[0].second, "a\x01z\x7f");
  ExpectSplitInvariant(kReq, bytes);
}

// Request versions nginx serves: HTTP/1.10, HTTP/1.00, HTTP/1.999 (Go answers 400).
TEST(H1ParserTest, RequestVersionsNginxServes) {
  for (const auto& [version, minor] : std::vector<std::pair<std::string, int>>{
           {"HTTP/1.10", 10}, {"HTTP/1.00", 0}, {"HTTP/1.999", 999}, {"HTTP/2.0", 0}}) {
    const Result r = Parse(kReq, "GET /a " + version + "\r\n\r\n" + kGet);
    ASSERT_EQ(r.end, End::kIdle) << version << r;
    ASSERT_EQ(r.msgs.size(), 2u) << version << r;
    EXPECT_EQ(r.msgs[0].minor, minor) << version;
  }
  for (const char* version : {"HTTP/1.1000", "HTTP/01.1", "HTTP/1.", "HTTP/1", "HTTP/1.1x"})
    EXPECT_EQ(Parse(kReq, "GET /a " + std::string(version) + "\r\n\r\n").end, End::kError)
        << version;
}

// A request whose body length cannot be determined (a Transfer-Encoding other than chunked)
// is answered by the server (nginx and Go: 501) and must be audited with that answer, as it
// was with http-parser: its head is reported, then the parse fails.
TEST(H1ParserTest, RequestWithAnotherTransferCodingIsReportedBeforeTheError) {
  struct Heads final : H1Listener {
    std::vector<std::string> targets;
    void OnMessageBegin() override {}
    H1HeadVerdict OnHead(const H1Head& h) override {
      targets.emplace_back(h.target);
      return H1HeadVerdict::kBody;
    }
    void OnBody(const char*, size_t) override {}
    void OnMessageComplete() override {}
  } heads;
  H1Parser p(kReq, kMaxHead);
  const std::string bytes = "POST /te HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nzz";
  EXPECT_LT(p.Execute(heads, bytes.data(), bytes.size()), bytes.size());
  EXPECT_TRUE(p.failed());
  EXPECT_EQ(heads.targets, std::vector<std::string>{"/te"});

  std::vector<std::pair<std::string, int>> got;
  Http1Connection conn({}, [&](HttpExchange&& ex, ExchangeEvent) {
    got.emplace_back(ex.request.target, ex.response ? ex.response->status : 0);
  });
  conn.MarkStreamStart(Direction::kRequest);
  conn.MarkStreamStart(Direction::kResponse);
  conn.OnData(Direction::kRequest, bytes, 1);
  conn.OnData(Direction::kResponse,
              "HTTP/1.1 501 Not Implemented\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 2);
  conn.OnClose(3);
  EXPECT_EQ(got, (std::vector<std::pair<std::string, int>>{{"/te", 501}}));
}

TEST(H1ParserTest, BadLineAfterTheLimitIsTooLargeNotAHeadWithFields) {
  // The fields before a bad line already count more than the limit: the head is too large
  // (its request reported by the start line alone), not a rejected head whose fields, over
  // the limit, would be kept (a fuzz finding).
  struct Heads final : H1Listener {
    size_t heads = 0;
    void OnMessageBegin() override {}
    H1HeadVerdict OnHead(const H1Head&) override {
      ++heads;
      return H1HeadVerdict::kBody;
    }
    void OnBody(const char*, size_t) override {}
    void OnMessageComplete() override {}
  } heads;
  H1Parser p(kReq, 64);
  const std::string bytes = "GET /big HTTP/1.1\r\nX: " + std::string(100, 'a') +
                            "\r\n\x01"
                            "bad\r\n\r\n";
  p.Execute(heads, bytes.data(), bytes.size());
  EXPECT_TRUE(p.head_too_large());
  EXPECT_EQ(heads.heads, 0u);
  // Within the limit, the same bad line is a rejected head, reported with its fields.
  H1Parser q(kReq, kMaxHead);
  q.Execute(heads, bytes.data(), bytes.size());
  EXPECT_TRUE(q.failed());
  EXPECT_FALSE(q.head_too_large());
  EXPECT_EQ(heads.heads, 1u);
}

// ---- in-body accounting used for gaps ----

TEST(H1ParserTest, LengthBodyRemainingAndSkip) {
  struct Count final : H1Listener {
    size_t body = 0;
    bool done = false;
    void OnMessageBegin() override {}
    H1HeadVerdict OnHead(const H1Head&) override { return H1HeadVerdict::kBody; }
    void OnBody(const char*, size_t n) override { body += n; }
    void OnMessageComplete() override { done = true; }
  } l;
  H1Parser p(kReq, kMaxHead);
  const std::string head = "POST /p HTTP/1.1\r\nContent-Length: 1000000000000\r\n\r\nab";
  EXPECT_EQ(p.Execute(l, head.data(), head.size()), head.size());
  ASSERT_TRUE(p.in_length_body());
  EXPECT_EQ(p.remaining(), 1000000000000u - 2);
  p.SkipBodyBytes(p.remaining() - 1);
  EXPECT_EQ(p.remaining(), 1u);
  EXPECT_EQ(p.Execute(l, "zGET", 4), 1u);
  EXPECT_TRUE(l.done);
  EXPECT_EQ(l.body, 3u);
  EXPECT_FALSE(p.in_length_body());
  // Chunked and read-until-close bodies are not length bodies.
  H1Parser c(kReq, kMaxHead);
  const std::string chunked = "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
  c.Execute(l, chunked.data(), chunked.size());
  EXPECT_FALSE(c.in_length_body());
}

}  // namespace
}  // namespace mat::http
