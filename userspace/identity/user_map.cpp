#include "identity/user_map.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "identity/credentials.h"
#include "util/read_file.h"

namespace mat::identity {

namespace {

bool ValidName(const std::string& s) { return !s.empty() && s.size() <= kMaxNameBytes; }

}  // namespace

Result<UserTable> ParseUserMap(std::string_view text) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 44: ..." without the tag.
    std::string_view what = e.what();
    if (what.starts_with('[') && what.find("] ") != std::string_view::npos)
      what.remove_prefix(what.find("] ") + 2);
    return Error{"not JSON: " + std::string(what)};
  }
  auto fail = [&](const std::string& what) { return Error{what}; };
  if (!doc.is_object()) return fail("expected an object {\"users\": [...]}");
  for (const auto& [key, value] : doc.items()) {
    if (key != "users") return fail("unknown key \"" + key + "\" (expected \"users\")");
  }
  auto users = doc.find("users");
  if (users == doc.end() || !users->is_array()) return fail("\"users\" must be an array");
  UserTable table;
  size_t index = 0;
  for (const auto& entry : *users) {
    const std::string where = "users[" + std::to_string(index++) + "]: ";
    if (!entry.is_object()) return fail(where + "expected an object");
    for (const auto& [key, value] : entry.items()) {
      if (key != "match" && key != "id" && key != "name" && key != "groups")
        return fail(where + "unknown key \"" + key + "\"");
    }
    auto str = [&](const char* key) -> const std::string* {
      auto it = entry.find(key);
      return it != entry.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
    };
    const std::string* match = str("match");
    const std::string* id = str("id");
    if (match == nullptr) return fail(where + "\"match\" must be a string");
    const bool cn = match->starts_with("cn:");
    const bool login = match->starts_with("login:");
    const std::string value = match->substr(cn ? 3 : login ? 6 : 0);
    if ((!cn && !login) || !ValidName(value))
      return fail(where + "\"match\" must be \"cn:NAME\" or \"login:NAME\"");
    if (id == nullptr || !ValidName(*id))
      return fail(where + "\"id\" must be a non-empty string (the MKE account id)");
    MappedUser user;
    user.id = *id;
    user.name = value;
    if (entry.contains("name")) {
      const std::string* name = str("name");
      if (name == nullptr || !ValidName(*name)) return fail(where + "\"name\" must be a string");
      user.name = *name;
    }
    if (auto groups = entry.find("groups"); groups != entry.end()) {
      if (!groups->is_array() || groups->size() > kMaxGroups)
        return fail(where + "\"groups\" must be an array of at most " + std::to_string(kMaxGroups) +
                    " strings");
      for (const auto& group : *groups) {
        if (!group.is_string() || !ValidName(group.get_ref<const std::string&>()))
          return fail(where + "\"groups\" must be an array of strings");
        user.groups.push_back(group.get<std::string>());
      }
    }
    auto& by = cn ? table.by_common_name : table.by_login;
    if (!by.emplace(value, std::move(user)).second)
      return fail(where + "\"" + *match + "\" is mapped twice");
  }
  return table;
}

bool UserMap::Version::operator==(const Version& o) const {
  return exists == o.exists && dev == o.dev && ino == o.ino && size == o.size &&
         mtime.tv_sec == o.mtime.tv_sec && mtime.tv_nsec == o.mtime.tv_nsec;
}

UserMap::Version UserMap::Stat(const std::string& path) {
  Version v;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    v.error = errno;
    return v;
  }
  v.exists = true;
  v.dev = st.st_dev;
  v.ino = st.st_ino;
  v.size = st.st_size;
  v.mtime = st.st_mtim;
  return v;
}

Status UserMap::Load() {
  if (!version_.exists)
    return Error{std::string("cannot read it: ") + std::strerror(version_.error)};
  auto text = ReadSmallFile(path_, kMaxUserMapBytes);
  if (!text) return Error{text.error()};
  auto table = ParseUserMap(*text);
  if (!table) return Error{table.error()};
  table_ = std::move(*table);
  ++loads_;
  return {};
}

Status UserMap::Open(std::string path, uint64_t check_interval_ns, uint64_t now_ns) {
  path_ = std::move(path);
  check_interval_ns_ = check_interval_ns;
  next_check_ns_ = now_ns + check_interval_ns;
  table_ = {};
  version_ = Stat(path_);
  Status loaded = Load();
  if (!loaded) ++errors_;
  return loaded;
}

void UserMap::MaybeReload(uint64_t now_ns) {
  if (path_.empty() || now_ns < next_check_ns_) return;
  next_check_ns_ = now_ns + check_interval_ns_;
  const Version now = Stat(path_);
  if (now == version_) return;
  version_ = now;
  const Status loaded = Load();
  if (loaded) {
    spdlog::info("user map {}: {} entr{}", path_, table_.size(), table_.size() == 1 ? "y" : "ies");
    return;
  }
  ++errors_;
  spdlog::error("user map {}: {}; keeping the previous map ({} entr{})", path_, loaded.error(),
                table_.size(), table_.size() == 1 ? "y" : "ies");
}

const MappedUser* UserMap::FindByCommonName(std::string_view cn) const {
  auto it = table_.by_common_name.find(cn);
  return it == table_.by_common_name.end() ? nullptr : &it->second;
}

const MappedUser* UserMap::FindByLogin(std::string_view login) const {
  auto it = table_.by_login.find(login);
  return it == table_.by_login.end() ? nullptr : &it->second;
}

}  // namespace mat::identity
