#include "http/stitcher.h"

#include <algorithm>
#include <atomic>
#include <tuple>
#include <utility>

namespace mat::http {

namespace {

// What the waiting exchanges of every connection hold (heads and bodies).
std::atomic<uint64_t>& Total() {
  static std::atomic<uint64_t> total{0};
  return total;
}

}  // namespace

std::vector<Stitcher::Ready>& Stitcher::SharedReady(int which) {
  static thread_local std::vector<Ready> shared[2];
  return shared[which];
}

Stitcher::Stitcher(Options options, Sink sink) : opt_(options), sink_(std::move(sink)) {}

Stitcher::~Stitcher() { SubHeld(held_); }

uint64_t Stitcher::TotalHeld() { return Total().load(std::memory_order_relaxed); }

void Stitcher::AddHeld(size_t n) {
  held_ += n;
  Total().fetch_add(n, std::memory_order_relaxed);
}

void Stitcher::SubHeld(size_t n) {
  held_ -= n;
  Total().fetch_sub(n, std::memory_order_relaxed);
}

size_t Stitcher::BodyRoom() const {
  const uint64_t total = TotalHeld();
  return std::min<uint64_t>(ConnectionRoom(),
                            opt_.max_total_bytes > total ? opt_.max_total_bytes - total : 0);
}

Stitcher::Entry& Stitcher::Admit(uint64_t key) {
  const uint64_t seq = next_seq_++;
  if (key == 0) key = seq;
  Entry& e = entries_
                 .emplace_hint(entries_.end(), std::piecewise_construct, std::forward_as_tuple(key),
                               std::forward_as_tuple())
                 ->second;
  e.key = key;
  e.seq = seq;
  e.ex.sequence = seq;
  return e;
}

HttpExchange Stitcher::Copy(const Entry& e, bool with_response) {
  HttpExchange ex;
  ex.request = e.ex.request;
  if (with_response) ex.response = e.ex.response;
  ex.incomplete = e.ex.incomplete;
  ex.sequence = e.seq;
  return ex;
}

void Stitcher::RequestComplete(Entry& e, uint64_t ts) {
  e.ex.request.complete_ns = ts;
  e.request_done = true;
  if (opt_.report_received && !e.placeholder && e.depends_on == 0)
    Queue(Copy(e, false), ExchangeEvent::kRequestReceived);
}

void Stitcher::ResponseStarted(Entry& e, const HttpResponse& head) {
  e.response_started = true;
  if (e.placeholder || opt_.report_started == nullptr || !*opt_.report_started ||
      !(*opt_.report_started)(e.ex.request))
    return;
  HttpExchange started = Copy(e, false);
  started.response = head;
  Queue(std::move(started), ExchangeEvent::kResponseStarted);
}

void Stitcher::Erase(Iter it) {
  SubHeld(it->second.held);
  entries_.erase(it);
}

void Stitcher::Answer(Entry& e, ExchangeEvent ev) {
  e.has_verdict = true;
  e.verdict = ev;
  if (opt_.order == Order::kRequestOrder) {
    Drain();
    return;
  }
  auto it = entries_.find(e.key);
  if (!e.placeholder) Queue(std::move(e.ex), ev);
  Erase(it);
}

void Stitcher::Drop(Entry& e) { Erase(entries_.find(e.key)); }

void Stitcher::Drain() {
  while (!entries_.empty()) {
    auto it = entries_.begin();
    Entry& f = it->second;
    if (!f.has_verdict || !f.request_done) break;
    if (!f.placeholder) Queue(std::move(f.ex), f.verdict);
    Erase(it);
  }
}

void Stitcher::Expire(uint64_t complete_before_ns) {
  for (auto& [key, e] : entries_) {
    if (e.placeholder || e.has_verdict || e.timeout_reported || e.response_started ||
        !e.request_done || e.depends_on != 0)
      continue;
    const uint64_t done = e.ex.request.complete_ns;
    if (done == 0 || done >= complete_before_ns) continue;
    e.timeout_reported = true;
    Queue(Copy(e, false), ExchangeEvent::kRequestTimedOut);
  }
}

size_t Stitcher::Close(const NoteFor& note_for) {
  size_t dropped = 0;
  for (auto& [key, e] : entries_) {
    if (e.placeholder) continue;
    ExchangeEvent ev = e.verdict;
    if (!e.has_verdict) {
      if (e.ex.response) {
        ev = ExchangeEvent::kResponseComplete;
      } else if (e.depends_on != 0) {
        ++dropped;
        continue;
      } else {
        ev = ExchangeEvent::kNoResponse;
        if (note_for) e.ex.note = note_for(e);
      }
    }
    Queue(std::move(e.ex), ev);
  }
  entries_.clear();
  SubHeld(held_);
  return dropped;
}

void Stitcher::Flush() {
  while (!ready_.empty()) {
    batch_.swap(ready_);
    for (Ready& r : batch_) {
      if (sink_) sink_(std::move(r.ex), r.event);
    }
    batch_.clear();
  }
}

}  // namespace mat::http
