#include "tap/targets.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "tap/elf_file.h"
#include "tap/file_cache.h"

namespace mat::tap {
namespace {

struct ProcStat {
  pid_t pid = 0;
  pid_t ppid = 0;
  std::string comm;
  uint64_t start_time = 0;
};

bool ReadStat(const std::string& proc_root, pid_t pid, ProcStat* out) {
  std::ifstream in(proc_root + "/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses; it ends at the last ')'.
  size_t open = line.find('('), close = line.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return false;
  out->pid = pid;
  out->comm = line.substr(open + 1, close - open - 1);
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  // After comm: state(3) ppid(4) ... starttime(22).
  for (int index = 3; index <= 22 && rest >> field; ++index) {
    if (index == 4) out->ppid = static_cast<pid_t>(std::atoi(field.c_str()));
    if (index == 22) out->start_time = std::strtoull(field.c_str(), nullptr, 10);
  }
  return true;
}

// The distinct files pid maps whose name starts with `prefix`, as map_files/ paths.
std::vector<SslLibrary> FindMappedLibraries(pid_t pid, const std::string& proc_root,
                                            std::string_view prefix) {
  std::string base = proc_root + "/" + std::to_string(pid);
  std::ifstream maps(base + "/maps");
  std::vector<SslLibrary> found;
  std::set<std::pair<std::string, std::string>> seen;  // (device, inode)
  std::string line;
  while (std::getline(maps, line)) {
    // "start-end perms offset dev inode   path"
    std::istringstream fields(line);
    std::string range, perms, offset, dev, inode;
    if (!(fields >> range >> perms >> offset >> dev >> inode) || inode == "0") continue;
    size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::string path = line.substr(slash);
    std::string name = path.substr(path.rfind('/') + 1);
    if (name.rfind(prefix, 0) != 0 || !seen.insert({dev, inode}).second) continue;
    // The path in maps is the file's name as this process sees it, which from another
    // mount namespace or a chroot (a container) may name a different file or none.
    // map_files/ opens exactly the mapped file, wherever it lives.
    found.push_back({base + "/map_files/" + range, path});
  }
  return found;
}

// Whether the program file exports SSL_read, read once per file (device, inode): a process
// found at its fork or exec is probed without parsing its program again.
bool ExportsSslRead(const std::string& exe) {
  static FileCache<bool> cache(128);
  struct stat st {};
  if (::stat(exe.c_str(), &st) != 0) return false;
  FileKey key{st.st_dev, st.st_ino};
  if (bool* known = cache.Find(key)) return *known;
  auto elf = ElfFile::Load(exe);
  return cache.Insert(key, elf && elf->FindFunction("SSL_read"));
}

}  // namespace

std::optional<TargetProcess> ReadTarget(pid_t pid, const TargetSpec& spec,
                                        const std::string& proc_root) {
  ProcStat stat;
  if (!ReadStat(proc_root, pid, &stat)) return std::nullopt;
  bool selected = false;
  for (const auto& comm : spec.comms) selected |= stat.comm == comm.substr(0, 15);
  pid_t cur = pid;
  ProcStat up = stat;
  for (int depth = 0; !selected && depth < 64 && cur > 0; ++depth) {
    for (pid_t wanted : spec.pids) selected |= cur == wanted;
    cur = up.ppid;
    if (cur <= 0 || !ReadStat(proc_root, cur, &up)) break;
  }
  if (!selected) return std::nullopt;
  TargetProcess t;
  t.pid = pid;
  t.comm = stat.comm;
  t.start_time = stat.start_time;
  return t;
}

std::string TlsLibrarySignature(pid_t pid, const std::string& proc_root) {
  std::ifstream maps(proc_root + "/" + std::to_string(pid) + "/maps");
  std::set<std::string> files;
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("/libssl.so") == std::string::npos &&
        line.find("/libcrypto.so") == std::string::npos)
      continue;
    std::istringstream fields(line);
    std::string range, perms, offset, dev, inode;
    if (fields >> range >> perms >> offset >> dev >> inode) files.insert(dev + " " + inode);
  }
  std::string out;
  for (const auto& f : files) out += f + ";";
  return out;
}

std::vector<SslLibrary> FindSslLibraries(pid_t pid, const std::string& proc_root) {
  std::vector<SslLibrary> found = FindMappedLibraries(pid, proc_root, "libssl.so");
  std::string base = proc_root + "/" + std::to_string(pid);
  // OpenSSL linked into the program itself.
  std::string exe = base + "/exe";
  if (ExportsSslRead(exe)) {
    char target[4096] = "";
    ssize_t n = ::readlink(exe.c_str(), target, sizeof(target) - 1);
    found.push_back({exe, n > 0 ? std::string(target, static_cast<size_t>(n)) : exe});
  }
  return found;
}

std::vector<SslLibrary> FindCryptoLibraries(pid_t pid, const std::string& proc_root) {
  return FindMappedLibraries(pid, proc_root, "libcrypto.so");
}

std::vector<TargetProcess> ScanTargets(const TargetSpec& spec, const std::string& proc_root) {
  std::map<pid_t, ProcStat> all;
  if (DIR* dir = ::opendir(proc_root.c_str())) {
    while (dirent* entry = ::readdir(dir)) {
      char* end = nullptr;
      long pid = std::strtol(entry->d_name, &end, 10);
      if (*end != '\0' || pid <= 0) continue;
      ProcStat stat;
      if (ReadStat(proc_root, static_cast<pid_t>(pid), &stat)) all[stat.pid] = stat;
    }
    ::closedir(dir);
  }
  auto selected = [&](const ProcStat& p) {
    for (const auto& comm : spec.comms)
      if (p.comm == comm) return true;
    // Walk up the parent chain (bounded, in case of a cycle in a racy snapshot).
    pid_t cur = p.pid;
    for (int depth = 0; depth < 64 && cur > 0; ++depth) {
      for (pid_t wanted : spec.pids)
        if (cur == wanted) return true;
      auto it = all.find(cur);
      if (it == all.end()) break;
      cur = it->second.ppid;
    }
    return false;
  };
  std::vector<TargetProcess> out;
  for (const auto& [pid, stat] : all) {
    if (!selected(stat)) continue;
    TargetProcess t;
    t.pid = pid;
    t.comm = stat.comm;
    t.start_time = stat.start_time;
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace mat::tap
