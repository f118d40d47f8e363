// The Docker API version segment at the start of a path ("/v1.41/containers/json"), in one
// place. Three readings are used on purpose, each erring on the side that keeps the audit safe:
// - kStrict, MKE's "vN.NN" (digits, one dot, digits): the ignore list. A path whose first
//   segment only looks like a version ("/v1/_ping", "/v.41/_ping") is not ignored, so an odd
//   spelling never hides a call from the audit.
// - kRouter, dockerd's router "/v{version:[0-9.]+}": what dockerd routes past the prefix, for
//   reading the call (long-running detection, object ids).
// - kAnyCase, the router's rule with 'V' too: redaction, which hides payloads of anything that
//   could be routed to a redacted call.
#pragma once

#include <string_view>

#include "util/ascii.h"

namespace mat {

enum class VersionRule { kStrict, kRouter, kAnyCase };

// True when `segment` (a path segment without slashes) is a Docker API version under `rule`.
inline bool IsDockerVersionSegment(std::string_view segment, VersionRule rule) {
  if (segment.size() < 2) return false;
  if (segment[0] != 'v' && !(rule == VersionRule::kAnyCase && segment[0] == 'V')) return false;
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (rule != VersionRule::kStrict) {
    for (size_t i = 1; i < segment.size(); ++i)
      if (!digit(segment[i]) && segment[i] != '.') return false;
    return true;
  }
  const size_t dot = segment.find('.');
  if (dot == std::string_view::npos || dot == 1 || dot + 1 == segment.size()) return false;
  for (size_t i = 1; i < segment.size(); ++i)
    if (i != dot && !digit(segment[i])) return false;
  return true;
}

// `path` without a leading "/<version>" segment under `rule`, when one is there and is followed
// by '/' or the end: "/v1.41/_ping" -> "/_ping", "/v1.41" -> "/", "/v1.41x/_ping" stays.
inline std::string_view StripDockerVersion(std::string_view path, VersionRule rule) {
  if (path.size() < 3 || path[0] != '/') return path;
  const size_t end = path.find('/', 1);
  const std::string_view first =
      path.substr(1, end == std::string_view::npos ? path.npos : end - 1);
  if (!IsDockerVersionSegment(first, rule)) return path;
  return end == std::string_view::npos ? std::string_view("/") : path.substr(end);
}

}  // namespace mat
