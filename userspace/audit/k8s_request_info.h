// Kubernetes request facts from the method and the request-target, derived exactly as
// k8s.io/apiserver/pkg/endpoints/request/requestinfo.go (RequestInfoFactory.NewRequestInfo)
// does with the default API prefixes ("api", "apis") and grouped prefix ("apis").
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mat::audit {

struct K8sRequestInfo {
  bool is_resource_request = false;
  std::string path;  // the path without the query
  // get, list, watch, create, update, patch, delete, deletecollection, proxy; for
  // non-resource requests the lower-case HTTP method ("get", "post", ...).
  std::string verb;
  std::string api_prefix;  // "api" or "apis"
  std::string api_group;   // "" for the core group
  std::string api_version;
  std::string namespace_;
  std::string resource;
  std::string subresource;
  std::string name;
  std::vector<std::string> parts;

  // RequestInfo.FieldSelector / LabelSelector: the first "fieldSelector" / "labelSelector"
  // query value, kept only for list, watch and deletecollection requests whose verb did not
  // come from a /watch/ or /proxy/ path prefix.
  std::string field_selector;
  std::string label_selector;
  // Go's net/http answers 400 before the apiserver sees this request: empty or non-token
  // method, empty target, a control byte, a '%' not followed by two hex digits in the path, or
  // a target that is neither "*", "/path", an absolute URL nor (for CONNECT) an authority. The
  // fields above are then a best effort from the same rules (bad escapes kept as written).
  bool malformed_request = false;
  // NewRequestInfo returned an error (a lone "watch" or "proxy" after the version, as in
  // "/api/v1/watch"): the apiserver answers 500. The fields hold what Go had filled in by then.
  bool resolver_error = false;
};

// `method` is the HTTP method as sent (upper case); `target` the request-target, with query.
//
// Rules as of kubernetes/apiserver 24a394e5 (pkg/endpoints/request/requestinfo.go) with
// k8s.io/apimachinery eed236ce, behind Go 1.26 net/http:
//  - `path` is Go's URL.Path: "%XX" decoded everywhere, so "%2F" splits a segment like "/"
//    does; '+' stays '+'. An absolute target ("https://host/api/v1/pods") uses the part after
//    the authority (the authority itself is not checked); "*" gives path "*".
//  - "/api/v1/namespaces/{name}" is the namespaces resource named {name}, and its namespace
//    is {name} as well (Go sets Namespace from the segment after "namespaces" either way).
//  - Parts come from the path trimmed of every leading and trailing '/' and split on '/';
//    inner empty segments ("//") are kept, as Go keeps them.
//  - GET/HEAD without a name become list or watch by decoding the query as ListOptions. Only
//    when that whole decode succeeds (integer "limit"/"timeoutSeconds", valid labelSelector
//    and fieldSelector) does "watch" count as Go's bool ("0" and any-case "false" are false,
//    anything else - even empty - true) and does a fieldSelector "metadata.name=X" (or
//    "==") set `name`, unless X is ".", ".." or holds '/' or '%'. On a decode error the name
//    stays empty and watch is anything but "0"/"false" (ASCII case-insensitive).
//  - Query parsing is Go's url.ParseQuery: pairs split on '&', a pair holding ';' or a bad
//    escape is dropped, '+' is a space, the first value of a key wins, and a query of more
//    than 10000 parameters ('&' count + 1) reads as empty (Go's urlmaxqueryparams default).
K8sRequestInfo ParseK8sRequestInfo(std::string_view method, std::string_view target);

}  // namespace mat::audit
