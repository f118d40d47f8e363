// Per-request cost of each userspace stage on its own, and of the whole pipeline: HTTP/1.1
// reassembly (Http1Connection), HTTP/2 (Http2Connection on a byte stream made by nghttp2's HPACK
// encoder), the audit policy, the identity resolver, the MKE line writer, and Pipeline fed a
// golden capture from memory. Every benchmark counts requests as items (items_per_second).
//
//   build/tools/bench/stages_bench [--benchmark_filter=REGEX] [--benchmark_min_time=0.2]
//
// The machine is shared and wall time is noisy; for a stable number count instructions, e.g.
//   valgrind --tool=callgrind build/tools/bench/stages_bench --benchmark_filter=Http2
//     --benchmark_min_time=0.01
#include <benchmark/benchmark.h>
#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "audit/policy.h"
#include "capture/recorder.h"
#include "http/exchange.h"
#include "http/http1.h"
#include "http/http2.h"
#include "identity/identify.h"
#include "mke_audit_tap/tap_events.h"
#include "output/line_sink.h"
#include "output/mke_line.h"
#include "pipeline/pipeline.h"

namespace {

using mat::http::Direction;
using mat::http::ExchangeEvent;
using mat::http::HttpExchange;

constexpr uint64_t kSecondNs = 1'764'428'000ULL * 1'000'000'000ULL;  // 2025-11-29T14:53:20Z

// ---------------------------------------------------------------- HTTP/1.1

// What the docker CLI sends for `docker ps -a` (keep-alive, no body).
constexpr std::string_view kDockerGet =
    "GET /v1.43/containers/json?all=1 HTTP/1.1\r\n"
    "Host: mke.example.com\r\n"
    "User-Agent: Docker-Client/24.0.5 (linux)\r\n"
    "Accept: application/json\r\n"
    "Accept-Encoding: gzip\r\n"
    "Connection: keep-alive\r\n"
    "\r\n";

std::string SmallJsonBody() {
  return R"([{"Id":"4fa6e0f0c678","Names":["/web"],"Image":"nginx:1.25","State":"running"}])";
}

// 1 KiB of JSON.
std::string JsonBody1K() {
  std::string body = R"({"Id":"4fa6e0f0c678","Log":")";
  body.append(1024 - body.size() - 2, 'x');
  return body + "\"}";
}

// nginx's response header block, then the body (Content-Length or two chunks).
std::string NginxResponse(const std::string& body, bool chunked) {
  std::string r =
      "HTTP/1.1 200 OK\r\n"
      "Server: nginx/1.22.1\r\n"
      "Date: Sat, 29 Nov 2025 14:53:20 GMT\r\n"
      "Content-Type: application/json\r\n";
  if (chunked) {
    r += "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n";
    const size_t half = body.size() / 2;
    char size[32];
    std::snprintf(size, sizeof(size), "%zx\r\n", half);
    r += size + body.substr(0, half) + "\r\n";
    std::snprintf(size, sizeof(size), "%zx\r\n", body.size() - half);
    r += size + body.substr(half) + "\r\n0\r\n\r\n";
  } else {
    r += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: keep-alive\r\n\r\n";
    r += body;
  }
  return r;
}

// The options the pipeline gives the HTTP layers (pipeline.cpp: WithStageHooks).
mat::http::Http1Options PipelineHttp1Options() {
  mat::http::Http1Options options;
  options.keep_response_headers = false;
  options.report_started = [](const mat::http::HttpRequest& request) {
    return mat::audit::IsLongRunning(request);
  };
  return options;
}

// One keep-alive connection: a request and its response per iteration, the request in
// `request_parts` OnData calls, the response in one.
void RunHttp1(benchmark::State& state, const std::string& response, int request_parts) {
  uint64_t reported = 0;
  mat::http::Http1Connection conn(PipelineHttp1Options(),
                                  [&reported](HttpExchange&& exchange, ExchangeEvent) {
                                    benchmark::DoNotOptimize(exchange.request.target.data());
                                    ++reported;
                                  });
  conn.MarkStreamStart(Direction::kRequest);
  conn.MarkStreamStart(Direction::kResponse);
  const std::string_view request = kDockerGet;
  const size_t split = request_parts > 1 ? request.size() / 2 : request.size();
  uint64_t ts = kSecondNs;
  for (auto _ : state) {
    conn.OnData(Direction::kRequest, request.substr(0, split), ts += 1000);
    if (split < request.size()) conn.OnData(Direction::kRequest, request.substr(split), ts += 1000);
    conn.OnData(Direction::kResponse, response, ts += 1000);
  }
  const auto& stats = conn.stats();
  if (reported != static_cast<uint64_t>(state.iterations()) || stats.parse_errors != 0 ||
      stats.orphan_responses != 0)
    state.SkipWithError("not one exchange per request: the input or the parser is wrong");
  state.SetItemsProcessed(static_cast<int64_t>(reported));
  state.SetBytesProcessed(
      static_cast<int64_t>(state.iterations() * (request.size() + response.size())));
}

void BM_Http1KeepAlive(benchmark::State& state) {
  RunHttp1(state, NginxResponse(SmallJsonBody(), false), 1);
}
BENCHMARK(BM_Http1KeepAlive);

void BM_Http1KeepAlive_Body1K(benchmark::State& state) {
  RunHttp1(state, NginxResponse(JsonBody1K(), false), 1);
}
BENCHMARK(BM_Http1KeepAlive_Body1K);

void BM_Http1KeepAlive_Chunked(benchmark::State& state) {
  RunHttp1(state, NginxResponse(SmallJsonBody(), true), 1);
}
BENCHMARK(BM_Http1KeepAlive_Chunked);

void BM_Http1KeepAlive_SplitRequest(benchmark::State& state) {
  RunHttp1(state, NginxResponse(SmallJsonBody(), false), 2);
}
BENCHMARK(BM_Http1KeepAlive_SplitRequest);

// ---------------------------------------------------------------- HTTP/2

using Fields = std::vector<std::pair<std::string, std::string>>;

std::string U32(uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string Frame(uint8_t type, uint8_t flags, uint32_t sid, std::string_view payload) {
  const size_t n = payload.size();
  std::string f{static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n),
                static_cast<char>(type), static_cast<char>(flags)};
  f += U32(sid);
  f += payload;
  return f;
}

constexpr uint8_t kFrameData = 0x0, kFrameHeaders = 0x1, kFrameSettings = 0x4;
constexpr uint8_t kFrameWindowUpdate = 0x8;
constexpr uint8_t kFlagEndStream = 0x1, kFlagAck = 0x1, kFlagEndHeaders = 0x4;

std::string Settings(const std::vector<std::pair<uint16_t, uint32_t>>& entries) {
  std::string p;
  for (const auto& [id, value] : entries) {
    p.push_back(static_cast<char>(id >> 8));
    p.push_back(static_cast<char>(id));
    p += U32(value);
  }
  return Frame(kFrameSettings, 0, 0, p);
}

// nghttp2's HPACK encoder, one per direction as in a real peer.
class HpackEncoder {
 public:
  HpackEncoder() { nghttp2_hd_deflate_new(&deflater_, 4096); }
  ~HpackEncoder() { nghttp2_hd_deflate_del(deflater_); }
  HpackEncoder(const HpackEncoder&) = delete;
  HpackEncoder& operator=(const HpackEncoder&) = delete;

  // The header block of `fields`; empty when nghttp2 fails (checked by the caller).
  std::string Block(const Fields& fields) {
    std::vector<nghttp2_nv> nva;
    for (const auto& [name, value] : fields) {
      nva.push_back(nghttp2_nv{const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(name.data())),
                               const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(value.data())),
                               name.size(), value.size(), NGHTTP2_NV_FLAG_NONE});
    }
    std::string out(nghttp2_hd_deflate_bound(deflater_, nva.data(), nva.size()), '\0');
    const ssize_t n = nghttp2_hd_deflate_hd(deflater_, reinterpret_cast<uint8_t*>(out.data()),
                                            out.size(), nva.data(), nva.size());
    out.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return out;
  }

 private:
  nghttp2_hd_deflater* deflater_ = nullptr;
};

// One HTTP/2 connection as kubectl (Go's HTTP/2 client) and the apiserver write it: the
// preface and SETTINGS of each side, then per stream a GET (one HEADERS frame with END_STREAM)
// and its response (HEADERS, then DATA with END_STREAM). Paths vary, every response carries its
// own Audit-Id (a new dynamic table entry each time, evicting older ones) and the Date changes
// every 100 streams, so HPACK's dynamic table works as in real traffic.
struct Http2Conversation {
  std::string client_start, server_start;
  std::vector<std::string> requests, responses;  // per stream, in order
  bool ok = true;
};

Http2Conversation MakeHttp2Conversation(size_t streams) {
  Http2Conversation c;
  c.client_start = std::string(mat::http::kHttp2Preface) +
                   Settings({{0x2, 0}, {0x4, 4194304}, {0x6, 10485760}}) +
                   Frame(kFrameWindowUpdate, 0, 0, U32(1073741824)) +
                   Frame(kFrameSettings, kFlagAck, 0, "");
  c.server_start =
      Settings({{0x3, 250}, {0x4, 1048576}, {0x5, 16384}}) + Frame(kFrameSettings, kFlagAck, 0, "");
  HpackEncoder client, server;
  const std::string paths[] = {
      "/api/v1/namespaces/default/pods?limit=500",
      "/apis/apps/v1/namespaces/default/deployments?limit=500",
      "/api/v1/namespaces/kube-system/configmaps/cluster-info",
      "/api?timeout=32s",
      "/apis?timeout=32s",
  };
  const std::string body =
      R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"48213"},"items":[]})";
  for (size_t i = 0; i < streams; ++i) {
    const uint32_t sid = static_cast<uint32_t>(2 * i + 1);
    std::string path = paths[i % std::size(paths)];
    if (i % 4 == 3) path = "/api/v1/namespaces/default/pods/web-" + std::to_string(i % 97);
    const std::string request_block = client.Block({
        {":authority", "mke.example.com:6443"},
        {":method", "GET"},
        {":path", path},
        {":scheme", "https"},
        {"accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
        {"user-agent", "kubectl/v1.27.4 (linux/amd64) kubernetes/fa3d799"},
        {"accept-encoding", "gzip"},
    });
    char audit_id[40];
    std::snprintf(audit_id, sizeof(audit_id), "5c1e8f2a-%04zx-4b7d-9e3a-%012zx", i % 65536,
                  i * 2654435761u % 0xffffffffffffu);
    const std::string response_block = server.Block({
        {":status", "200"},
        {"audit-id", audit_id},
        {"cache-control", "no-cache, private"},
        {"content-type", "application/json"},
        {"x-kubernetes-pf-flowschema-uid", "e1d3c1a4-7a43-4d8f-8d2c-3f4b1b8e2a10"},
        {"x-kubernetes-pf-prioritylevel-uid", "0b9a5e1c-2f7e-4a0e-9a53-6c7d1f2e3b44"},
        {"date", "Sat, 29 Nov 2025 14:5" + std::to_string(i / 100 % 10) + ":20 GMT"},
        {"content-length", std::to_string(body.size())},
    });
    if (request_block.empty() || response_block.empty()) c.ok = false;
    c.requests.push_back(
        Frame(kFrameHeaders, kFlagEndHeaders | kFlagEndStream, sid, request_block));
    c.responses.push_back(Frame(kFrameHeaders, kFlagEndHeaders, sid, response_block) +
                          Frame(kFrameData, kFlagEndStream, sid, body));
  }
  return c;
}

// Streams per connection: each iteration is one stream; a new connection (preface, SETTINGS,
// empty HPACK tables) every kStreamsPerConnection streams, its cost counted in.
constexpr size_t kStreamsPerConnection = 1000;

void BM_Http2(benchmark::State& state) {
  static const Http2Conversation conversation = MakeHttp2Conversation(kStreamsPerConnection);
  if (!conversation.ok) {
    state.SkipWithError("nghttp2_hd_deflate_hd failed");
    return;
  }
  mat::http::Http2Options options;
  options.keep_response_headers = false;  // as in the pipeline
  options.report_started = [](const mat::http::HttpRequest& request) {
    return mat::audit::IsLongRunning(request);
  };
  uint64_t reported = 0;
  mat::http::Http2Connection::Sink sink = [&reported](HttpExchange&& exchange, ExchangeEvent) {
    benchmark::DoNotOptimize(exchange.request.target.data());
    ++reported;
  };
  mat::http::Http2Stats stats;
  std::unique_ptr<mat::http::Http2Connection> conn;
  size_t next = kStreamsPerConnection;
  uint64_t ts = kSecondNs;
  size_t bytes = 0;
  for (auto _ : state) {
    if (next == kStreamsPerConnection) {
      if (conn) stats += conn->stats();
      conn = std::make_unique<mat::http::Http2Connection>(options, sink, true);
      conn->OnData(Direction::kRequest, conversation.client_start, ts += 1000);
      conn->OnData(Direction::kResponse, conversation.server_start, ts += 1000);
      next = 0;
    }
    conn->OnData(Direction::kRequest, conversation.requests[next], ts += 1000);
    conn->OnData(Direction::kResponse, conversation.responses[next], ts += 1000);
    bytes += conversation.requests[next].size() + conversation.responses[next].size();
    ++next;
  }
  if (conn) stats += conn->stats();
  if (reported != static_cast<uint64_t>(state.iterations()) || stats.hpack_errors != 0 ||
      stats.fatal_errors != 0 || stats.resyncs != 0)
    state.SkipWithError("not one exchange per stream: the input or the parser is wrong");
  state.SetItemsProcessed(static_cast<int64_t>(reported));
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_Http2);

// ---------------------------------------------------------------- policy

HttpExchange Exchange(std::string method, std::string target, mat::http::Headers headers,
                      std::string body, int status, std::string response_body) {
  HttpExchange e;
  e.request.method = std::move(method);
  e.request.target = std::move(target);
  e.request.headers = std::move(headers);
  e.request.body = std::move(body);
  e.request.body_size = e.request.body.size();
  e.request.first_byte_ns = kSecondNs + 316'157'000;
  e.request.headers_done_ns = kSecondNs + 316'160'000;
  e.request.complete_ns = kSecondNs + 316'170'000;
  e.response.emplace();
  e.response->status = status;
  e.response->body = std::move(response_body);
  e.response->body_size = e.response->body.size();
  e.response->complete_ns = kSecondNs + 318'200'000;
  e.sequence = 1;
  return e;
}

HttpExchange DockerGet() {
  return Exchange("GET", "/v1.43/containers/json?all=1",
                  {{"Host", "mke.example.com"},
                   {"User-Agent", "Docker-Client/24.0.5 (linux)"},
                   {"Accept", "application/json"},
                   {"Accept-Encoding", "gzip"}},
                  "", 200, "");
}

HttpExchange KubernetesList() {
  return Exchange("GET", "/api/v1/namespaces/default/pods?limit=500",
                  {{":authority", "mke.example.com:6443"},
                   {"accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
                   {"user-agent", "kubectl/v1.27.4 (linux/amd64) kubernetes/fa3d799"},
                   {"accept-encoding", "gzip"}},
                  "", 200, "");
}

// Redacted at request level (its requestObject is the marker); the id comes from the response.
HttpExchange SecretCreate() {
  return Exchange("POST", "/v1.41/secrets/create",
                  {{"Host", "mke.example.com"},
                   {"User-Agent", "Docker-Client/24.0.5 (linux)"},
                   {"Content-Type", "application/json"},
                   {"Content-Length", "31"}},
                  R"({"Name":"db","Data":"Zm9vYmFy"})", 201,
                  R"({"ID":"ktnbjxoalbkvbvedmg1urrz8h"})");
}

// A JSON requestObject at request level, with a uid from the response.
HttpExchange ConfigMapCreate() {
  return Exchange(
      "POST", "/api/v1/namespaces/default/configmaps",
      {{":authority", "mke.example.com:6443"},
       {"content-type", "application/json"},
       {"user-agent", "kubectl/v1.27.4 (linux/amd64) kubernetes/fa3d799"}},
      R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web-config","namespace":"default"},"data":{"nginx.conf":"worker_processes 1;","mode":"production"}})",
      201,
      R"({"kind":"ConfigMap","metadata":{"uid":"6f3bfa7f-4f1e-4b4f-9d9e-0e7f2c1b5a11","name":"web-config"}})");
}

mat::audit::RequestContext Context() {
  mat::audit::RequestContext context;
  context.source = "172.31.45.250:48516";
  context.stage_time_ns = kSecondNs + 318'200'000;
  return context;
}

mat::audit::AuditPolicy Policy(mat::audit::Level level) {
  mat::audit::PolicyConfig config;
  config.level = level;
  return mat::audit::AuditPolicy(config);
}

// The overload the pipeline uses: one AuditRecord filled again and again.
void RunPolicyInto(benchmark::State& state, const HttpExchange& exchange, mat::audit::Level level) {
  const mat::audit::AuditPolicy policy = Policy(level);
  const mat::audit::RequestContext context = Context();
  mat::audit::AuditRecord record;
  for (auto _ : state) {
    if (!policy.Decide(exchange, mat::audit::Stage::kResponseComplete, context, &record)) {
      state.SkipWithError("not audited");
      break;
    }
    benchmark::DoNotOptimize(record.kind.data());
  }
  state.SetItemsProcessed(state.iterations());
}

// The optional-returning overload: a new AuditRecord per call.
void RunPolicyOptional(benchmark::State& state, const HttpExchange& exchange,
                       mat::audit::Level level) {
  const mat::audit::AuditPolicy policy = Policy(level);
  const mat::audit::RequestContext context = Context();
  for (auto _ : state) {
    auto record = policy.Decide(exchange, mat::audit::Stage::kResponseComplete, context);
    if (!record) {
      state.SkipWithError("not audited");
      break;
    }
    benchmark::DoNotOptimize(record->kind.data());
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_PolicyDecide(benchmark::State& state, HttpExchange (*make)(), mat::audit::Level level,
                     bool reuse) {
  const HttpExchange exchange = make();
  if (reuse)
    RunPolicyInto(state, exchange, level);
  else
    RunPolicyOptional(state, exchange, level);
}
BENCHMARK_CAPTURE(BM_PolicyDecide, docker_get, DockerGet, mat::audit::Level::kMetadata, true);
BENCHMARK_CAPTURE(BM_PolicyDecide, k8s_list, KubernetesList, mat::audit::Level::kMetadata, true);
BENCHMARK_CAPTURE(BM_PolicyDecide, secret_create_request, SecretCreate, mat::audit::Level::kRequest,
                  true);
BENCHMARK_CAPTURE(BM_PolicyDecide, configmap_create_request, ConfigMapCreate,
                  mat::audit::Level::kRequest, true);
BENCHMARK_CAPTURE(BM_PolicyDecide, docker_get_optional, DockerGet, mat::audit::Level::kMetadata,
                  false);
BENCHMARK_CAPTURE(BM_PolicyDecide, k8s_list_optional, KubernetesList, mat::audit::Level::kMetadata,
                  false);
BENCHMARK_CAPTURE(BM_PolicyDecide, secret_create_request_optional, SecretCreate,
                  mat::audit::Level::kRequest, false);

// ---------------------------------------------------------------- identity

std::string Base64Url(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (unsigned char c : data) {
    bits = (bits << 8) | c;
    count += 8;
    while (count >= 6) out.push_back(kAlphabet[(bits >> (count -= 6)) & 63]);
  }
  if (count > 0) out.push_back(kAlphabet[(bits << (6 - count)) & 63]);
  return out;
}

// An unsigned-looking RS256 JWT as an OIDC provider issues it (the signature is not checked).
std::string Jwt() {
  return Base64Url(R"({"alg":"RS256","kid":"3f1c","typ":"JWT"})") + "." +
         Base64Url(
             R"({"iss":"https://mke.example.com/enzi","sub":"4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a",)"
             R"("aud":["mke"],"exp":1764431600,"iat":1764428000,"preferred_username":"alice",)"
             R"("groups":["devs","ops"]})") +
         "." + Base64Url(std::string(256, '\x5a'));
}

constexpr char kSessionToken[] = "9b1d2e7c-41f0-4d8e-b1a4-7f0c3e2d5a68";

mat::http::HttpRequest RequestWith(std::string authorization) {
  mat::http::HttpRequest request = DockerGet().request;
  if (!authorization.empty()) request.headers.emplace_back("Authorization", authorization);
  return request;
}

enum class Credential { kNone, kJwt, kSessionToken };

void BM_IdentityResolve(benchmark::State& state, Credential credential, bool shared) {
  mat::identity::IdentityResolver resolver{mat::identity::IdentityOptions{}};
  if (mat::Status started = resolver.Start(kSecondNs); !started) {
    state.SkipWithError(started.error().c_str());
    return;
  }
  // The login that teaches the resolver the session token (MKE's /auth/login).
  HttpExchange login = Exchange("POST", "/auth/login", {{"Content-Type", "application/json"}},
                                R"({"username":"alice","password":"Corr3ct-H0rse"})", 200,
                                std::string(R"({"auth_token":")") + kSessionToken + "\"}");
  if (!resolver.Learn(login, kSecondNs)) {
    state.SkipWithError("the login was not learned");
    return;
  }
  mat::http::HttpRequest request;
  mat::identity::Method expected = mat::identity::Method::kNoCredentialSeen;
  switch (credential) {
    case Credential::kNone:
      request = RequestWith("");
      break;
    case Credential::kJwt:
      request = RequestWith("Bearer " + Jwt());
      expected = mat::identity::Method::kJwtUnverified;
      break;
    case Credential::kSessionToken:
      request = RequestWith(std::string("Bearer ") + kSessionToken);
      expected = mat::identity::Method::kSessionToken;
      break;
  }
  const mat::identity::IdentityResolver::ConnKey key{21799, 0x563521b04910};
  if (resolver.Resolve(request, key, kSecondNs).method != expected) {
    state.SkipWithError("unexpected identification method");
    return;
  }
  uint64_t now = kSecondNs;
  for (auto _ : state) {
    now += 1000;
    if (shared) {
      const mat::identity::Identity& who = resolver.ResolveShared(request, key, now);
      benchmark::DoNotOptimize(&who);
    } else {
      mat::identity::Identity who = resolver.Resolve(request, key, now);
      benchmark::DoNotOptimize(who.uid.data());
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_IdentityResolve, no_credential, Credential::kNone, false);
BENCHMARK_CAPTURE(BM_IdentityResolve, bearer_jwt, Credential::kJwt, false);
BENCHMARK_CAPTURE(BM_IdentityResolve, session_token, Credential::kSessionToken, false);
BENCHMARK_CAPTURE(BM_IdentityResolve, shared_no_credential, Credential::kNone, true);
BENCHMARK_CAPTURE(BM_IdentityResolve, shared_session_token, Credential::kSessionToken, true);

// ---------------------------------------------------------------- line writer

// The record and user the pipeline writes for `exchange` at `level`: the policy's record with
// the identity annotation the pipeline adds, and a request without credential.
void BM_LineWriter(benchmark::State& state, HttpExchange (*make)(), mat::audit::Level level) {
  mat::audit::AuditRecord record;
  if (!Policy(level).Decide(make(), mat::audit::Stage::kResponseComplete, Context(), &record)) {
    state.SkipWithError("not audited");
    return;
  }
  record.annotations["mke-audit-tap/user-identified-by"] = "no-credential-seen";
  mat::output::UserFacts user;
  user.uid = user.username = user.login = "unidentified";
  user.license_key = "FHy6u1SSg_U_Fbo24yYUmtbH-ixRlwrpEQpdO_ntmkoz";
  const std::string id = "f8ce4684-cb55-4c88-452c-d2ebd2e9365e";
  const mat::output::LineOptions options;
  std::string line;
  uint64_t now = kSecondNs + 900'000'000;
  size_t bytes = 0;
  for (auto _ : state) {
    mat::output::FormatMkeLine(line, record, user, id, now, options);
    bytes += line.size();
    benchmark::DoNotOptimize(line.data());
    now += 1'000'000;  // 1 ms per line: the envelope's second changes now and then
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK_CAPTURE(BM_LineWriter, docker_get, DockerGet, mat::audit::Level::kMetadata);
BENCHMARK_CAPTURE(BM_LineWriter, k8s_list, KubernetesList, mat::audit::Level::kMetadata);
BENCHMARK_CAPTURE(BM_LineWriter, configmap_create_request, ConfigMapCreate,
                  mat::audit::Level::kRequest);

// ---------------------------------------------------------------- the whole pipeline

// Counts lines; keeps none.
class CountingSink : public mat::output::LineSink {
 public:
  void Write(std::string_view line) override {
    ++lines;
    bytes += line.size() + 1;
  }
  uint64_t lines = 0;
  uint64_t bytes = 0;
};

struct Golden {
  mat::capture::ClockMap clock;
  std::vector<std::vector<unsigned char>> records;
  uint64_t first_ts = ~0ull, last_ts = 0;
  uint64_t lines = 0;  // lines of NAME.jsonl: what one replay must write
  std::string error;
};

Golden ReadGolden(const std::string& name) {
  Golden g;
  const std::string base = std::string(MAT_GOLDEN_DIR) + "/" + name;
  mat::capture::ReplayStats stats;
  mat::Status read = mat::capture::ReadRecording(
      base + ".rec", &g.clock,
      [&g](const void* data, uint32_t size) {
        auto p = static_cast<const unsigned char*>(data);
        g.records.emplace_back(p, p + size);
        if (size >= sizeof(tap_hdr)) {
          const uint64_t ts = static_cast<const tap_hdr*>(data)->ts_ns;
          if (ts < g.first_ts) g.first_ts = ts;
          if (ts > g.last_ts) g.last_ts = ts;
        }
      },
      &stats);
  if (!read) g.error = read.error();
  std::ifstream expected(base + ".jsonl");
  for (std::string line; std::getline(expected, line);)
    if (!line.empty()) ++g.lines;
  if (g.error.empty() && (g.records.empty() || g.lines == 0))
    g.error = base + ": no records or no expected lines";
  return g;
}

// One iteration replays every record of the capture through one long-lived Pipeline. The
// capture's connections all end in it (and nginx reuses its SSL* addresses after the end, so
// the ids need no remapping); each iteration shifts the timestamps past the previous one.
// Items are requests: audit lines plus requests the policy skipped (/_ping).
void BM_PipelineReplay(benchmark::State& state, const char* name, mat::audit::Level level) {
  Golden golden = ReadGolden(name);
  if (!golden.error.empty()) {
    state.SkipWithError(golden.error.c_str());
    return;
  }
  mat::pipeline::PipelineConfig config;
  config.policy.level = level;
  config.license_key = "BENCH";
  CountingSink sink;
  mat::pipeline::Pipeline pipeline(config, golden.clock, &sink, nullptr, {});
  const uint64_t span = golden.last_ts - golden.first_ts + 1000;
  for (auto _ : state) {
    for (auto& r : golden.records) {
      pipeline.OnRecord(r.data(), r.size());
      if (r.size() >= sizeof(tap_hdr)) reinterpret_cast<tap_hdr*>(r.data())->ts_ns += span;
    }
  }
  pipeline.Finish(golden.clock.ToWall(golden.last_ts));
  const auto& stats = pipeline.stats();
  if (stats.lines != golden.lines * static_cast<uint64_t>(state.iterations()) ||
      stats.bad_records != 0)
    state.SkipWithError("lines differ from the golden file's count per replay");
  state.SetItemsProcessed(static_cast<int64_t>(stats.lines + stats.not_audited));
  state.SetBytesProcessed(static_cast<int64_t>(sink.bytes));
  state.counters["lines_per_replay"] = static_cast<double>(golden.lines);
}
BENCHMARK_CAPTURE(BM_PipelineReplay, nginx_http11_metadata, "nginx-http11",
                  mat::audit::Level::kMetadata);
BENCHMARK_CAPTURE(BM_PipelineReplay, nginx_http11_request, "nginx-http11",
                  mat::audit::Level::kRequest);
BENCHMARK_CAPTURE(BM_PipelineReplay, api_semantics_request, "api-semantics.request",
                  mat::audit::Level::kRequest);

}  // namespace

BENCHMARK_MAIN();
