// ParseK8sRequestInfo against k8s.io/apiserver's RequestInfoFactory.NewRequestInfo. The first
// groups of rows are the cases of the apiserver's own requestinfo_test.go (TestGetAPIRequestInfo,
// TestGetNonAPIRequestInfo, TestSelectorParsing at kubernetes/apiserver 24a394e5); the label and
// field selector validity rows come from k8s.io/apimachinery's labels/fields selector_test.go.
// Where the Go test leaves a field unchecked (apiPrefix/apiGroup, the namespace of non-resource
// requests, ...), the value here is what the Go code computes. Every row asserts every field.
#include "audit/k8s_request_info.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mat::audit {
namespace {

using namespace std::string_view_literals;
using Parts = std::vector<std::string>;

struct Case {
  std::string_view method;
  std::string_view target;
  bool resource = false;
  std::string_view verb;
  std::string_view prefix;
  std::string_view group;
  std::string_view version;
  std::string_view ns;
  std::string_view resource_name;
  std::string_view subresource;
  std::string_view name;
  Parts parts;
  std::string_view field_selector;
  std::string_view label_selector;
  // Unset: the target up to its '?'.
  std::optional<std::string_view> path;
  bool malformed = false;
  bool resolver_error = false;

  Case Selectors(std::string_view field, std::string_view label) const {
    Case c = *this;
    c.field_selector = field;
    c.label_selector = label;
    return c;
  }
  Case Path(std::string_view p) const {
    Case c = *this;
    c.path = p;
    return c;
  }
  Case Malformed() const {
    Case c = *this;
    c.malformed = true;
    return c;
  }
  Case ResolverError() const {
    Case c = *this;
    c.resolver_error = true;
    return c;
  }
};

// A resource request; selectors, path and flags as the modifiers above set them.
Case Res(std::string_view method, std::string_view target, std::string_view verb,
         std::string_view prefix, std::string_view group, std::string_view version,
         std::string_view ns, std::string_view resource_name, std::string_view subresource,
         std::string_view name, Parts parts) {
  return Case{method,  target, true,          verb,        prefix, group,
              version, ns,     resource_name, subresource, name,   std::move(parts)};
}

// A non-resource request: group, version, namespace, resource, subresource, name and parts
// all empty.
Case NonRes(std::string_view method, std::string_view target, std::string_view verb,
            std::string_view prefix) {
  return Case{method, target, false, verb, prefix};
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.method << " " << c.target; }

std::string_view ExpectedPath(const Case& c) {
  if (c.path) return *c.path;
  return c.target.substr(0, c.target.find('?'));
}

void ExpectCase(const Case& c) {
  const K8sRequestInfo info = ParseK8sRequestInfo(c.method, c.target);
  EXPECT_EQ(info.is_resource_request, c.resource);
  EXPECT_EQ(info.path, ExpectedPath(c));
  EXPECT_EQ(info.verb, c.verb);
  EXPECT_EQ(info.api_prefix, c.prefix);
  EXPECT_EQ(info.api_group, c.group);
  EXPECT_EQ(info.api_version, c.version);
  EXPECT_EQ(info.namespace_, c.ns);
  EXPECT_EQ(info.resource, c.resource_name);
  EXPECT_EQ(info.subresource, c.subresource);
  EXPECT_EQ(info.name, c.name);
  EXPECT_EQ(info.parts, c.parts);
  EXPECT_EQ(info.field_selector, c.field_selector);
  EXPECT_EQ(info.label_selector, c.label_selector);
  EXPECT_EQ(info.malformed_request, c.malformed);
  EXPECT_EQ(info.resolver_error, c.resolver_error);
}

class K8sRequestInfoTable : public ::testing::TestWithParam<Case> {};

TEST_P(K8sRequestInfoTable, AllFields) { ExpectCase(GetParam()); }

// TestGetAPIRequestInfo's success cases (the Go test expects apiPrefix "api" for /apis/... but
// never compares it; Go computes "apis").
const std::vector<Case> kApiserverResourceCases = {
    Res("GET", "/api/v1/namespaces", "list", "api", "", "v1", "", "namespaces", "", "",
        {"namespaces"}),
    Res("GET", "/api/v1/namespaces/other", "get", "api", "", "v1", "other", "namespaces", "",
        "other", {"namespaces", "other"}),
    Res("GET", "/api/v1/namespaces/other/pods", "list", "api", "", "v1", "other", "pods", "", "",
        {"pods"}),
    Res("GET", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "",
        "foo", {"pods", "foo"}),
    Res("HEAD", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "",
        "foo", {"pods", "foo"}),
    Res("GET", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "", {"pods"}),
    Res("HEAD", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "", {"pods"}),
    // special verbs
    Res("GET", "/api/v1/proxy/namespaces/other/pods/foo", "proxy", "api", "", "v1", "other", "pods",
        "", "foo", {"pods", "foo"}),
    Res("GET", "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource", "proxy", "api",
        "", "v1", "other", "pods", "", "foo",
        {"pods", "foo", "subpath", "not", "a", "subresource"}),
    Res("GET", "/api/v1/watch/pods", "watch", "api", "", "v1", "", "pods", "", "", {"pods"}),
    Res("GET", "/api/v1/pods?watch=true", "watch", "api", "", "v1", "", "pods", "", "", {"pods"}),
    Res("GET", "/api/v1/pods?watch=false", "list", "api", "", "v1", "", "pods", "", "", {"pods"}),
    Res("GET", "/api/v1/watch/namespaces/other/pods", "watch", "api", "", "v1", "other", "pods", "",
        "", {"pods"}),
    Res("GET", "/api/v1/namespaces/other/pods?watch=1", "watch", "api", "", "v1", "other", "pods",
        "", "", {"pods"}),
    Res("GET", "/api/v1/namespaces/other/pods?watch=0", "list", "api", "", "v1", "other", "pods",
        "", "", {"pods"}),
    // subresource identification
    Res("GET", "/api/v1/namespaces/other/pods/foo/status", "get", "api", "", "v1", "other", "pods",
        "status", "foo", {"pods", "foo", "status"}),
    Res("GET", "/api/v1/namespaces/other/pods/foo/proxy/subpath", "get", "api", "", "v1", "other",
        "pods", "proxy", "foo", {"pods", "foo", "proxy", "subpath"}),
    Res("PUT", "/api/v1/namespaces/other/finalize", "update", "api", "", "v1", "other",
        "namespaces", "finalize", "other", {"namespaces", "other", "finalize"}),
    Res("PUT", "/api/v1/namespaces/other/status", "update", "api", "", "v1", "other", "namespaces",
        "status", "other", {"namespaces", "other", "status"}),
    // verb identification
    Res("PATCH", "/api/v1/namespaces/other/pods/foo", "patch", "api", "", "v1", "other", "pods", "",
        "foo", {"pods", "foo"}),
    Res("DELETE", "/api/v1/namespaces/other/pods/foo", "delete", "api", "", "v1", "other", "pods",
        "", "foo", {"pods", "foo"}),
    Res("POST", "/api/v1/namespaces/other/pods", "create", "api", "", "v1", "other", "pods", "", "",
        {"pods"}),
    // deletecollection verb identification
    Res("DELETE", "/api/v1/nodes", "deletecollection", "api", "", "v1", "", "nodes", "", "",
        {"nodes"}),
    Res("DELETE", "/api/v1/namespaces", "deletecollection", "api", "", "v1", "", "namespaces", "",
        "", {"namespaces"}),
    Res("DELETE", "/api/v1/namespaces/other/pods", "deletecollection", "api", "", "v1", "other",
        "pods", "", "", {"pods"}),
    Res("DELETE", "/apis/extensions/v1/namespaces/other/pods", "deletecollection", "apis",
        "extensions", "v1", "other", "pods", "", "", {"pods"}),
    // api group and version identification
    Res("POST", "/apis/extensions/v1/namespaces/other/pods", "create", "apis", "extensions", "v1",
        "other", "pods", "", "", {"pods"}),
    Res("POST", "/apis/extensions/v1beta3/namespaces/other/pods", "create", "apis", "extensions",
        "v1beta3", "other", "pods", "", "", {"pods"}),
};
INSTANTIATE_TEST_SUITE_P(ApiserverResource, K8sRequestInfoTable,
                         ::testing::ValuesIn(kApiserverResourceCases));

// TestGetAPIRequestInfo's error cases and TestGetNonAPIRequestInfo. A prefix is recorded before
// the grouped-prefix length check, so "/apis/x/y" keeps "apis".
const std::vector<Case> kApiserverNonResourceCases = {
    NonRes("GET", "/", "get", ""),
    NonRes("GET", "/api/version/", "get", ""),
    NonRes("GET", "/apis/group/version/", "get", "apis"),
    NonRes("GET", "/badprefix/version/resource", "get", ""),
    NonRes("GET", "/apis/version/resource", "get", "apis"),
    NonRes("GET", "/not-api/version/resource", "get", ""),
    NonRes("GET", "/apis/extensions/v1beta1", "get", "apis"),
    NonRes("GET", "/apis/extensions/v1beta1/", "get", "apis"),
    NonRes("GET", "/api/version", "get", ""),
    NonRes("GET", "/api", "get", ""),
    // Go's test builds "" with http.NewRequest; a server never sees an empty target (400).
    NonRes("GET", "", "get", "").Malformed(),
    // resource paths of TestGetNonAPIRequestInfo
    Res("GET", "/api/version/resource", "list", "api", "", "version", "", "resource", "", "",
        {"resource"}),
    Res("GET", "/apis/group/version/resource/name/subresource", "get", "apis", "group", "version",
        "", "resource", "subresource", "name", {"resource", "name", "subresource"}),
    Res("GET", "/api/version/resource/name/subresource", "get", "api", "", "version", "",
        "resource", "subresource", "name", {"resource", "name", "subresource"}),
    Res("GET", "/apis/batch/v1/job", "list", "apis", "batch", "v1", "", "job", "", "", {"job"}),
    Res("GET", "/apis/batch/v1/job/foo", "get", "apis", "batch", "v1", "", "job", "", "foo",
        {"job", "foo"}),
    Res("GET", "/apis/batch/v1/job/foo/scale", "get", "apis", "batch", "v1", "", "job", "scale",
        "foo", {"job", "foo", "scale"}),
    // more non-resource paths: verb is the lower-case method
    NonRes("GET", "/apis", "get", ""),
    NonRes("GET", "/apis/apps", "get", ""),
    NonRes("GET", "/api/v1", "get", ""),
    NonRes("GET", "/apis/apps/v1", "get", "apis"),
    NonRes("POST", "/healthz?verbose=1", "post", ""),
    NonRes("OPTIONS", "/version", "options", ""),
    NonRes("GET", "/openapi/v3/apis/apps/v1", "get", ""),
    NonRes("GET", "/Api/v1/pods", "get", ""),
};
INSTANTIATE_TEST_SUITE_P(ApiserverNonResource, K8sRequestInfoTable,
                         ::testing::ValuesIn(kApiserverNonResourceCases));

// TestSelectorParsing
const std::vector<Case> kApiserverSelectorCases = {
    Res("GET", "/apis/group/version/resource", "list", "apis", "group", "version", "", "resource",
        "", "", {"resource"}),
    Res("GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1", "list", "apis",
        "group", "version", "", "resource", "", "name1", {"resource"})
        .Selectors("metadata.name=name1", ""),
    Res("GET", "/apis/group/version/resource?watch=true&fieldSelector=metadata.name=name1", "watch",
        "apis", "group", "version", "", "resource", "", "name1", {"resource"})
        .Selectors("metadata.name=name1", ""),
    Res("GET", "/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux", "list",
        "apis", "group", "version", "", "resource", "", "", {"resource"})
        .Selectors("foo=bar", "baz=qux"),
    Res("GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo", "list", "apis",
        "group", "version", "", "resource", "", "", {"resource"})
        .Selectors("metadata.name=name1,foo", ""),
    Res("GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=true",
        "watch", "apis", "group", "version", "", "resource", "", "", {"resource"})
        .Selectors("metadata.name=name1,foo", ""),
    Res("GET", "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=false",
        "list", "apis", "group", "version", "", "resource", "", "", {"resource"})
        .Selectors("metadata.name=name1,foo", ""),
    Res("DELETE", "/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux",
        "deletecollection", "apis", "group", "version", "", "resource", "", "", {"resource"})
        .Selectors("foo=bar", "baz=qux"),
    Res("GET",
        "/apis/group/version/"
        "resource?fieldSelector=metadata.name=foo&fieldSelector=metadata.name=bar&labelSelector="
        "foo=bar&labelSelector=foo=baz",
        "list", "apis", "group", "version", "", "resource", "", "foo", {"resource"})
        .Selectors("metadata.name=foo", "foo=bar"),
    Res("GET", "/apis/group/version/resource/name?fieldSelector=foo=bar&labelSelector=foo=bar",
        "get", "apis", "group", "version", "", "resource", "", "name", {"resource", "name"}),
    Res("GET",
        "/apis/group/version/watch/resource?fieldSelector=metadata.name=foo&labelSelector=foo=bar",
        "watch", "apis", "group", "version", "", "resource", "", "", {"resource"}),
    Res("GET",
        "/apis/group/version/watch/resource/"
        "name?fieldSelector=metadata.name=foo&labelSelector=foo=bar",
        "watch", "apis", "group", "version", "", "resource", "", "name", {"resource", "name"}),
};
INSTANTIATE_TEST_SUITE_P(ApiserverSelectors, K8sRequestInfoTable,
                         ::testing::ValuesIn(kApiserverSelectorCases));

// The "watch" query parameter and the ListOptions decode around it.
const std::vector<Case> kWatchCases = {
    Res("GET", "/api/v1/pods?watch=TRUE", "watch", "api", "", "v1", "", "pods", "", "", {"pods"}),
    Res("GET", "/api/v1/pods?watch=FaLsE", "list", "api", "", "v1", "", "pods", "", "", {"pods"}),
    // Any value but "0"/"false" is true, even an empty one or a bare key.
    Res("GET", "/api/v1/pods?watch=", "watch", "api", "", "v1", "", "pods", "", "", {"pods"}),
    Res("GET", "/api/v1/pods?watch", "watch", "api", "", "v1", "", "pods", "", "", {"pods"}),
    Res("GET", "/api/v1/pods?watch=no", "watch", "api", "", "v1", "", "pods", "", "", {"pods"}),
    Res("GET", "/api/v1/pods?watch=00", "watch", "api", "", "v1", "", "pods", "", "", {"pods"}),
    // strings.EqualFold folds U+017F (long s) to 's'; the fallback's strings.ToLower does not.
    Res("GET", "/api/v1/pods?watch=fal%C5%BFe", "list", "api", "", "v1", "", "pods", "", "",
        {"pods"}),
    Res("GET", "/api/v1/pods?watch=fal%C5%BFe&limit=x", "watch", "api", "", "v1", "", "pods", "",
        "", {"pods"}),
    Res("GET", "/api/v1/pods?watch=False&limit=x", "list", "api", "", "v1", "", "pods", "", "",
        {"pods"}),
    // The first value wins; keys are case-sensitive and %-decoded; '+' is a space.
    Res("GET", "/api/v1/pods?watch=0&watch=1", "list", "api", "", "v1", "", "pods", "", "",
        {"pods"}),
    Res("GET", "/api/v1/pods?Watch=true", "list", "api", "", "v1", "", "pods", "", "", {"pods"}),
    Res("GET", "/api/v1/pods?%77atch=1", "watch", "api", "", "v1", "", "pods", "", "", {"pods"}),
    Res("GET", "/api/v1/pods?watch=+0", "watch", "api", "", "v1", "", "pods", "", "", {"pods"}),
    // A pair holding ';' or a bad escape is dropped.
    Res("GET", "/api/v1/pods?watch=true;x=1", "list", "api", "", "v1", "", "pods", "", "",
        {"pods"}),
    Res("GET", "/api/v1/pods?watch=%zz", "list", "api", "", "v1", "", "pods", "", "", {"pods"}),
    Res("GET", "/api/v1/pods?watch=%zz&watch=1", "watch", "api", "", "v1", "", "pods", "", "",
        {"pods"}),
    Res("GET", "/api/v1/pods?&&watch=1&&", "watch", "api", "", "v1", "", "pods", "", "", {"pods"}),
    // Only a nameless GET/HEAD reads the query.
    Res("POST", "/api/v1/namespaces/ns/pods?watch=true", "create", "api", "", "v1", "ns", "pods",
        "", "", {"pods"}),
    Res("GET", "/api/v1/namespaces/ns/pods/foo?watch=true", "get", "api", "", "v1", "ns", "pods",
        "", "foo", {"pods", "foo"}),
    Res("GET", "/api/v1/watch/pods?watch=false", "watch", "api", "", "v1", "", "pods", "", "",
        {"pods"}),
    Res("HEAD", "/apis/apps/v1/deployments?watch=1", "watch", "apis", "apps", "v1", "",
        "deployments", "", "", {"deployments"}),
    // Other ListOptions fields: integers must parse (strconv.ParseInt, base 10, 64 bits).
    Res("GET", "/api/v1/pods?limit=500&timeoutSeconds=-1&resourceVersion=x&watch=1", "watch", "api",
        "", "v1", "", "pods", "", "", {"pods"}),
};
INSTANTIATE_TEST_SUITE_P(Watch, K8sRequestInfoTable, ::testing::ValuesIn(kWatchCases));

// The metadata.name field selector and the selectors kept for list/watch/deletecollection.
const std::vector<Case> kFieldSelectorNameCases = {
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name==foo", "list", "api", "", "v1", "", "pods",
        "", "foo", {"pods"})
        .Selectors("metadata.name==foo", ""),
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name!=foo", "list", "api", "", "v1", "", "pods",
        "", "", {"pods"})
        .Selectors("metadata.name!=foo", ""),
    Res("GET", "/api/v1/pods?fieldSelector=metadata.namespace=foo", "list", "api", "", "v1", "",
        "pods", "", "", {"pods"})
        .Selectors("metadata.namespace=foo", ""),
    // Go sorts the terms: the lexically first metadata.name term gives the name.
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=b,metadata.name=a", "list", "api", "",
        "v1", "", "pods", "", "a", {"pods"})
        .Selectors("metadata.name=b,metadata.name=a", ""),
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=a,metadata.name==b", "list", "api", "",
        "v1", "", "pods", "", "b", {"pods"})
        .Selectors("metadata.name=a,metadata.name==b", ""),
    Res("GET", "/api/v1/pods?fieldSelector=spec.nodeName=n1,metadata.name=p", "list", "api", "",
        "v1", "", "pods", "", "p", {"pods"})
        .Selectors("spec.nodeName=n1,metadata.name=p", ""),
    // Escapes in the value; a name with '/' or '%', or "." / "..", is not taken.
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=a%5C,b", "list", "api", "", "v1", "",
        "pods", "", "a,b", {"pods"})
        .Selectors("metadata.name=a\\,b", ""),
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=a%5C%3Db", "list", "api", "", "v1", "",
        "pods", "", "a=b", {"pods"})
        .Selectors("metadata.name=a\\=b", ""),
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=a%5Cb", "list", "api", "", "v1", "",
        "pods", "", "", {"pods"})
        .Selectors("metadata.name=a\\b", ""),
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=a%2Fb", "list", "api", "", "v1", "",
        "pods", "", "", {"pods"})
        .Selectors("metadata.name=a/b", ""),
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=a%25", "list", "api", "", "v1", "", "pods",
        "", "", {"pods"})
        .Selectors("metadata.name=a%", ""),
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=..", "list", "api", "", "v1", "", "pods",
        "", "", {"pods"})
        .Selectors("metadata.name=..", ""),
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=...", "list", "api", "", "v1", "", "pods",
        "", "...", {"pods"})
        .Selectors("metadata.name=...", ""),
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=a+b", "list", "api", "", "v1", "", "pods",
        "", "a b", {"pods"})
        .Selectors("metadata.name=a b", ""),
    // Go's ParseRequestURI keeps '#' in the query.
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=foo#frag", "list", "api", "", "v1", "",
        "pods", "", "foo#frag", {"pods"})
        .Selectors("metadata.name=foo#frag", ""),
    Res("GET", "/apis/apps/v1/namespaces/default/deployments?fieldSelector=metadata.name%3Dweb",
        "list", "apis", "apps", "v1", "default", "deployments", "", "web", {"deployments"})
        .Selectors("metadata.name=web", ""),
    // A value needing unescaping is rebuilt rune by rune: invalid UTF-8 becomes U+FFFD.
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=%FF%5C%2C", "list", "api", "", "v1", "",
        "pods", "", "\xEF\xBF\xBD,", {"pods"})
        .Selectors("metadata.name=\xFF\\,", ""),
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=%FF", "list", "api", "", "v1", "", "pods",
        "", "\xFF", {"pods"})
        .Selectors("metadata.name=\xFF", ""),
    // The rest of the decode must succeed for the name to count.
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=foo&limit=500", "list", "api", "", "v1",
        "", "pods", "", "foo", {"pods"})
        .Selectors("metadata.name=foo", ""),
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=foo&limit=5x", "list", "api", "", "v1", "",
        "pods", "", "", {"pods"})
        .Selectors("metadata.name=foo", ""),
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=foo&limit=", "list", "api", "", "v1", "",
        "pods", "", "", {"pods"})
        .Selectors("metadata.name=foo", ""),
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=foo&limit=-9223372036854775808", "list",
        "api", "", "v1", "", "pods", "", "foo", {"pods"})
        .Selectors("metadata.name=foo", ""),
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=foo&timeoutSeconds=9223372036854775808",
        "list", "api", "", "v1", "", "pods", "", "", {"pods"})
        .Selectors("metadata.name=foo", ""),
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=foo&timeoutSeconds=%2B30", "list", "api",
        "", "v1", "", "pods", "", "foo", {"pods"})
        .Selectors("metadata.name=foo", ""),
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=foo&labelSelector=x+in+(a,b)", "list",
        "api", "", "v1", "", "pods", "", "foo", {"pods"})
        .Selectors("metadata.name=foo", "x in (a,b)"),
    Res("GET", "/api/v1/pods?fieldSelector=metadata.name=foo&labelSelector=x=a%7C%7Cy=b&watch=1",
        "watch", "api", "", "v1", "", "pods", "", "", {"pods"})
        .Selectors("metadata.name=foo", "x=a||y=b"),
    // deletecollection keeps the selectors but never takes a name from them.
    Res("DELETE", "/api/v1/namespaces/ns/pods?fieldSelector=metadata.name=foo", "deletecollection",
        "api", "", "v1", "ns", "pods", "", "", {"pods"})
        .Selectors("metadata.name=foo", ""),
    Res("DELETE", "/api/v1/pods?labelSelector=app%3Dweb", "deletecollection", "api", "", "v1", "",
        "pods", "", "", {"pods"})
        .Selectors("", "app=web"),
    // get, create and the /watch/ prefix keep no selectors.
    Res("DELETE", "/api/v1/pods/p?labelSelector=app%3Dweb", "delete", "api", "", "v1", "", "pods",
        "", "p", {"pods", "p"}),
    Res("POST", "/api/v1/pods?fieldSelector=metadata.name=foo", "create", "api", "", "v1", "",
        "pods", "", "", {"pods"}),
    Res("GET", "/api/v1/watch/pods?fieldSelector=metadata.name=foo", "watch", "api", "", "v1", "",
        "pods", "", "", {"pods"}),
};
INSTANTIATE_TEST_SUITE_P(FieldSelectorName, K8sRequestInfoTable,
                         ::testing::ValuesIn(kFieldSelectorNameCases));

// Paths: namespaces, subresources, special verbs, escapes, empty segments, odd targets.
const std::vector<Case> kPathCases = {
    Res("GET", "/api/v1/namespaces/", "list", "api", "", "v1", "", "namespaces", "", "",
        {"namespaces"}),
    Res("GET", "/api/v1/namespaces/default/pods/", "list", "api", "", "v1", "default", "pods", "",
        "", {"pods"}),
    Res("DELETE", "/api/v1/namespaces/x", "delete", "api", "", "v1", "x", "namespaces", "", "x",
        {"namespaces", "x"}),
    Res("GET", "/api/v1/namespaces/status", "get", "api", "", "v1", "status", "namespaces", "",
        "status", {"namespaces", "status"}),
    Res("GET", "/api/v1/namespaces/ns/status/x", "get", "api", "", "v1", "ns", "namespaces",
        "status", "ns", {"namespaces", "ns", "status", "x"}),
    Res("GET", "/apis/apps/v1/namespaces/ns/finalize", "get", "apis", "apps", "v1", "ns",
        "namespaces", "finalize", "ns", {"namespaces", "ns", "finalize"}),
    Res("PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale", "update", "apis", "apps",
        "v1", "default", "deployments", "scale", "web", {"deployments", "web", "scale"}),
    Res("POST", "/api/v1/namespaces/default/pods/p/exec?command=ls&stdout=true", "create", "api",
        "", "v1", "default", "pods", "exec", "p", {"pods", "p", "exec"}),
    Res("GET", "/api/v1/watch/namespaces", "watch", "api", "", "v1", "", "namespaces", "", "",
        {"namespaces"}),
    Res("GET", "/api/v1/watch/namespaces/ns/pods/p", "watch", "api", "", "v1", "ns", "pods", "",
        "p", {"pods", "p"}),
    Res("GET", "/api/v1/watch/namespaces/ns/pods/p/status", "watch", "api", "", "v1", "ns", "pods",
        "status", "p", {"pods", "p", "status"}),
    Res("POST", "/api/v1/proxy/nodes/n1/some/path", "proxy", "api", "", "v1", "", "nodes", "", "n1",
        {"nodes", "n1", "some", "path"}),
    Res("GET", "/apis/g/v1/proxy/things", "proxy", "apis", "g", "v1", "", "things", "", "",
        {"things"}),
    // A lone special verb: NewRequestInfo errors (500) after filling prefix, group, version.
    Res("GET", "/api/v1/watch", "get", "api", "", "v1", "", "", "", "", {}).ResolverError(),
    Res("DELETE", "/apis/apps/v1/proxy/", "delete", "apis", "apps", "v1", "", "", "", "", {})
        .ResolverError(),
    // %XX decodes before splitting, so %2F splits a segment; '+' stays.
    Res("GET", "/api/v1/namespaces/a%2Fb/pods", "get", "api", "", "v1", "a", "b", "", "pods",
        {"b", "pods"})
        .Path("/api/v1/namespaces/a/b/pods"),
    Res("GET", "/api/v1/pods/%66oo", "get", "api", "", "v1", "", "pods", "", "foo", {"pods", "foo"})
        .Path("/api/v1/pods/foo"),
    Res("GET", "/api/v1/namespaces/default/pods/a+b", "get", "api", "", "v1", "default", "pods", "",
        "a+b", {"pods", "a+b"}),
    Res("GET", "/%61pi/v1/pods", "list", "api", "", "v1", "", "pods", "", "", {"pods"})
        .Path("/api/v1/pods"),
    // A bad escape: net/http answers 400; the facts are a best effort over the raw text.
    Res("GET", "/api/v1/namespaces/default/pods/foo%zz", "get", "api", "", "v1", "default", "pods",
        "", "foo%zz", {"pods", "foo%zz"})
        .Malformed(),
    Res("GET", "/api/v1/pods/foo%4", "get", "api", "", "v1", "", "pods", "", "foo%4",
        {"pods", "foo%4"})
        .Malformed(),
    // Empty segments stay; only the ends are trimmed.
    Res("GET", "/api//v1/pods", "get", "api", "", "", "", "v1", "", "pods", {"v1", "pods"}),
    Res("GET", "///api/v1/pods///", "list", "api", "", "v1", "", "pods", "", "", {"pods"}),
    Res("GET", "/api/v1/pods//status", "list", "api", "", "v1", "", "pods", "status", "",
        {"pods", "", "status"}),
    Res("GET", "/api/v1/namespaces//pods", "list", "api", "", "v1", "", "pods", "", "", {"pods"}),
    // Absolute and other target forms.
    Res("GET", "https://kube.example:6443/api/v1/namespaces/default/pods?watch=1", "watch", "api",
        "", "v1", "default", "pods", "", "", {"pods"})
        .Path("/api/v1/namespaces/default/pods"),
    Res("GET", "HTTP://h/apis/apps/v1/deployments", "list", "apis", "apps", "v1", "", "deployments",
        "", "", {"deployments"})
        .Path("/apis/apps/v1/deployments"),
    Res("GET", "http:/api/v1/pods", "list", "api", "", "v1", "", "pods", "", "", {"pods"})
        .Path("/api/v1/pods"),
    NonRes("GET", "http://host", "get", "").Path(""),
    NonRes("GET", "http://host?x=/api/v1/pods", "get", "").Path(""),
    NonRes("GET", "mailto:x/api/v1/pods", "get", "").Path(""),
    NonRes("OPTIONS", "*", "options", ""),
    NonRes("CONNECT", "kube:443", "connect", "").Path(""),
    NonRes("CONNECT", "*", "connect", "").Path(""),
    Res("CONNECT", "kube:443/api/v1/pods", "", "api", "", "v1", "", "pods", "", "", {"pods"})
        .Path("/api/v1/pods"),
    // Targets net/http rejects.
    NonRes("GET", "?watch=true", "get", "").Path("").Malformed(),
    Res("GET", "api/v1/pods", "list", "api", "", "v1", "", "pods", "", "", {"pods"}).Malformed(),
    NonRes("GET", ":/api/v1/pods", "get", "").Malformed(),
    NonRes("GET", "*?x", "get", "").Path("*").Malformed(),
    Res("GET", "/api/v1/pods\x01", "list", "api", "", "v1", "", "pods\x01", "", "", {"pods\x01"})
        .Malformed(),
    Res("GET", "/api/v1/pods/a\x7f", "get", "api", "", "v1", "", "pods", "", "a\x7f",
        {"pods", "a\x7f"})
        .Malformed(),
    // Methods: the kube verb switch is case-sensitive; net/http wants a token.
    Res("", "/api/v1/pods", "", "api", "", "v1", "", "pods", "", "", {"pods"}).Malformed(),
    NonRes("", "/healthz", "", "").Malformed(),
    Res("get", "/api/v1/pods", "", "api", "", "v1", "", "pods", "", "", {"pods"}),
    Res("OPTIONS", "/api/v1/pods", "", "api", "", "v1", "", "pods", "", "", {"pods"}),
    NonRes("G ET", "/healthz", "g et", "").Malformed(),
};
INSTANTIATE_TEST_SUITE_P(Paths, K8sRequestInfoTable, ::testing::ValuesIn(kPathCases));

// ---------------------------------------------------------------------------------------------
// Selector validity, seen through whether a metadata.name field selector still names the object.

std::string QueryEscape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '-' ||
        u == '.' || u == '_' || u == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

struct SelectorValidity {
  std::string_view selector;
  bool valid;
};

void PrintTo(const SelectorValidity& s, std::ostream* os) {
  *os << "\"" << s.selector << "\" " << (s.valid ? "valid" : "invalid");
}

class LabelSelectorValidity : public ::testing::TestWithParam<SelectorValidity> {};

TEST_P(LabelSelectorValidity, DecidesWhetherTheNameCounts) {
  const SelectorValidity& c = GetParam();
  const std::string target = "/api/v1/namespaces/ns/pods?fieldSelector=metadata.name%3Dn" +
                             std::string("&labelSelector=") + QueryEscape(c.selector);
  const K8sRequestInfo info = ParseK8sRequestInfo("GET", target);
  EXPECT_TRUE(info.is_resource_request);
  EXPECT_EQ(info.path, "/api/v1/namespaces/ns/pods");
  EXPECT_EQ(info.verb, "list");
  EXPECT_EQ(info.api_prefix, "api");
  EXPECT_EQ(info.api_group, "");
  EXPECT_EQ(info.api_version, "v1");
  EXPECT_EQ(info.namespace_, "ns");
  EXPECT_EQ(info.resource, "pods");
  EXPECT_EQ(info.subresource, "");
  EXPECT_EQ(info.name, c.valid ? "n" : "");
  EXPECT_EQ(info.parts, Parts{"pods"});
  EXPECT_EQ(info.field_selector, "metadata.name=n");
  EXPECT_EQ(info.label_selector, c.selector);
  EXPECT_FALSE(info.malformed_request);
  EXPECT_FALSE(info.resolver_error);
}

// labels/selector_test.go TestSelectorParse and TestSetSelectorParser, then our own.
INSTANTIATE_TEST_SUITE_P(
    Apimachinery, LabelSelectorValidity,
    ::testing::Values(
        SelectorValidity{"x=a,y=b,z=c", true}, SelectorValidity{"", true},
        SelectorValidity{"x!=a,y=b", true}, SelectorValidity{"x=", true},
        SelectorValidity{"x= ", true}, SelectorValidity{"x=,z= ", true},
        SelectorValidity{"x= ,z= ", true}, SelectorValidity{"!x", true},
        SelectorValidity{"x>1", true}, SelectorValidity{"x>1,z<5", true},
        SelectorValidity{"x=a||y=b", false}, SelectorValidity{"x==a==b", false},
        SelectorValidity{"!x=a", false}, SelectorValidity{"x<a", false},
        SelectorValidity{"\rx", true},
        SelectorValidity{"this-is-a-dns.domain.com/key-with-dash", true},
        SelectorValidity{"this-is-another-dns.domain.com/key-with-dash in (so,what)", true},
        SelectorValidity{"0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)", true},
        SelectorValidity{"foo  in\t (abc)", true}, SelectorValidity{"x notin\n (abc)", true},
        SelectorValidity{"x  notin\t\t\t(abc,def)", true}, SelectorValidity{"x in (abc,def)", true},
        SelectorValidity{"x in (abc,)", true}, SelectorValidity{"x in (abc,abc)", true},
        SelectorValidity{"x in ()", true}, SelectorValidity{"x in (a,,)", true},
        SelectorValidity{"x in (a,,,)", true}, SelectorValidity{"x in (a,,,,,,)", true},
        SelectorValidity{"x in (a,,a,,a,,a,,)", true},
        SelectorValidity{"x notin (abc,,def),bar,z in (),w", true},
        SelectorValidity{"x,y in (a)", true}, SelectorValidity{"x=a", true},
        SelectorValidity{"x<7", true}, SelectorValidity{"x=a,y!=b", true},
        SelectorValidity{"x=a,y!=b,z in (h,i,j)", true}, SelectorValidity{"x,,y", false},
        SelectorValidity{",x,y", false}, SelectorValidity{"x nott in (y)", false},
        SelectorValidity{"x notin ( )", true}, SelectorValidity{"x notin (, a)", true},
        SelectorValidity{"a in (xyz),", false}, SelectorValidity{"a in (xyz)b notin ()", false},
        SelectorValidity{"a ", true}, SelectorValidity{"a in (x,y,notin, z,in)", true},
        SelectorValidity{"a in (xyz abc)", false}, SelectorValidity{"a notin(", false},
        SelectorValidity{"a (", false}, SelectorValidity{"(", false}));

INSTANTIATE_TEST_SUITE_P(
    Ours, LabelSelectorValidity,
    ::testing::Values(
        SelectorValidity{"x>-1", false},  // "-1" parses as an integer but is no label value
        SelectorValidity{"x>", false}, SelectorValidity{"x>01", true},
        SelectorValidity{"x<99999999999999999999", false}, SelectorValidity{"in in (in)", true},
        SelectorValidity{"notin notin (notin)", true}, SelectorValidity{"A=B", true},
        SelectorValidity{"a/b/c", false}, SelectorValidity{"/a", false},
        SelectorValidity{"Example.com/a", false}, SelectorValidity{"ex-.com/a", false},
        SelectorValidity{"ex..com/a", false}, SelectorValidity{"a.b-c.d/E_f.G", true},
        SelectorValidity{"-a", false}, SelectorValidity{"a-", false},
        SelectorValidity{"x=-a", false}, SelectorValidity{"x=a_", false},
        SelectorValidity{"x in (a", false}, SelectorValidity{"x=a b", false},
        SelectorValidity{"x=(a)", false}, SelectorValidity{"x=!", false},
        SelectorValidity{"!", false}, SelectorValidity{"!!x", false}, SelectorValidity{"x!", false},
        SelectorValidity{"x==", true}, SelectorValidity{"x===y", false},
        SelectorValidity{"x=a,", false}, SelectorValidity{"x in a", false},
        SelectorValidity{"x in (a)(b)", false}, SelectorValidity{"\xC3\xA9=a", false},
        // A NUL where a token starts ends the selector; right after a word or operator it is
        // swallowed and lexing goes on.
        SelectorValidity{"x=a \0((("sv, true}, SelectorValidity{"x=a,\0"sv, false},
        SelectorValidity{"x=a\0((("sv, false}, SelectorValidity{"x\0,y"sv, true},
        SelectorValidity{"x\0y"sv, false}, SelectorValidity{"x=\0b"sv, true},
        SelectorValidity{"\0((("sv, true}));

// A valid label key is at most 63 bytes of name and 253 of DNS prefix.
TEST(K8sRequestInfoLabelLimits, KeyAndValueLengths) {
  const auto name_for = [](const std::string& selector) {
    return ParseK8sRequestInfo("GET",
                               "/api/v1/pods?fieldSelector=metadata.name%3Dn&labelSelector=" +
                                   QueryEscape(selector))
        .name;
  };
  const std::string n63(63, 'a');
  const std::string n64(64, 'a');
  std::string prefix253 = std::string(63, 'p') + "." + std::string(63, 'p') + "." +
                          std::string(63, 'p') + "." + std::string(61, 'p');
  ASSERT_EQ(prefix253.size(), 253u);
  EXPECT_EQ(name_for(n63), "n");
  EXPECT_EQ(name_for(n64), "");
  EXPECT_EQ(name_for("k=" + n63), "n");
  EXPECT_EQ(name_for("k=" + n64), "");
  EXPECT_EQ(name_for("k in (a," + n64 + ")"), "");
  EXPECT_EQ(name_for(prefix253 + "/k"), "n");
  EXPECT_EQ(name_for(prefix253 + "p/k"), "");
  // A long, valid set.
  std::string big = "k in (";
  for (int i = 0; i < 5000; ++i) big += "v" + std::to_string(i) + ",";
  EXPECT_EQ(name_for(big + ")"), "n");
  EXPECT_EQ(name_for(big), "");
}

class FieldSelectorValidity : public ::testing::TestWithParam<SelectorValidity> {};

TEST_P(FieldSelectorValidity, DecidesWhetherTheNameCounts) {
  const SelectorValidity& c = GetParam();
  const std::string selector = "metadata.name=n," + std::string(c.selector);
  const K8sRequestInfo info =
      ParseK8sRequestInfo("GET", "/apis/g/v1/things?fieldSelector=" + QueryEscape(selector));
  EXPECT_TRUE(info.is_resource_request);
  EXPECT_EQ(info.path, "/apis/g/v1/things");
  EXPECT_EQ(info.verb, "list");
  EXPECT_EQ(info.api_prefix, "apis");
  EXPECT_EQ(info.api_group, "g");
  EXPECT_EQ(info.api_version, "v1");
  EXPECT_EQ(info.namespace_, "");
  EXPECT_EQ(info.resource, "things");
  EXPECT_EQ(info.subresource, "");
  EXPECT_EQ(info.name, c.valid ? "n" : "");
  EXPECT_EQ(info.parts, Parts{"things"});
  EXPECT_EQ(info.field_selector, selector);
  EXPECT_EQ(info.label_selector, "");
  EXPECT_FALSE(info.malformed_request);
  EXPECT_FALSE(info.resolver_error);
}

// fields/selector_test.go TestSelectorParse, then our own.
INSTANTIATE_TEST_SUITE_P(
    Apimachinery, FieldSelectorValidity,
    ::testing::Values(SelectorValidity{"x=a,y=b,z=c", true}, SelectorValidity{"", true},
                      SelectorValidity{"x!=a,y=b", true}, SelectorValidity{"x=a||y\\=b", true},
                      SelectorValidity{"x=a\\=\\=b", true}, SelectorValidity{"x=a||y=b", false},
                      SelectorValidity{"x==a==b", false}, SelectorValidity{"x=a,b", false},
                      SelectorValidity{"x in (a)", false}, SelectorValidity{"x in (a,b,c)", false},
                      SelectorValidity{"x", false}));
INSTANTIATE_TEST_SUITE_P(
    Ours, FieldSelectorValidity,
    ::testing::Values(SelectorValidity{",,", true}, SelectorValidity{"=", true},
                      SelectorValidity{"a!b=c", true}, SelectorValidity{"x=a\\", false},
                      SelectorValidity{"x=a\\b", false}, SelectorValidity{"x=a\\\\", true},
                      SelectorValidity{"x=a\\,b", true}, SelectorValidity{"x\\=a", true},
                      SelectorValidity{"x!a", false}, SelectorValidity{"x=\xC3\xA9", true},
                      SelectorValidity{"x=\\\xC3\xA9", false}));

// ---------------------------------------------------------------------------------------------
// Hostile and oversized input: exact results where Go's are known, and no crash anywhere.

TEST(K8sRequestInfoHostile, VeryLongName) {
  const std::string name(200000, 'a');
  const K8sRequestInfo info =
      ParseK8sRequestInfo("GET", "/api/v1/namespaces/ns/pods/" + name + "?watch=1");
  EXPECT_TRUE(info.is_resource_request);
  EXPECT_EQ(info.path, "/api/v1/namespaces/ns/pods/" + name);
  EXPECT_EQ(info.verb, "get");
  EXPECT_EQ(info.api_prefix, "api");
  EXPECT_EQ(info.api_group, "");
  EXPECT_EQ(info.api_version, "v1");
  EXPECT_EQ(info.namespace_, "ns");
  EXPECT_EQ(info.resource, "pods");
  EXPECT_EQ(info.subresource, "");
  EXPECT_EQ(info.name, name);
  EXPECT_EQ(info.parts, (Parts{"pods", name}));
  EXPECT_EQ(info.field_selector, "");
  EXPECT_EQ(info.label_selector, "");
  EXPECT_FALSE(info.malformed_request);
  EXPECT_FALSE(info.resolver_error);
}

TEST(K8sRequestInfoHostile, ManySlashes) {
  const std::string target = "/api/v1/pods" + std::string(50000, '/') + "x";
  const K8sRequestInfo info = ParseK8sRequestInfo("GET", target);
  Parts parts(50001);
  parts.front() = "pods";
  parts.back() = "x";
  EXPECT_TRUE(info.is_resource_request);
  EXPECT_EQ(info.path, target);
  EXPECT_EQ(info.verb, "list");  // parts[1] is empty: no name
  EXPECT_EQ(info.api_prefix, "api");
  EXPECT_EQ(info.api_group, "");
  EXPECT_EQ(info.api_version, "v1");
  EXPECT_EQ(info.namespace_, "");
  EXPECT_EQ(info.resource, "pods");
  EXPECT_EQ(info.subresource, "");
  EXPECT_EQ(info.name, "");
  EXPECT_EQ(info.parts, parts);
  EXPECT_EQ(info.field_selector, "");
  EXPECT_EQ(info.label_selector, "");
  EXPECT_FALSE(info.malformed_request);
  EXPECT_FALSE(info.resolver_error);
}

TEST(K8sRequestInfoHostile, OnlySlashes) {
  const std::string target(100000, '/');
  const K8sRequestInfo info = ParseK8sRequestInfo("DELETE", target);
  EXPECT_FALSE(info.is_resource_request);
  EXPECT_EQ(info.path, target);
  EXPECT_EQ(info.verb, "delete");
  EXPECT_EQ(info.api_prefix, "");
  EXPECT_EQ(info.api_group, "");
  EXPECT_EQ(info.api_version, "");
  EXPECT_EQ(info.namespace_, "");
  EXPECT_EQ(info.resource, "");
  EXPECT_EQ(info.subresource, "");
  EXPECT_EQ(info.name, "");
  EXPECT_TRUE(info.parts.empty());
  EXPECT_EQ(info.field_selector, "");
  EXPECT_EQ(info.label_selector, "");
  EXPECT_FALSE(info.malformed_request);
  EXPECT_FALSE(info.resolver_error);
}

// Go's ParseQuery gives up (empty values) beyond 10000 parameters, counted as '&' + 1.
TEST(K8sRequestInfoHostile, QueryParameterLimit) {
  std::string at_limit = "/api/v1/pods?watch=1&labelSelector=a%3Db";
  for (int i = 2; i < 10000; ++i) at_limit += "&p";
  std::string over_limit = at_limit + "&p";
  for (const auto& [target, watch] :
       {std::pair<const std::string&, bool>{at_limit, true}, {over_limit, false}}) {
    const K8sRequestInfo info = ParseK8sRequestInfo("GET", target);
    EXPECT_TRUE(info.is_resource_request);
    EXPECT_EQ(info.path, "/api/v1/pods");
    EXPECT_EQ(info.verb, watch ? "watch" : "list");
    EXPECT_EQ(info.api_prefix, "api");
    EXPECT_EQ(info.api_group, "");
    EXPECT_EQ(info.api_version, "v1");
    EXPECT_EQ(info.namespace_, "");
    EXPECT_EQ(info.resource, "pods");
    EXPECT_EQ(info.subresource, "");
    EXPECT_EQ(info.name, "");
    EXPECT_EQ(info.parts, Parts{"pods"});
    EXPECT_EQ(info.field_selector, "");
    EXPECT_EQ(info.label_selector, watch ? "a=b" : "");
    EXPECT_FALSE(info.malformed_request);
    EXPECT_FALSE(info.resolver_error);
  }
}

TEST(K8sRequestInfoHostile, LongSelectors) {
  std::string fields = "metadata.name=zz";
  for (int i = 0; i < 20000; ++i) fields += ",metadata.name=n" + std::to_string(i);
  const K8sRequestInfo info =
      ParseK8sRequestInfo("GET", "/api/v1/pods?fieldSelector=" + QueryEscape(fields));
  EXPECT_EQ(info.verb, "list");
  EXPECT_EQ(info.name, "n0");
  EXPECT_EQ(info.field_selector, fields);

  const std::string deep = std::string(100000, '(') + std::string(100000, '!');
  const K8sRequestInfo deep_info = ParseK8sRequestInfo(
      "GET", "/api/v1/pods?fieldSelector=metadata.name%3Dn&labelSelector=" + QueryEscape(deep));
  EXPECT_EQ(deep_info.name, "");
  EXPECT_EQ(deep_info.label_selector, deep);
}

// Deterministic pseudo-random targets over the characters the parser cares about.
TEST(K8sRequestInfoHostile, RandomTargetsKeepInvariants) {
  constexpr std::string_view kPieces[] = {
      "/",
      "//",
      "api",
      "apis",
      "v1",
      "namespaces",
      "ns",
      "watch",
      "proxy",
      "status",
      "finalize",
      "pods",
      "?",
      "&",
      "=",
      "watch=",
      "fieldSelector=",
      "labelSelector=",
      "metadata.name",
      "limit=",
      "%",
      "%2F",
      "%zz",
      "%00",
      "+",
      ";",
      ",",
      "\\",
      "!",
      "(",
      ")",
      " ",
      "in",
      "\xC5\xBF",
      "\xFF",
      "\0"sv,
      "http://h",
      "*",
      ":",
      "#",
      "0",
      "false",
      "..",
  };
  constexpr std::string_view kMethods[] = {"GET", "HEAD", "DELETE", "POST", "", "get", "CONNECT"};
  std::uint64_t state = 0x9E3779B97F4A7C15ULL;
  const auto next = [&state](std::size_t bound) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return static_cast<std::size_t>(state % bound);
  };
  for (int round = 0; round < 20000; ++round) {
    std::string target;
    const std::size_t pieces = next(24);
    for (std::size_t i = 0; i < pieces; ++i) {
      target += kPieces[next(std::size(kPieces))];
    }
    const std::string_view method = kMethods[next(std::size(kMethods))];
    const K8sRequestInfo info = ParseK8sRequestInfo(method, target);
    SCOPED_TRACE(target);
    if (!info.is_resource_request) {
      EXPECT_TRUE(info.api_group.empty());
      EXPECT_TRUE(info.api_version.empty());
      EXPECT_TRUE(info.resource.empty());
      EXPECT_TRUE(info.parts.empty());
      EXPECT_FALSE(info.resolver_error);
    } else if (!info.resolver_error) {
      ASSERT_FALSE(info.parts.empty());
      EXPECT_EQ(info.resource, info.parts[0]);
      EXPECT_TRUE(info.api_prefix == "api" || info.api_prefix == "apis");
    }
    if (!info.field_selector.empty() || !info.label_selector.empty()) {
      EXPECT_TRUE(info.verb == "list" || info.verb == "watch" || info.verb == "deletecollection");
    }
    if (info.path.size() > target.size()) ADD_FAILURE() << "path grew";
  }
}

}  // namespace
}  // namespace mat::audit
