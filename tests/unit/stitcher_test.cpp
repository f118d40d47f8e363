// The Stitcher (http/stitcher.h) on its own, and the total bound it gives both protocols.
#include "http/stitcher.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "http/http1.h"
#include "http/http2.h"

namespace mat::http {
namespace {

struct Report {
  uint64_t seq;
  ExchangeEvent event;
  int status;
  std::string note;
};

class StitcherTest : public ::testing::Test {
 protected:
  Stitcher Make(Stitcher::Order order, bool report_received = false, size_t max_total = 64u << 20) {
    Stitcher::Options o;
    o.order = order;
    o.max_total_bytes = max_total;
    o.report_received = report_received;
    o.report_started = &started_;
    return Stitcher(o, [this](HttpExchange&& ex, ExchangeEvent ev) {
      reports_.push_back(
          {ex.sequence, ev, ex.response ? ex.response->status : 0, std::string(ex.note)});
    });
  }
  static void Respond(Stitcher& s, Stitcher::Entry& e, int status) {
    e.ex.response.emplace();
    e.ex.response->status = status;
    s.Answer(e, ExchangeEvent::kResponseComplete);
  }
  std::vector<uint64_t> Seqs() const {
    std::vector<uint64_t> out;
    for (const Report& r : reports_) out.push_back(r.seq);
    return out;
  }

  Stitcher::ReportStarted started_;
  std::vector<Report> reports_;
};

// HTTP/1.1's order: an answered exchange waits for every earlier one (head of line) and for
// its own request to be done.
TEST_F(StitcherTest, RequestOrderReportsHeadOfLineOnly) {
  Stitcher s = Make(Stitcher::Order::kRequestOrder);
  Stitcher::Entry& a = s.Admit();
  Stitcher::Entry& b = s.Admit();
  Stitcher::Entry& c = s.Admit();
  b.request_done = true;
  c.request_done = true;
  Respond(s, c, 204);
  Respond(s, b, 201);
  s.Flush();
  EXPECT_TRUE(reports_.empty());
  Respond(s, a, 200);  // answered, but its request is not done yet
  s.Flush();
  EXPECT_TRUE(reports_.empty());
  s.RequestComplete(a, 5);
  s.Drain();
  s.Flush();
  ASSERT_EQ(Seqs(), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(reports_[0].status, 200);
  EXPECT_EQ(reports_[2].status, 204);
  EXPECT_EQ(s.size(), 0u);
}

// HTTP/2's order: each stream as it is answered, keyed by stream id, numbered as admitted.
TEST_F(StitcherTest, AsAnsweredReportsEachAtOnce) {
  Stitcher s = Make(Stitcher::Order::kAsAnswered);
  s.Admit(1);
  s.Admit(3);
  s.Admit(5);
  Respond(s, *s.Find(5), 200);
  s.Flush();
  ASSERT_EQ(Seqs(), (std::vector<uint64_t>{3}));
  s.NoResponse(*s.Find(1), "why");
  s.Flush();
  ASSERT_EQ(Seqs(), (std::vector<uint64_t>{3, 1}));
  EXPECT_EQ(reports_[1].event, ExchangeEvent::kNoResponse);
  EXPECT_EQ(reports_[1].note, "why");
  EXPECT_EQ(s.Find(3)->seq, 2u);
  EXPECT_EQ(s.size(), 1u);
}

// A request waiting for its response is reported kRequestTimedOut once, however often Expire
// runs; not before its time, not once its response started, not when it depends on another.
TEST_F(StitcherTest, ExpireReportsEachOnce) {
  Stitcher s = Make(Stitcher::Order::kRequestOrder, /*report_received=*/true);
  Stitcher::Entry& a = s.Admit();
  Stitcher::Entry& b = s.Admit();
  Stitcher::Entry& c = s.Admit();
  Stitcher::Entry& d = s.Admit();
  c.depends_on = 1;
  s.RequestComplete(a, 100);
  s.RequestComplete(b, 100);
  s.RequestComplete(c, 100);
  s.RequestComplete(d, 300);
  s.ResponseStarted(b, HttpResponse{});
  s.Flush();
  // kRequestReceived for all but the dependent one.
  ASSERT_EQ(Seqs(), (std::vector<uint64_t>{1, 2, 4}));
  reports_.clear();
  s.Expire(200);
  s.Expire(250);
  s.Flush();
  ASSERT_EQ(reports_.size(), 1u);
  EXPECT_EQ(reports_[0].seq, 1u);
  EXPECT_EQ(reports_[0].event, ExchangeEvent::kRequestTimedOut);
  s.Expire(400);
  s.Flush();
  ASSERT_EQ(Seqs(), (std::vector<uint64_t>{1, 4}));
}

// Close reports everything left in order: the answered with their answer, one with a response
// and no verdict as complete, the rest kNoResponse with the protocol's note; placeholders and
// unanswered dependent exchanges are dropped (the latter counted).
TEST_F(StitcherTest, CloseReportsAllLeftInOrder) {
  Stitcher s = Make(Stitcher::Order::kRequestOrder);
  Stitcher::Entry& a = s.Admit();  // no answer
  Stitcher::Entry& b = s.Admit();  // answered, waits behind a
  Stitcher::Entry& c = s.Admit();  // placeholder
  Stitcher::Entry& d = s.Admit();  // depends on a rejected request, unanswered
  Stitcher::Entry& e = s.Admit();  // response head kept, no verdict
  s.Charge(a, 100);
  b.request_done = true;
  Respond(s, b, 201);
  c.placeholder = true;
  d.depends_on = 1;
  e.ex.response.emplace();
  e.ex.response->status = 200;
  (void)a;
  EXPECT_EQ(s.held(), 100u);
  const size_t dropped = s.Close([](const Stitcher::Entry& x) {
    return x.seq == 1 ? std::string_view("first") : std::string_view();
  });
  s.Flush();
  EXPECT_EQ(dropped, 1u);
  ASSERT_EQ(Seqs(), (std::vector<uint64_t>{1, 2, 5}));
  EXPECT_EQ(reports_[0].event, ExchangeEvent::kNoResponse);
  EXPECT_EQ(reports_[0].note, "first");
  EXPECT_EQ(reports_[1].event, ExchangeEvent::kResponseComplete);
  EXPECT_EQ(reports_[1].status, 201);
  EXPECT_EQ(reports_[2].event, ExchangeEvent::kResponseComplete);
  EXPECT_EQ(reports_[2].status, 200);
  EXPECT_EQ(s.size(), 0u);
  EXPECT_EQ(s.held(), 0u);
}

// The total is over every Stitcher, whatever its order (protocol): what one holds is room
// another's bodies no longer have; released when it goes.
TEST_F(StitcherTest, TotalBoundsBodiesOverAllConnections) {
  const uint64_t base = Stitcher::TotalHeld();
  Stitcher h2 = Make(Stitcher::Order::kAsAnswered, false, base + 1000);
  EXPECT_EQ(h2.BodyRoom(), 1000u);
  {
    Stitcher h1 = Make(Stitcher::Order::kRequestOrder, false, base + 1000);
    Stitcher::Entry& e = h1.Admit();
    h1.Charge(e, 700);
    EXPECT_EQ(Stitcher::TotalHeld(), base + 700);
    EXPECT_EQ(h2.BodyRoom(), 300u);
    EXPECT_EQ(h2.ConnectionRoom(), (8u << 20));  // its own budget is untouched
  }
  EXPECT_EQ(Stitcher::TotalHeld(), base);
  EXPECT_EQ(h2.BodyRoom(), 1000u);
}

// ---- the total bound through the protocols ----

constexpr Direction kReq = Direction::kRequest;
constexpr Direction kResp = Direction::kResponse;

std::string Frame(uint8_t type, uint8_t flags, uint32_t sid, std::string_view payload) {
  const size_t n = payload.size();
  std::string f{static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n),
                static_cast<char>(type), static_cast<char>(flags)};
  f += std::string{static_cast<char>(sid >> 24), static_cast<char>(sid >> 16),
                   static_cast<char>(sid >> 8), static_cast<char>(sid)};
  f += payload;
  return f;
}

// An HTTP/2 POST / on stream `sid` with `body` (HPACK static table: :method POST, :path /,
// :scheme https), request ended; `start` prefixes the connection preface and SETTINGS.
std::string H2Post(uint32_t sid, const std::string& body, bool start) {
  std::string out;
  if (start) out = std::string(kHttp2Preface) + Frame(0x4, 0, 0, "");
  out += Frame(0x1, 0x4, sid, "\x83\x84\x87");
  out += Frame(0x0, 0x1, sid, body);
  return out;
}

struct H2Result {
  std::vector<HttpExchange> exchanges;
  Http2Stats stats;
};

// One HTTP/2 POST with `body`, answered 200, on a connection whose total bound is `total`.
H2Result H2Exchange(const std::string& body, size_t total) {
  H2Result r;
  Http2Options o;
  o.max_total_bytes = total;
  Http2Connection c(o, [&](HttpExchange&& ex, ExchangeEvent ev) {
    if (ev == ExchangeEvent::kResponseComplete) r.exchanges.push_back(std::move(ex));
  });
  c.OnData(kReq, H2Post(1, body, true), 1);
  c.OnData(kResp, Frame(0x4, 0, 0, "") + Frame(0x1, 0x5, 1, "\x88"), 2);
  c.OnClose(3);
  r.stats = c.stats();
  return r;
}

// Issue 17 Scope 4: HTTP/2 bodies are bounded in total too (max_total_bytes), as HTTP/1's.
TEST(StitcherTotal, Http2BodiesKeptWithinTheTotal) {
  const std::string body(4000, 'b');
  const uint64_t base = Stitcher::TotalHeld();
  const H2Result whole = H2Exchange(body, 64u << 20);
  ASSERT_EQ(whole.exchanges.size(), 1u);
  EXPECT_EQ(whole.exchanges[0].request.body, body);
  EXPECT_EQ(whole.stats.budget_bodies_cut, 0u);

  const H2Result cut = H2Exchange(body, base + 1000);
  ASSERT_EQ(cut.exchanges.size(), 1u);
  const HttpRequest& req = cut.exchanges[0].request;
  EXPECT_EQ(cut.exchanges[0].response->status, 200);
  EXPECT_LT(req.body.size(), 1000u);
  EXPECT_EQ(req.body_size, body.size());
  EXPECT_TRUE(req.body_truncated);
  EXPECT_EQ(cut.stats.budget_bodies_cut, 1u);
  EXPECT_EQ(Stitcher::TotalHeld(), base);
}

// One total over both protocols: an HTTP/1.1 request waiting for its response holds room an
// HTTP/2 connection's bodies then lack, and the other way round.
TEST(StitcherTotal, OneTotalOverBothProtocols) {
  const uint64_t base = Stitcher::TotalHeld();
  const std::string big(3000, 'x');
  {
    Http1Connection h1({}, nullptr);
    h1.MarkStreamStart(kReq);
    h1.OnData(kReq, "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3000\r\n\r\n" + big, 1);
    ASSERT_GT(Stitcher::TotalHeld(), base + 3000);  // waiting for its response
    const H2Result r = H2Exchange(std::string(2000, 'b'), base + 3500);
    ASSERT_EQ(r.exchanges.size(), 1u);
    EXPECT_LT(r.exchanges[0].request.body.size(), 500u);
    EXPECT_TRUE(r.exchanges[0].request.body_truncated);
    EXPECT_EQ(r.stats.budget_bodies_cut, 1u);
  }
  EXPECT_EQ(Stitcher::TotalHeld(), base);
  {
    Http2Options o2;
    Http2Connection h2(o2, nullptr);
    h2.OnData(kReq, H2Post(1, big, true), 1);  // waits for its response
    ASSERT_GT(Stitcher::TotalHeld(), base + 3000);
    Http1Options o1;
    o1.max_total_bytes = base + 3500;
    std::vector<HttpExchange> got;
    Http1Connection h1(o1, [&](HttpExchange&& ex, ExchangeEvent) { got.push_back(std::move(ex)); });
    h1.MarkStreamStart(kReq);
    h1.MarkStreamStart(kResp);
    h1.OnData(
        kReq,
        "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2000\r\n\r\n" + std::string(2000, 'y'), 1);
    h1.OnData(kResp, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 2);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_LT(got[0].request.body.size(), 500u);
    EXPECT_TRUE(got[0].request.body_truncated);
    EXPECT_EQ(h1.stats().budget_bodies_cut, 1u);
  }
  EXPECT_EQ(Stitcher::TotalHeld(), base);
}

}  // namespace
}  // namespace mat::http
