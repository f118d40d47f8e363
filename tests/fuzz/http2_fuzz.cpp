// libFuzzer target: Http2Connection fed with request/response chunks, gaps and expiries taken
// from the input (format: fuzz_input.h). Checks the reports' invariants and aborts on a
// violation; ASan/UBSan check the rest. See CMakeLists.txt here for how to build and run it.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string_view>

#include "fuzz_input.h"
#include "http/http2.h"

namespace {

using mat::http::Direction;
using mat::http::ExchangeEvent;
using mat::http::Http2Connection;
using mat::http::Http2Options;
using mat::http::HttpExchange;

void Check(bool ok) {
  if (!ok) std::abort();
}

struct Checker {
  Http2Options opt;
  std::set<uint64_t> finished;  // sequences reported with a final event
  uint64_t max_seq = 0;

  void OnReport(const HttpExchange& ex, ExchangeEvent ev) {
    Check(ex.sequence > 0);
    max_seq = ex.sequence > max_seq ? ex.sequence : max_seq;
    Check(ex.request.body.size() <= opt.max_body_bytes);
    Check(ex.request.body.size() <= ex.request.body_size);
    Check(ex.request.body_truncated == (ex.request.body_size > ex.request.body.size()));
    Check(ex.request.version_major == 2);
    size_t header_bytes = ex.request.method.size() + ex.request.target.size();
    for (const auto& [k, v] : ex.request.headers) header_bytes += k.size() + v.size();
    Check(header_bytes <= opt.max_header_list_bytes);
    const bool final = ev == ExchangeEvent::kResponseComplete || ev == ExchangeEvent::kNoResponse;
    if (final)
      Check(finished.insert(ex.sequence).second);  // once per exchange
    else
      Check(finished.count(ex.sequence) == 0);  // never after the final one
    const bool with_response =
        ev == ExchangeEvent::kResponseComplete || ev == ExchangeEvent::kResponseStarted;
    Check(ex.response.has_value() == with_response);
    // No status without a response; a line without one says why only when it ends.
    if (ev != ExchangeEvent::kNoResponse) Check(ex.note.empty());
    if (ex.response) {
      Check(ex.response->status >= 200 && ex.response->status <= 999);
      Check(ex.response->body.size() <= opt.max_body_bytes);
      Check(ex.response->body.size() <= ex.response->body_size);
      size_t resp_bytes = 0;
      for (const auto& [k, v] : ex.response->headers) resp_bytes += k.size() + v.size();
      Check(resp_bytes <= opt.max_header_list_bytes);
      if (ev == ExchangeEvent::kResponseStarted) Check(ex.response->body.empty());
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t config = data[0];
  ++data;
  --size;

  Checker checker;
  if ((config & mat::fuzz::kConfigSmall) != 0) {
    checker.opt.max_body_bytes = 16;
    checker.opt.max_header_list_bytes = 512;
    checker.opt.max_streams = 4;
    checker.opt.max_connection_bytes = 1024;
    checker.opt.report_started = [](const mat::http::HttpRequest&) { return true; };
    checker.opt.report_received = true;
  }
  const bool at_start = (config & mat::fuzz::kConfigAtStart) != 0;
  Http2Connection conn(
      checker.opt, [&checker](HttpExchange&& ex, ExchangeEvent ev) { checker.OnReport(ex, ev); },
      at_start);
  uint64_t now = 1;
  if ((config & mat::fuzz::kConfigPreface) != 0)
    conn.OnData(Direction::kRequest, mat::http::kHttp2Preface, now);

  size_t i = 0;
  while (i < size) {
    const uint8_t c = data[i++];
    ++now;
    const Direction dir =
        (c & mat::fuzz::kControlResponse) != 0 ? Direction::kResponse : Direction::kRequest;
    size_t len = 0;
    switch ((c >> 5) & 3) {
      case 0:
        len = (c & 0x1fu) + 1;
        break;
      case 1:
        if (i >= size) return 0;
        len = ((size_t{c & 0x1fu} << 8) | data[i++]) + 1;
        break;
      case 2: {
        if (i >= size) return 0;
        conn.OnGap(dir, data[i++], now);
        continue;
      }
      default:
        if ((c & 0x1f) == 0) {
          conn.Expire(now);
          continue;
        }
        len = size - i;
        break;
    }
    if (len > size - i) len = size - i;
    conn.OnData(dir, std::string_view(reinterpret_cast<const char*>(data + i), len), now);
    i += len;
  }
  conn.OnClose(now + 1);
  // Every exchange opened was reported, once, with a final event, unless the server refused it
  // or never answered it after a client protocol error (counted); sequences are 1..n.
  const auto& st = conn.stats();
  Check(checker.finished.size() + st.unreported_streams == st.requests);
  Check(checker.max_seq <= st.requests);
  Check(st.fatal_errors <= 1);
  Check(conn.failed() == (st.fatal_errors == 1));
  return 0;
}
