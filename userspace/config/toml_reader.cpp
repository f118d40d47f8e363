#include "config/toml_reader.h"

#include <toml++/toml.h>

#include <algorithm>
#include <string_view>

namespace mat::config {
namespace {

int LineOf(const toml::node& node) { return static_cast<int>(node.source().begin.line); }

std::string TypeName(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    case toml::node_type::none:
      break;
  }
  return "value";
}

TomlValue Convert(const toml::node& node) {
  TomlValue value;
  value.line = LineOf(node);
  if (const auto* s = node.as_string()) {
    value.v = s->get();
  } else if (const auto* b = node.as_boolean()) {
    value.v = b->get();
  } else if (const auto* n = node.as_integer()) {
    value.v = n->get();
  } else if (const auto* arr = node.as_array()) {
    TomlArray items;
    for (const toml::node& item : *arr) items.push_back(Convert(item));
    value.v = std::move(items);
  } else {
    value.v = TomlOther{TypeName(node.type())};
  }
  return value;
}

}  // namespace

Result<TomlDocument> ParseToml(const std::string& text, const std::vector<std::string>& only) {
  toml::table root;
  try {
    root = toml::parse(text);
  } catch (const toml::parse_error& e) {
    return Error{"line " + std::to_string(e.source().begin.line) + ": " +
                 std::string(e.description())};
  }
  auto wanted = [&](std::string_view name) {
    return only.empty() || std::find(only.begin(), only.end(), name) != only.end();
  };
  TomlDocument doc;
  if (wanted("")) doc[""];
  for (const auto& [key, node] : root) {
    const std::string name(key.str());
    if (const toml::table* section = node.as_table()) {
      if (!wanted(name)) continue;
      auto& out = doc[name];
      for (const auto& [k, v] : *section) out[std::string(k.str())] = Convert(v);
    } else if (!only.empty() && wanted(name)) {
      return Error{"line " + std::to_string(LineOf(node)) + ": " + name + " must be a [table]"};
    } else if (wanted("")) {
      doc[""][name] = Convert(node);
    }
  }
  return doc;
}

}  // namespace mat::config
