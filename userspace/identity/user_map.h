// The user map: which MKE account a certificate or login name stands for. MKE writes the account
// id as user.uid and user.username and the login name as user.extra.username; a passive observer
// sees only the certificate's CN or the name given at login, so this file supplies the rest.
//
// A JSON file:
//   {"users": [
//     {"match": "cn:alice",  "id": "4ec3c2fc-312b-4e66-bb4f-b64b8f0ee42a", "name": "alice"},
//     {"match": "login:bob", "id": "0d0e1f3a-8a52-4d59-9b0d-6e8f3f3a1c2b", "name": "bob",
//      "groups": ["devs"]}
//   ]}
// - "match": "cn:NAME" (the subject CN of a client certificate) or "login:NAME" (the user name
//   of a Basic credential, of a login that issued a session token, or of a JWT's
//   preferred_username/username/name claim). Exact, case-sensitive; each at most once.
// - "id": the MKE account id (required). "name": the login name (default: NAME). "groups":
//   written in Kubernetes Event lines (optional).
// Unknown keys are errors, so a typo does not silently map nobody.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace mat::identity {

struct MappedUser {
  std::string id;    // MKE account id
  std::string name;  // MKE login name
  std::vector<std::string> groups;
};

struct UserTable {
  std::map<std::string, MappedUser, std::less<>> by_common_name;
  std::map<std::string, MappedUser, std::less<>> by_login;
  size_t size() const { return by_common_name.size() + by_login.size(); }
};

// A map file larger than this is refused.
inline constexpr size_t kMaxUserMapBytes = 16u << 20;

// Parses the text of a user map: the table, or the error (with the JSON parser's line and
// column, or the index of the bad entry).
Result<UserTable> ParseUserMap(std::string_view text);

class UserMap {
 public:
  UserMap() = default;  // no file: maps nobody

  // Reads `path` now. On an error the map stays empty, but the file is still watched. Looks for
  // changes at most every `check_interval_ns`.
  Status Open(std::string path, uint64_t check_interval_ns, uint64_t now_ns);
  // Rereads the file when its inode, size or modification time changed, looking at most every
  // check interval. A file that cannot be read or parsed leaves the previous map in place and
  // is reported by one error log line per version of the file.
  void MaybeReload(uint64_t now_ns);

  const MappedUser* FindByCommonName(std::string_view cn) const;
  const MappedUser* FindByLogin(std::string_view login) const;

  const std::string& path() const { return path_; }
  size_t size() const { return table_.size(); }
  uint64_t loads() const { return loads_; }    // successful reads, the first one included
  uint64_t errors() const { return errors_; }  // versions of the file that were refused

 private:
  struct Version {
    bool exists = false;
    int error = 0;  // stat's errno when !exists
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    timespec mtime{};
    bool operator==(const Version& o) const;
  };
  static Version Stat(const std::string& path);
  // Reads and parses the file.
  Status Load();

  std::string path_;
  uint64_t check_interval_ns_ = 0;
  uint64_t next_check_ns_ = 0;
  Version version_;  // of the file last read or refused
  UserTable table_;
  uint64_t loads_ = 0;
  uint64_t errors_ = 0;
};

}  // namespace mat::identity
