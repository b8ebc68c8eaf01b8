// Internal to the data tier: the JSONL reading every manifest shares.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cwcl::detail {

/// Lines a manifest reader left out: counted, the first ten named "file:line: why".
struct JsonlSkips {
  int64_t skipped = 0;
  std::vector<std::string> problems;
};

/// Calls `use` on every non-blank line parsed as JSON, in order; `use`
/// returns why it cannot take the line (empty: taken). Lines that are not
/// JSON, and lines `use` refuses, are skipped and counted, never fatal.
/// Throws DataError naming the file when it cannot be opened.
JsonlSkips read_jsonl(const std::string& path, const std::function<std::string(const nlohmann::json&)>& use);

}  // namespace cwcl::detail
