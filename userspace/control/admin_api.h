// The admin API's routes, independent of the HTTPS server that carries them (admin_server.h):
//   GET /api/ucp/config/logging   the logging settings (logging_api.h), for every client
//   PUT /api/ucp/config/logging   change them: admins only (their certificate CN is listed)
//   GET /metrics                  Prometheus text format
//   GET /                         the settings page (HTML and JavaScript, no external assets)
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "control/logging_api.h"

namespace mat::control {

struct AdminRequest {
  std::string method;  // as sent ("GET")
  std::string target;  // request-target, query included
  std::string body;
  std::string subject;  // the client certificate's subject CN (verified against --admin-ca)
};

struct AdminResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string allow;  // the Allow header of a 405
};

// What the routes read and change; supplied by the auditor (main.cpp).
struct AdminBackend {
  std::function<LoggingSettings()> settings;
  // Applies new settings at once, or says why they could not be applied (500, nothing
  // changed).
  std::function<Status(const LoggingSettings&)> apply;
  std::function<std::string()> metrics;
};

// Body limit of a PUT: a larger body is answered 413 by the server before it is read.
inline constexpr size_t kMaxAdminBodyBytes = 16 * 1024;

AdminResponse HandleAdminRequest(const AdminRequest& request, const AdminBackend& backend,
                                 const std::vector<std::string>& admin_subjects);

// The settings page served at "/".
const std::string& AdminPage();

}  // namespace mat::control
