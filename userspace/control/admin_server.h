// The admin API's HTTPS server (Boost.Beast over OpenSSL) on the caller's io_context, so the
// routes run on the auditor's own event loop thread, between ring buffer drains: no lock, no
// other thread touches the pipeline. Every connection must present a client certificate that
// chains to the admin CA (the handshake fails otherwise); the routes see its subject CN.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>

#include "control/admin_api.h"
#include "util/result.h"

namespace mat::control {

struct AdminServerOptions {
  std::string listen;  // "ADDR:PORT", "[v6]:PORT"
  std::string cert_file, key_file, ca_file;
};

class AdminServer {
 public:
  using Handler = std::function<AdminResponse(const AdminRequest&)>;
  // Listens at once, or says why it cannot (naming the file or address).
  static Result<std::unique_ptr<AdminServer>> Start(boost::asio::io_context& io,
                                                    const AdminServerOptions& options,
                                                    Handler handler);
  ~AdminServer();
  std::string local_endpoint() const;  // "127.0.0.1:8443"

  struct State;

 private:
  AdminServer() = default;
  std::shared_ptr<State> state_;
};

}  // namespace mat::control
