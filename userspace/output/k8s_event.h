// Encodes an AuditRecord as one audit.k8s.io/v1 Event line, the format Falco's k8saudit plugin
// and other Kubernetes audit consumers read (--format k8s).
#pragma once

#include <cstdint>
#include <string>

#include "audit/policy.h"
#include "output/mke_line.h"

namespace mat::output {

// One line, without the trailing newline, as the apiserver's log backend writes an Event
// (encoding/json of k8s.io/apiserver/pkg/apis/audit/v1.Event): keys in the Go struct's field
// order, not sorted; omitempty fields left out when empty; Go-style escaping as in the MKE line:
//   {"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata"|"Request"|"None",
//    "auditID":..,"stage":..,"requestURI":..,"verb":..,
//    "user":{"username":..,"uid":..,"groups":[..],
//            "extra":{"licenseKey":[..],"username":[login]}},
//    "impersonatedUser":{"username":..,"uid":..,"groups":[..],"extra":{..}},
//    "sourceIPs":[..],"userAgent":..,
//    "objectRef":{"resource":..,"namespace":..,"uid":..,"apiGroup":..,"apiVersion":..,
//                 "subresource":..},
//    "responseStatus":{"metadata":{},"code":N},"requestObject":..,
//    "requestReceivedTimestamp":..,"stageTimestamp":..,"annotations":{..}}
// - verb: the record's verb in lower case (a Kubernetes verb, or for Docker and MKE calls, which
//   are written as non-resource requests, the lower-case HTTP method as the apiserver says it).
// - user: username and uid omitted when empty, groups when there are none; extra holds
//   licenseKey and username (the login) each only when non-empty, and is omitted when both are.
// - impersonatedUser: only when user.impersonated is set; its fields omitted when empty, extra
//   keys sorted.
// - sourceIPs: the peers' addresses without the port ("10.0.0.1:443" -> "10.0.0.1",
//   "[fe80::1]:443" -> "fe80::1"), as the apiserver records them; omitted when there are none.
// - userAgent: omitted when empty. objectRef: omitted when empty, only its non-empty fields;
//   never a name (MKE records ids only).
// - responseStatus: a metav1.Status: "metadata":{} always, "code" omitted when 0; the whole
//   object only when the record has a response code.
// - requestObject: as in the MKE line (kJson re-encoded with sorted keys, kString a string,
//   kRedacted the string audit::kRedactedMarker), for any request that has one.
// - requestReceivedTimestamp, stageTimestamp: metav1.MicroTime ("2019-01-30T17:21:45.316157Z"),
//   null when unknown; stageTimestamp is the time of the record's stage at every stage.
// - annotations: as in the MKE line (record.annotations merged with the writer's own),
//   keys sorted; omitted when there are none.
// The line size cap of LineOptions applies exactly as to the MKE line.
std::string FormatK8sEvent(const audit::AuditRecord& record, const UserFacts& user,
                           const std::string& audit_id, const LineOptions& options);
// The same with the default LineOptions (a 16383-byte cap).
std::string FormatK8sEvent(const audit::AuditRecord& record, const UserFacts& user,
                           const std::string& audit_id);

}  // namespace mat::output
