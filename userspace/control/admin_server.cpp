#include "control/admin_server.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <optional>

#include "options.h"

namespace mat::control {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
constexpr auto kRequestTimeout = std::chrono::seconds(30);
constexpr int kMaxSessions = 32;  // the event loop is the pipeline's: no flood of TLS sessions

// The subject CN of the verified client certificate; "" without one.
std::string PeerCommonName(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return "";
  std::string cn;
  X509_NAME* name = X509_get_subject_name(cert);
  int at = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (at >= 0) {
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at));
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, data);
    if (n >= 0) cn.assign(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
    OPENSSL_free(utf8);
  }
  X509_free(cert);
  return cn;
}

}  // namespace

struct AdminServer::State {
  State(asio::io_context& io) : acceptor(io), ssl(asio::ssl::context::tls_server) {}
  tcp::acceptor acceptor;
  asio::ssl::context ssl;
  Handler handler;
  int sessions = 0;
  bool stopped = false;
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<AdminServer::State> state)
      : state_(std::move(state)), stream_(std::move(socket), state_->ssl) {
    ++state_->sessions;
  }
  ~Session() { --state_->sessions; }

  void Run() {
    beast::get_lowest_layer(stream_).expires_after(kHandshakeTimeout);
    stream_.async_handshake(
        asio::ssl::stream_base::server,
        [self = shared_from_this()](beast::error_code ec) { self->OnHandshake(ec); });
  }

 private:
  void OnHandshake(beast::error_code ec) {
    if (ec) {
      // A client without a certificate, or one that does not chain to the CA, ends here.
      spdlog::info("admin API: TLS handshake with {} refused: {}", Peer(), ec.message());
      return;
    }
    subject_ = PeerCommonName(stream_.native_handle());
    Read();
  }

  std::string Peer() {
    beast::error_code ec;
    auto ep = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
    return ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  void Read() {
    parser_.emplace();
    parser_->header_limit(8 * 1024);
    parser_->body_limit(kMaxAdminBodyBytes);
    beast::get_lowest_layer(stream_).expires_after(kRequestTimeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream) return Shutdown();
    if (ec == http::error::body_limit) {
      AdminResponse r;
      r.status = 413;
      r.body =
          JsonError("the body is larger than " + std::to_string(kMaxAdminBodyBytes) + " bytes");
      discard_ = true;  // read the rest of the body before closing: no reset before the 413
      return Write(r, /*keep_alive=*/false, 11);
    }
    if (ec) return;  // timeout, reset, garbage: the connection is dropped
    auto& req = parser_->get();
    AdminRequest request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    request.body = std::move(req.body());
    request.subject = subject_;
    AdminResponse response;
    if (state_->stopped) {
      response.status = 503;
      response.body = JsonError("shutting down");
    } else {
      response = state_->handler(request);
    }
    spdlog::debug("admin API: {} {} {} (client CN '{}') -> {}", Peer(), request.method,
                  request.target, subject_, response.status);
    Write(response, req.keep_alive(), req.version());
  }

  void Write(const AdminResponse& r, bool keep_alive, unsigned version) {
    res_ = {};
    res_.version(version);
    res_.result(static_cast<unsigned>(r.status));
    res_.set(http::field::server, "mke-audit-tap");
    res_.set(http::field::content_type, r.content_type);
    res_.set(http::field::cache_control, "no-store");
    res_.set("X-Content-Type-Options", "nosniff");
    if (!r.allow.empty()) res_.set(http::field::allow, r.allow);
    if (r.content_type.rfind("text/html", 0) == 0)
      res_.set("Content-Security-Policy",
               "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
               "connect-src 'self'; frame-ancestors 'none'");
    res_.body() = r.body;
    if (!r.body.empty() && r.body.back() != '\n' && r.content_type == "application/json")
      res_.body() += '\n';  // curl > auditlog.json: one line with its end
    res_.keep_alive(keep_alive);
    res_.prepare_payload();
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return;
      if (self->discard_) return self->Discard(0);
      if (!self->res_.keep_alive()) return self->Shutdown();
      self->Read();
    });
  }

  // Closing with unread bytes would reset the connection, and the client could lose the answer
  // it has not read yet: what it still sends (up to 1 MiB, for 5 s) is read and dropped.
  void Discard(size_t total) {
    if (total == 0) beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
    if (total > (1u << 20)) return Shutdown();
    stream_.async_read_some(asio::buffer(scratch_),
                            [self = shared_from_this(), total](beast::error_code ec, size_t n) {
                              if (ec) return self->Shutdown();
                              self->Discard(total + n);
                            });
  }

  void Shutdown() {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
    stream_.async_shutdown([self = shared_from_this()](beast::error_code) {});
  }

  std::shared_ptr<AdminServer::State> state_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  std::string subject_;
  bool discard_ = false;
  std::array<char, 4096> scratch_;
};

void Accept(std::shared_ptr<AdminServer::State> state) {
  state->acceptor.async_accept([state](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || state->stopped) return;
    if (!ec) {
      if (state->sessions >= kMaxSessions) {
        spdlog::warn("admin API: {} connections open, refusing another", state->sessions);
      } else {
        std::make_shared<Session>(std::move(socket), state)->Run();
      }
    }
    Accept(state);
  });
}

}  // namespace

Result<std::unique_ptr<AdminServer>> AdminServer::Start(asio::io_context& io,
                                                        const AdminServerOptions& options,
                                                        Handler handler) {
  std::unique_ptr<AdminServer> server(new AdminServer());
  auto state = std::make_shared<State>(io);
  state->handler = std::move(handler);
  auto& ssl = state->ssl;
  beast::error_code ec;
  ssl.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                  asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  auto fail = [&](const std::string& what, const std::string& file) {
    // OpenSSL's reason, never the file's content.
    return Error{what + " " + file + ": " + ec.message()};
  };
  ssl.use_certificate_chain_file(options.cert_file, ec);
  if (ec) return fail("--admin-cert: cannot load", options.cert_file);
  ssl.use_private_key_file(options.key_file, asio::ssl::context::pem, ec);
  if (ec) return fail("--admin-key: cannot load", options.key_file);
  if (SSL_CTX_check_private_key(ssl.native_handle()) != 1)
    return Error{"--admin-key: " + options.key_file + " does not match --admin-cert " +
                 options.cert_file};
  ssl.load_verify_file(options.ca_file, ec);
  if (ec) return fail("--admin-ca: cannot load", options.ca_file);
  if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.ca_file.c_str()))
    SSL_CTX_set_client_CA_list(ssl.native_handle(), names);  // tells clients which CA to pick
  ssl.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  ssl.set_verify_depth(8);

  std::string host;
  uint16_t port = 0;
  if (!SplitListenAddress(options.listen, &host, &port))
    return Error{"--admin-listen: not ADDR:PORT: " + options.listen};
  auto address = asio::ip::make_address(host, ec);
  if (ec) return Error{"--admin-listen: not an IP address: " + host};
  tcp::endpoint endpoint(address, port);
  auto& acceptor = state->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Error{"--admin-listen " + options.listen + ": " + ec.message()};
  server->state_ = state;
  Accept(state);
  return server;
}

AdminServer::~AdminServer() {
  if (!state_) return;
  state_->stopped = true;
  beast::error_code ec;
  state_->acceptor.close(ec);
}

std::string AdminServer::local_endpoint() const {
  beast::error_code ec;
  auto ep = state_->acceptor.local_endpoint(ec);
  if (ec) return "?";
  std::string a = ep.address().to_string();
  if (ep.address().is_v6()) a = "[" + a + "]";
  return a + ":" + std::to_string(ep.port());
}

}  // namespace mat::control
