#include "identity/client_cert.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <memory>

#include "identity/digest.h"

namespace mat::identity {

namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

// `text` cut to at most `max` bytes without splitting a UTF-8 sequence.
std::string CutUtf8(std::string text, size_t max) {
  if (text.size() <= max) return text;
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  text.resize(end);
  return text;
}

std::string EntryValue(const X509_NAME_ENTRY* entry) {
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(entry);
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, data);
  if (length < 0 || utf8 == nullptr) return {};
  std::string value(reinterpret_cast<const char*>(utf8), static_cast<size_t>(length));
  OPENSSL_free(utf8);
  return CutUtf8(std::move(value), kMaxNameValueBytes);
}

std::vector<std::string> Values(const X509_NAME* name, int nid) {
  std::vector<std::string> values;
  for (int i = X509_NAME_get_index_by_NID(name, nid, -1); i >= 0 && values.size() < kMaxNameValues;
       i = X509_NAME_get_index_by_NID(name, nid, i)) {
    values.push_back(EntryValue(X509_NAME_get_entry(name, i)));
  }
  return values;
}

std::string LastValue(const X509_NAME* name, int nid) {
  int last = -1;
  for (int i = X509_NAME_get_index_by_NID(name, nid, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(name, nid, i)) {
    last = i;
  }
  return last < 0 ? std::string() : EntryValue(X509_NAME_get_entry(name, last));
}

// RFC 2253 order and escaping, but UTF-8 kept as it is (not \XX-escaped).
std::string OneLine(const X509_NAME* name) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (!bio) return {};
  if (X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
    return {};
  }
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio.get(), &mem);
  if (mem == nullptr) return {};
  return CutUtf8(std::string(mem->data, mem->length), 4 * kMaxNameValueBytes);
}

}  // namespace

std::optional<ClientCertIdentity> ParseClientCertificate(std::string_view der) {
  if (der.empty() || der.size() > kMaxCertificateBytes) return std::nullopt;
  const auto* start = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* p = start;
  std::unique_ptr<X509, X509Free> cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert) {
    ERR_clear_error();
    return std::nullopt;
  }
  ClientCertIdentity identity;
  // The bytes d2i_X509 consumed are exactly the first certificate's DER.
  const auto consumed = static_cast<size_t>(p - start);
  identity.fingerprint = HexPrefix(Sha256(der.substr(0, consumed)), kCertificateFingerprintDigits);
  if (const X509_NAME* subject = X509_get_subject_name(cert.get())) {
    identity.common_name = LastValue(subject, NID_commonName);
    identity.organizations = Values(subject, NID_organizationName);
    identity.organizational_units = Values(subject, NID_organizationalUnitName);
    identity.subject = OneLine(subject);
  }
  if (const X509_NAME* issuer = X509_get_issuer_name(cert.get())) {
    identity.issuer = OneLine(issuer);
  }
  ERR_clear_error();
  return identity;
}

}  // namespace mat::identity
