#include "jsonl.h"

#include <cwcl/error.h>

#include <fstream>

namespace cwcl::detail {

JsonlSkips read_jsonl(const std::string& path, const std::function<std::string(const nlohmann::json&)>& use) {
  std::ifstream in(path);
  if (!in) throw DataError(path + ": cannot open");
  JsonlSkips out;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string why;
    try {
      why = use(nlohmann::json::parse(line));
    } catch (const nlohmann::json::parse_error&) {
      why = "not JSON";
    }
    if (why.empty()) continue;
    ++out.skipped;
    if (out.problems.size() < 10) out.problems.push_back(path + ":" + std::to_string(number) + ": " + why);
  }
  return out;
}

}  // namespace cwcl::detail
