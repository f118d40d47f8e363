// Who a TLS client certificate names. The capture side hands over the DER bytes the server
// parsed during the handshake (one certificate, or a chain as concatenated DER: the first one is
// the client's own); this reads the names out of it with OpenSSL. Nothing is verified: the
// audited server did that, and a request it served was made with a certificate it accepted.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mat::identity {

struct ClientCertIdentity {
  std::string common_name;  // the subject's CN (the last one, as Go and Kubernetes read it)
  std::string subject;      // the whole subject, RFC 2253 style: "CN=alice,OU=dev,O=Acme"
  std::string issuer;       // the issuer, the same way
  std::vector<std::string> organizations;         // O values, in certificate order
  std::vector<std::string> organizational_units;  // OU values, in certificate order
  std::string fingerprint;  // first kCertificateFingerprintDigits hex of the DER's SHA-256
};

// Input larger than this is not looked at (a client chain is a few KiB).
inline constexpr size_t kMaxCertificateBytes = 256 * 1024;
// Name values longer than this are cut (at a UTF-8 character boundary).
inline constexpr size_t kMaxNameValueBytes = 1024;
// At most this many O and OU values each are kept.
inline constexpr size_t kMaxNameValues = 32;

// Parses the first DER certificate of `der`. nullopt for anything else (empty, garbage, PEM,
// truncated, over kMaxCertificateBytes). Never throws; leaves no error on OpenSSL's queue.
std::optional<ClientCertIdentity> ParseClientCertificate(std::string_view der);

}  // namespace mat::identity
