#include "identity/local_peer.h"

#include <pwd.h>
#include <unistd.h>

#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace mat::identity {

namespace {

constexpr uint64_t kProcCacheNs = 30ull * 1'000'000'000;
constexpr size_t kMaxCached = 4096;

bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

// The first max_bytes of a /proc or container file, "" when unreadable (a peer that is gone). Not
// util/read_file.h's ReadSmallFile: a longer file is cut here, not refused.
std::string ReadPrefix(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::string text(max_bytes, '\0');
  in.read(text.data(), static_cast<std::streamsize>(max_bytes));
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

}  // namespace

std::string LocalSocketPath(const tap_local_sock& record) {
  const size_t len = std::min<size_t>(record.path_len, TAP_UNIX_PATH_MAX);
  const char* p = reinterpret_cast<const char*>(record.path);
  if (len == 0) return {};
  if (p[0] == '\0') {  // abstract: the name is every byte after the NUL
    std::string name(p + 1, len - 1);
    while (!name.empty() && name.back() == '\0') name.pop_back();
    return "@" + name;
  }
  return std::string(p, strnlen(p, len));
}

LocalPeer LocalPeerFromRecord(const tap_local_sock& record) {
  LocalPeer peer;
  peer.pid = record.peer_pid;
  peer.uid = record.peer_uid;
  peer.gid = record.peer_gid;
  const char* comm = reinterpret_cast<const char*>(record.peer_comm);
  peer.comm.assign(comm, strnlen(comm, TAP_COMM_LEN));
  peer.path = LocalSocketPath(record);
  return peer;
}

std::string ContainerIdFromCgroup(std::string_view cgroup) {
  std::string found;
  size_t i = 0;
  while (i < cgroup.size()) {
    if (!IsHex(cgroup[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cgroup.size() && IsHex(cgroup[j])) ++j;
    if (j - i == 64) found.assign(cgroup.substr(i, 64));
    i = j;
  }
  for (char& c : found) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return found;
}

std::string ContainerNameFromConfig(std::string_view config_json) {
  nlohmann::json j = nlohmann::json::parse(config_json, nullptr, false);
  if (!j.is_object()) return {};
  auto it = j.find("Name");
  if (it == j.end() || !it->is_string()) return {};
  std::string name = it->get<std::string>();
  if (!name.empty() && name[0] == '/') name.erase(0, 1);
  return name;
}

const std::string* MatchLocalIgnore(const LocalPeer& peer, const std::vector<std::string>& ignore) {
  for (const std::string& entry : ignore) {
    if (entry.empty()) continue;
    if (!peer.comm.empty() && entry == peer.comm) return &entry;
    if (!peer.container_name.empty()) {
      if (entry == peer.container_name) return &entry;
      size_t dot = peer.container_name.find('.');
      if (dot != std::string::npos && entry == std::string_view(peer.container_name).substr(0, dot))
        return &entry;
    }
    if (!peer.container_id.empty() && entry.size() >= 12 && entry.size() <= 64) {
      bool hex = true;
      for (char c : entry) hex = hex && IsHex(c);
      if (hex && peer.container_id.compare(0, entry.size(), entry) == 0) return &entry;
    }
  }
  return nullptr;
}

std::string DataRootFromCmdline(std::string_view cmdline) {
  std::vector<std::string_view> args;
  size_t start = 0;
  for (size_t i = 0; i <= cmdline.size(); ++i) {
    if (i == cmdline.size() || cmdline[i] == '\0') {
      if (i > start) args.push_back(cmdline.substr(start, i - start));
      start = i + 1;
    }
  }
  std::string root;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    if ((a == "--data-root" || a == "-g" || a == "--graph") && i + 1 < args.size())
      root = std::string(args[++i]);
    else if (a.starts_with("--data-root="))
      root = std::string(a.substr(12));
  }
  return root;
}

void LocalPeerLookup::AddDataRoot(const std::string& root) {
  if (root.empty()) return;
  for (const std::string& r : data_roots_)
    if (r == root) return;
  data_roots_.push_back(root);
}

std::string LocalPeerLookup::UserName(uint32_t uid) {
  if (auto it = users_.find(uid); it != users_.end()) return it->second;
  std::string name = std::to_string(uid);
  std::vector<char> buf(16384);
  passwd pw{}, *result = nullptr;
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &result) == 0 && result != nullptr &&
      result->pw_name != nullptr && result->pw_name[0] != '\0')
    name = result->pw_name;
  if (users_.size() >= kMaxCached) users_.clear();
  users_[uid] = name;
  return name;
}

void LocalPeerLookup::Complete(LocalPeer* peer, uint64_t now_ns) {
  peer->user = UserName(peer->uid);
  if (peer->pid == 0) return;
  auto it = procs_.find(peer->pid);
  // A cached entry serves while fresh and, when the record named the command, for that command
  // only (a reused pid runs something else).
  if (it == procs_.end() || now_ns - it->second.at_ns > kProcCacheNs ||
      (!peer->comm.empty() && !it->second.comm.empty() && it->second.comm != peer->comm)) {
    ProcFacts facts;
    facts.at_ns = now_ns;
    const std::string dir = proc_root_ + "/" + std::to_string(peer->pid);
    std::string comm = ReadPrefix(dir + "/comm", 64);
    if (comm.empty()) {
      facts.exited = true;
    } else {
      while (!comm.empty() && comm.back() == '\n') comm.pop_back();
      facts.comm = comm;
      facts.container_id = ContainerIdFromCgroup(ReadPrefix(dir + "/cgroup", 8192));
      if (!facts.container_id.empty()) {
        auto name = names_.find(facts.container_id);
        if (name == names_.end()) {
          std::string found;
          for (const std::string& root : data_roots_) {
            found = ContainerNameFromConfig(ReadPrefix(
                root + "/containers/" + facts.container_id + "/config.v2.json", 1u << 20));
            if (!found.empty()) break;
          }
          if (names_.size() >= kMaxCached) names_.clear();
          // An unnamed answer is not kept: the container may be starting.
          if (!found.empty()) names_[facts.container_id] = found;
          facts.container_name = found;
        } else {
          facts.container_name = name->second;
        }
      }
    }
    if (procs_.size() >= kMaxCached) procs_.clear();
    it = procs_.insert_or_assign(peer->pid, std::move(facts)).first;
  }
  const ProcFacts& f = it->second;
  peer->exited = f.exited;
  if (peer->comm.empty()) peer->comm = f.comm;
  peer->container_id = f.container_id;
  peer->container_name = f.container_name;
}

}  // namespace mat::identity
