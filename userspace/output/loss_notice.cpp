#include "output/loss_notice.h"

#include "output/go_json.h"

namespace mat::output {

std::string FormatLossNotice(uint64_t since_ns, uint64_t now_ns,
                             const std::map<std::string, uint64_t, std::less<>>& counts) {
  using internal::AppendEscaped;
  using internal::AppendInt;
  using internal::AppendTimeValue;
  std::string line = "{\"counts\":{";
  uint64_t total = 0;
  bool first = true;
  for (const auto& [reason, n] : counts) {  // a std::map: sorted byte-wise
    if (!first) line += ',';
    first = false;
    line += '"';
    AppendEscaped(line, reason);
    line += "\":";
    AppendInt(line, static_cast<int64_t>(n));
    total += n;
  }
  line += "},\"level\":\"warning\",\"msg\":\"";
  line += kLossNoticeType;
  line += "\",\"since\":";
  AppendTimeValue(line, since_ns, true);
  line += ",\"time\":";
  AppendTimeValue(line, now_ns, true);
  line += ",\"total\":";
  AppendInt(line, static_cast<int64_t>(total));
  line += ",\"type\":\"";
  line += kLossNoticeType;
  line += "\"}";
  return line;
}

void LossLedger::SetTotal(std::string_view reason, uint64_t total) {
  auto it = last_total_.find(reason);
  if (it == last_total_.end()) it = last_total_.emplace(std::string(reason), 0).first;
  uint64_t grew = total >= it->second ? total - it->second : total;
  it->second = total;
  Add(reason, grew);
}

void LossLedger::Add(std::string_view reason, uint64_t n) {
  if (n == 0) return;
  auto p = pending_.find(reason);
  if (p == pending_.end()) p = pending_.emplace(std::string(reason), 0).first;
  p->second += n;
  auto l = lost_.find(reason);
  if (l == lost_.end()) l = lost_.emplace(std::string(reason), 0).first;
  l->second += n;
}

std::optional<std::string> LossLedger::TakeNotice(uint64_t now_ns, bool force) {
  if (pending_.empty()) return std::nullopt;
  if (!force && noticed_ && now_ns < since_ns_ + min_interval_ns_) return std::nullopt;
  std::string line = FormatLossNotice(since_ns_, now_ns, pending_);
  pending_.clear();
  since_ns_ = now_ns;
  noticed_ = true;
  ++notices_;
  return line;
}

}  // namespace mat::output
