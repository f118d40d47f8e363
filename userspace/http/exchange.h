// HTTP exchange records: the output of the HTTP layers (HTTP/1.1 now, HTTP/2 later) and the
// input of the audit policy. Plain data, no behaviour.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mat::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive lookup of the first header with this name; nullptr when absent.
const std::string* FindHeader(const Headers& headers, std::string_view name);

struct HttpRequest {
  std::string method;  // upper case, as on the wire ("GET", "POST", ...)
  std::string target;  // request-target as on the wire, e.g. "/v1.41/containers/json?all=1"
  int version_major = 1;
  int version_minor = 1;
  Headers headers;
  std::string body;              // the first max_body_bytes of the decoded (de-chunked) body
  uint64_t body_size = 0;        // the whole decoded body's size as seen
  bool body_truncated = false;   // body holds less than body_size
  uint64_t first_byte_ns = 0;    // wall-clock (CLOCK_REALTIME) ns of the first byte
  uint64_t headers_done_ns = 0;  // when the header block was complete
  uint64_t complete_ns = 0;      // when the whole message was complete (0: not yet)
};

struct HttpResponse {
  int status = 0;
  int version_major = 1;
  int version_minor = 1;
  Headers headers;
  std::string body;
  uint64_t body_size = 0;
  bool body_truncated = false;
  uint64_t first_byte_ns = 0;
  uint64_t headers_done_ns = 0;
  uint64_t complete_ns = 0;
};

// Why an exchange is reported.
enum class ExchangeEvent {
  kRequestReceived,   // the request is complete (only when asked for: report_received); the
                      // exchange is reported again later
  kRequestTimedOut,   // no response within the timeout given to Expire(); reported again later
  kResponseStarted,   // the response's header block is complete (only when asked for: see
                      // Http1Options::report_started); the exchange is reported again later
  kResponseComplete,  // the response was fully received
  kNoResponse,        // the connection closed (or the request was abandoned) with no response
};

struct HttpExchange {
  HttpRequest request;
  std::optional<HttpResponse> response;  // set for kResponseComplete
  // True when part of this exchange was lost (a gap in the byte stream), so fields may be missing.
  bool incomplete = false;
  // The request's number on its connection (1, 2, ...): the same in every report of it.
  uint64_t sequence = 0;
  // What the HTTP layer says about the answer, for the line's mke-audit-tap/response
  // annotation (static text; empty: nothing to say). E.g. an HTTP/0.9 answer has no status.
  std::string_view note;
};

}  // namespace mat::http
