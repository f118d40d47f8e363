// Small helpers the unit tests share: throwaway TLS identities made in memory (never stored in
// the tree), a Result's error and running a shell command.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

namespace mat::testing {

// A self-signed X.509 v3 certificate for `key`, subject and issuer CN=`cn`, valid from a minute
// ago for an hour. The caller frees it.
inline X509* SelfSignedCertificate(EVP_PKEY* key, const char* cn) {
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509_sign(cert, key, EVP_sha256());
  return cert;
}

// A new P-256 key and its self-signed certificate (CN=localhost) as dir/cert.pem and
// dir/key.pem, for a server a test starts.
inline bool WriteSelfSignedPem(const std::filesystem::path& dir) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = SelfSignedCertificate(key, "localhost");
  FILE* c = std::fopen((dir / "cert.pem").c_str(), "w");
  FILE* k = std::fopen((dir / "key.pem").c_str(), "w");
  const bool ok = c && k && PEM_write_X509(c, cert) &&
                  PEM_write_PrivateKey(k, key, nullptr, nullptr, 0, nullptr, nullptr);
  if (c) std::fclose(c);
  if (k) std::fclose(k);
  X509_free(cert);
  EVP_PKEY_free(key);
  return ok;
}

// "" for a Result or Status that holds a value, else its error: ASSERT_EQ(ErrorOf(r), "") shows
// why it failed.
template <class R>
std::string ErrorOf(const R& result) {
  return result ? std::string() : result.error();
}

// Runs a shell command; its exit status (-1 if it did not exit) and its stdout and stderr.
inline int RunCommand(const std::string& command, std::string* output) {
  output->clear();
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return -1;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) output->append(buf, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace mat::testing
