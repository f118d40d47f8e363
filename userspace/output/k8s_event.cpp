#include "output/k8s_event.h"

#include <nlohmann/json.hpp>
#include <string_view>

#include "output/go_json.h"

namespace mat::output {

namespace internal {

bool AppendParsedJson(std::string& out, std::string_view text) {
  const nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return false;
  AppendGoJsonValue(out, value);
  return true;
}

}  // namespace internal

namespace {

using internal::AppendEscaped;
using internal::AppendLiteral;
using internal::LineView;
using internal::MemberWriter;

std::string_view K8sLevelName(audit::Level level) {
  switch (level) {
    case audit::Level::kNone:
      return "None";
    case audit::Level::kMetadata:
      return "Metadata";
    case audit::Level::kRequest:
      return "Request";
  }
  return "None";
}

bool AllDigits(std::string_view text) {
  if (text.empty()) return false;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// "10.0.0.1:443" -> "10.0.0.1", "[fe80::1%eth0]:443" -> "fe80::1%eth0"; anything else (no port,
// a bare IPv6 address, not an address at all) as it is.
std::string_view WithoutPort(std::string_view peer) {
  if (peer.starts_with('[')) {
    const size_t close = peer.find(']');
    if (close == std::string_view::npos || close + 1 == peer.size() || peer[close + 1] != ':' ||
        !AllDigits(peer.substr(close + 2))) {
      return peer;
    }
    return peer.substr(1, close - 1);
  }
  const size_t colon = peer.find(':');
  if (colon == std::string_view::npos || peer.find(':', colon + 1) != std::string_view::npos ||
      !AllDigits(peer.substr(colon + 1))) {
    return peer;
  }
  return peer.substr(0, colon);
}

// Appends `text` escaped, in ASCII lower case. Escaping writes only lower-case letters of its own
// (\n \u00xx \ufffd ...), so lowering the escaped text is lowering the text.
void AppendEscapedLower(std::string& out, std::string_view text) {
  const size_t start = out.size();
  AppendEscaped(out, text);
  for (size_t i = start; i < out.size(); ++i) {
    if (out[i] >= 'A' && out[i] <= 'Z') out[i] = static_cast<char>(out[i] - 'A' + 'a');
  }
}

// Writes the Event of `record` as `view` says, keys in the order of the Go struct's fields.
void WriteK8sEvent(std::string& out, const audit::AuditRecord& record, const UserFacts& user,
                   const std::string& audit_id, uint64_t /*now_ns*/, const LineView& view) {
  const audit::ObjectRef& ref = record.object_ref;
  size_t size = 600 + audit_id.size() + view.request_uri.size() + record.verb.size() +
                record.user_agent.size() + ref.api_group.size() + ref.api_version.size() +
                ref.namespace_.size() + ref.resource.size() + ref.subresource.size() +
                ref.uid.size() + user.uid.size() + user.username.size() + user.login.size() +
                user.license_key.size();
  for (const std::string& ip : record.source_ips) size += ip.size() + 3;
  for (const auto& [key, value] : record.annotations) size += key.size() + value.size() + 6;
  for (const std::string& group : user.groups) size += group.size() + 3;
  if (user.impersonated) size += 100 + user.impersonated->username.size();
  if (view.request_object) size += 20 + record.request_object->text.size();
  out.reserve(out.size() + size);

  AppendLiteral(out, R"({"kind":"Event","apiVersion":"audit.k8s.io/v1","level":")");
  out.append(K8sLevelName(record.level));
  AppendLiteral(out, R"(","auditID":")");
  AppendEscaped(out, audit_id);
  AppendLiteral(out, R"(","stage":")");
  AppendEscaped(out, audit::StageName(record.stage));
  AppendLiteral(out, R"(","requestURI":")");
  AppendEscaped(out, view.request_uri);
  AppendLiteral(out, R"(","verb":")");
  AppendEscapedLower(out, record.verb);
  // authentication/v1 UserInfo: username, uid, groups, extra (a map: keys sorted).
  AppendLiteral(out, R"(","user":{)");
  auto put_string_list = [&](const std::vector<std::string>& values) {
    out.push_back('[');
    for (size_t i = 0; i < values.size(); ++i) {
      out.append(i == 0 ? "\"" : ",\"", i == 0 ? 1 : 2);
      AppendEscaped(out, values[i]);
      out.push_back('"');
    }
    out.push_back(']');
  };
  auto put_groups = [&](MemberWriter& members, const std::vector<std::string>& groups) {
    if (groups.empty()) return;
    members.Separate();
    AppendLiteral(out, R"("groups":)");
    put_string_list(groups);
  };
  MemberWriter user_members(out, 0);
  user_members.Put(R"("username":")", user.username);
  user_members.Put(R"("uid":")", user.uid);
  put_groups(user_members, user.groups);
  if (!user.license_key.empty() || !user.login.empty() || !user.peer_pid.empty() ||
      !user.peer_comm.empty() || !user.peer_container.empty()) {
    user_members.Separate();
    AppendLiteral(out, R"("extra":)");
    // Each value a one-string list.
    constexpr std::string_view kListEnd = R"("])";
    MemberWriter extra(out, '{');
    extra.Put(R"("comm":[")", user.peer_comm, kListEnd);
    extra.Put(R"("container":[")", user.peer_container, kListEnd);
    extra.Put(R"("licenseKey":[")", user.license_key, kListEnd);
    extra.Put(R"("pid":[")", user.peer_pid, kListEnd);
    extra.Put(R"("username":[")", user.login, kListEnd);
    out.push_back('}');
  }
  out.push_back('}');
  if (user.impersonated) {
    // The same UserInfo; its extra is a map (keys sorted, as std::map and Go order them).
    const ImpersonatedUserFacts& as = *user.impersonated;
    AppendLiteral(out, R"(,"impersonatedUser":{)");
    MemberWriter members(out, 0);
    members.Put(R"("username":")", as.username);
    members.Put(R"("uid":")", as.uid);
    put_groups(members, as.groups);
    if (!as.extra.empty()) {
      members.Separate();
      AppendLiteral(out, R"("extra":)");
      MemberWriter extra(out, '{');
      for (const auto& [key, values] : as.extra) {
        extra.Separate();
        AppendGoJsonString(out, key);
        out.push_back(':');
        put_string_list(values);
      }
      out.push_back('}');
    }
    out.push_back('}');
  }
  if (!record.source_ips.empty()) {
    AppendLiteral(out, R"(,"sourceIPs":[)");
    for (size_t i = 0; i < record.source_ips.size(); ++i) {
      out.append(i == 0 ? "\"" : ",\"", i == 0 ? 1 : 2);
      AppendEscaped(out, WithoutPort(record.source_ips[i]));
      out.push_back('"');
    }
    out.push_back(']');
  }
  if (!record.user_agent.empty()) {
    AppendLiteral(out, R"(,"userAgent":")");
    AppendEscaped(out, record.user_agent);
    out.push_back('"');
  }
  if (!ref.empty()) {
    // audit/v1 ObjectReference: resource, namespace, name, uid, apiGroup, apiVersion,
    // resourceVersion, subresource (never a name here, nor a resourceVersion).
    AppendLiteral(out, R"(,"objectRef":{)");
    MemberWriter members(out, 0);
    members.Put(R"("resource":")", ref.resource);
    members.Put(R"("namespace":")", ref.namespace_);
    members.Put(R"("uid":")", ref.uid);
    members.Put(R"("apiGroup":")", ref.api_group);
    members.Put(R"("apiVersion":")", ref.api_version);
    members.Put(R"("subresource":")", ref.subresource);
    out.push_back('}');
  }
  if (record.response_code) {
    // metav1.Status: the ListMeta "metadata" is a struct (omitempty does not drop it); "code"
    // is omitempty.
    AppendLiteral(out, R"(,"responseStatus":{"metadata":{})");
    if (*record.response_code != 0) {
      AppendLiteral(out, R"(,"code":)");
      internal::AppendInt(out, *record.response_code);
    }
    out.push_back('}');
  }
  if (view.request_object) {
    AppendLiteral(out, R"(,"requestObject":)");
    internal::AppendRequestObject(out, *record.request_object);
  }
  AppendLiteral(out, R"(,"requestReceivedTimestamp":)");
  internal::AppendTimeValue(out, record.request_received_ns, record.request_received_ns != 0);
  AppendLiteral(out, R"(,"stageTimestamp":)");
  internal::AppendTimeValue(out, record.stage_ns, record.stage_ns != 0);
  if (internal::HasAnnotations(record, *view.extras)) {
    AppendLiteral(out, R"(,"annotations":)");
    internal::AppendAnnotations(out, record.annotations, view.extras->items());
  }
  out.push_back('}');
}

}  // namespace

std::string FormatK8sEvent(const audit::AuditRecord& record, const UserFacts& user,
                           const std::string& audit_id, const LineOptions& options) {
  const internal::ExtraAnnotations extras = internal::BaseExtras(record);
  std::string out;
  WriteK8sEvent(out, record, user, audit_id, 0,
                {internal::HasRequestObject(record), record.request_uri, &extras});
  const size_t cap = internal::EffectiveCap(options);
  if (cap == 0 || out.size() <= cap) return out;
  return internal::FitLine(record, user, audit_id, 0, cap, &WriteK8sEvent);
}

std::string FormatK8sEvent(const audit::AuditRecord& record, const UserFacts& user,
                           const std::string& audit_id) {
  return FormatK8sEvent(record, user, audit_id, LineOptions{});
}

}  // namespace mat::output
