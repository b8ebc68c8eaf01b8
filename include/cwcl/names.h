// Names of enum settings as they appear in configs and on the command line.
// Each enum has one table (a Names<E> specialisation beside the enum), and
// parse_name is the one place that compares those strings: configuration and
// the command line parse once, at the edge, and the library sees enums only.
#pragma once

#include <cwcl/error.h>

#include <array>
#include <string>
#include <utility>

namespace cwcl {

/// Specialised for each named enum:
///   static constexpr const char* what = "pooling";
///   static constexpr std::array<std::pair<E, const char*>, K> table{...};
template <class E>
struct Names;

/// "a, b, c": the accepted names of E.
template <class E>
std::string accepted_names() {
  std::string out;
  for (const auto& [value, name] : Names<E>::table) out += (out.empty() ? "" : ", ") + std::string(name);
  return out;
}

/// The value named `text`; throws UsageError listing the accepted names.
template <class E>
E parse_name(const std::string& text) {
  for (const auto& [value, name] : Names<E>::table)
    if (text == name) return value;
  throw UsageError("unknown " + std::string(Names<E>::what) + " '" + shorten(text) + "' (accepted: " +
                   accepted_names<E>() + ")");
}

/// The name of a value (the first listed when several share it).
template <class E>
const char* name_of(E value) {
  for (const auto& [v, name] : Names<E>::table)
    if (v == value) return name;
  return "?";
}

}  // namespace cwcl
