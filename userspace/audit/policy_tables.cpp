#include "audit/policy_tables.h"

namespace mat::audit {

std::vector<std::string> DefaultIgnoreList() {
  return {"/_ping", "/ca",       "/auth",  "/trustedregistryca", "/kubeauth", "/metrics",
          "/info",  "/version*", "/debug", "/openid_keys",       "/apidocs",  "/kubernetesdocs",
          "/manage"};
}

std::vector<CallPattern> DefaultRedactedCalls() {
  return {
      {"POST", "/secrets/create"}, {"POST", "/secrets/{id}/update"}, {"POST", "/swarm/join"},
      {"POST", "/swarm/update"},   {"POST", "/auth/login"},
  };
}

std::vector<SensitiveField> DefaultSensitiveFields() {
  return {
      // The swarm's root CA key: at the top level, in CAConfig, and where the Docker API puts
      // it in an InitRequest (Spec.CAConfig.SigningCAKey).
      {{"POST", "/swarm/init"}, {"SigningCAKey"}},
      {{"POST", "/swarm/init"}, {"CAConfig", "SigningCAKey"}},
      {{"POST", "/swarm/init"}, {"Spec", "CAConfig", "SigningCAKey"}},
      {{"POST", "/swarm/unlock"}, {"UnlockKey"}},
      {{"POST", "/configs/create"}, {"Data"}},
      // A config update may repeat the config's Data (Docker rejects a change, but it was sent).
      {{"POST", "/configs/{id}/update"}, {"Data"}},
      // Docker's registry login (POST /auth, an AuthConfig). On the default ignore list, but
      // the list is configurable and its exact match is narrower than the routing.
      {{"POST", "/auth"}, {"password"}},
      {{"POST", "/auth"}, {"auth"}},
      {{"POST", "/auth"}, {"identitytoken"}},
      {{"POST", "/auth"}, {"registrytoken"}},
  };
}

std::vector<std::string> DefaultSensitiveHeaders() {
  return {"Authorization", "Proxy-Authorization", "Cookie",
          "Set-Cookie",    "X-Registry-Auth",     "X-Registry-Config"};
}

}  // namespace mat::audit
