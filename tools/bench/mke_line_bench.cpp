// Per-call cost of the audit-line encoder: FormatMkeLine for a few record shapes, NewAuditId,
// the time formatters and the Go-style string escaper.
//
//   build/tools/bench/mke_line_bench [--benchmark_filter=REGEX]
//
// The machine is shared and wall time is noisy; for a stable number count instructions, e.g.
//   valgrind --tool=callgrind build/tools/bench/mke_line_bench --benchmark_filter=FormatMkeLine
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "audit/policy.h"
#include "output/mke_line.h"

namespace {

using mat::audit::AuditRecord;
using mat::output::UserFacts;

constexpr uint64_t kSecondNs = 1'548'868'905ULL * 1'000'000'000ULL;  // 2019-01-30T17:21:45Z

UserFacts User() {
  UserFacts user;
  user.uid = "4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a";
  user.username = "4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a";
  user.login = "admin";
  user.license_key = "FHy6u1SSg_U_Fbo24yYUmtbH-ixRlwrpEQpdO_ntmkoz";
  return user;
}

// What most lines of a real capture look like: a completed Docker API request.
AuditRecord TypicalRecord() {
  AuditRecord record;
  record.kind = "docker-swarm";
  record.level = mat::audit::Level::kMetadata;
  record.stage = mat::audit::Stage::kResponseComplete;
  record.request_uri = "/v1.41/containers/json?all=1&filters=%7B%22label%22%3A%5B%22x%22%5D%7D";
  record.verb = "GET";
  record.source_ips = {"172.31.45.250:48516"};
  record.request_received_ns = kSecondNs + 316'157'000;
  record.stage_ns = kSecondNs + 318'200'000;
  record.response_code = 200;
  return record;
}

// A Kubernetes request with every optional part present.
AuditRecord KubernetesRecord() {
  AuditRecord record = TypicalRecord();
  record.kind = "kubernetes";
  record.level = mat::audit::Level::kRequest;
  record.request_uri = "/apis/apps/v1/namespaces/default/deployments/web/scale";
  record.verb = "update";
  record.object_ref.api_group = "apps";
  record.object_ref.api_version = "v1";
  record.object_ref.namespace_ = "default";
  record.object_ref.resource = "deployments";
  record.object_ref.subresource = "scale";
  record.incomplete = true;
  return record;
}

// A long query string with characters that need escaping and some UTF-8.
AuditRecord LongUriRecord() {
  AuditRecord record = TypicalRecord();
  std::string uri = "/metricsservice/query?";
  while (uri.size() < 2000)
    uri += "query=sum%20by%20(instance)&time=2019-01-30T17%3A21&x=<caf\xc3\xa9>";
  record.request_uri = uri;
  return record;
}

void RunFormat(benchmark::State& state, const AuditRecord& record) {
  const UserFacts user = User();
  const std::string id = "f8ce4684-cb55-4c88-652c-d2ebd2e9365e";
  uint64_t now = kSecondNs + 900'000'000;
  size_t bytes = 0;
  for (auto _ : state) {
    std::string line = mat::output::FormatMkeLine(record, user, id, now);
    bytes += line.size();
    benchmark::DoNotOptimize(line);
    now += 1'000'000;  // 1 ms per line: the envelope's second changes now and then
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}

void BM_FormatMkeLine_Typical(benchmark::State& state) { RunFormat(state, TypicalRecord()); }
BENCHMARK(BM_FormatMkeLine_Typical);

void BM_FormatMkeLine_Kubernetes(benchmark::State& state) { RunFormat(state, KubernetesRecord()); }
BENCHMARK(BM_FormatMkeLine_Kubernetes);

void BM_FormatMkeLine_LongUri(benchmark::State& state) { RunFormat(state, LongUriRecord()); }
BENCHMARK(BM_FormatMkeLine_LongUri);

void BM_NewAuditId(benchmark::State& state) {
  benchmark::DoNotOptimize(mat::output::NewAuditId());  // OpenSSL's one-time DRBG setup
  for (auto _ : state) {
    std::string id = mat::output::NewAuditId();
    benchmark::DoNotOptimize(id);
  }
}
BENCHMARK(BM_NewAuditId);

void BM_FormatMicros(benchmark::State& state) {
  uint64_t ns = kSecondNs;
  for (auto _ : state) {
    std::string text = mat::output::FormatMicros(ns);
    benchmark::DoNotOptimize(text);
    ns += 7'000;  // a new second every ~143k calls
  }
}
BENCHMARK(BM_FormatMicros);

void BM_AppendGoJsonString_Ascii1K(benchmark::State& state) {
  std::string text;
  while (text.size() < 1024) text += "/api/v1/namespaces/default/pods?limit=500";
  std::string out;
  for (auto _ : state) {
    out.clear();
    mat::output::AppendGoJsonString(out, text);
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_AppendGoJsonString_Ascii1K);

}  // namespace

BENCHMARK_MAIN();
