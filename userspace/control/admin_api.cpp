#include "control/admin_api.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace mat::control {
namespace {

AdminResponse Error(int status, std::string_view message) {
  AdminResponse r;
  r.status = status;
  r.body = JsonError(message);
  return r;
}

AdminResponse MethodNotAllowed(std::string_view method, std::string allow) {
  AdminResponse r =
      Error(405, std::string(method) + " is not allowed here (allowed: " + allow + ")");
  r.allow = std::move(allow);
  return r;
}

}  // namespace

AdminResponse HandleAdminRequest(const AdminRequest& request, const AdminBackend& backend,
                                 const std::vector<std::string>& admin_subjects) {
  std::string_view path = request.target;
  path = path.substr(0, path.find('?'));
  if (path == "/api/ucp/config/logging") {
    if (request.method == "GET") {
      AdminResponse r;
      r.body = FormatLoggingSettings(backend.settings());
      return r;
    }
    if (request.method != "PUT") return MethodNotAllowed(request.method, "GET, PUT");
    if (std::find(admin_subjects.begin(), admin_subjects.end(), request.subject) ==
        admin_subjects.end()) {
      spdlog::warn("admin API: PUT {} refused: client certificate CN '{}' is not an admin", path,
                   request.subject);
      return Error(403, "changing settings needs an admin client certificate (--admin-subject)");
    }
    auto next = ParseLoggingSettings(request.body, backend.settings());
    if (!next) return Error(400, next.error());
    if (Status applied = backend.apply(*next); !applied) return Error(500, applied.error());
    AdminResponse r;
    r.body = FormatLoggingSettings(backend.settings());
    return r;
  }
  if (path == "/metrics") {
    if (request.method != "GET") return MethodNotAllowed(request.method, "GET");
    AdminResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = backend.metrics();
    return r;
  }
  if (path == "/" || path == "/index.html") {
    if (request.method != "GET") return MethodNotAllowed(request.method, "GET");
    AdminResponse r;
    r.content_type = "text/html; charset=utf-8";
    r.body = AdminPage();
    return r;
  }
  return Error(404, "no such resource");
}

}  // namespace mat::control
