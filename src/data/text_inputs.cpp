#include <cwcl/data/text_inputs.h>
#include <cwcl/error.h>
#include <cwcl/io/files.h>

#include <nlohmann/json.hpp>

#include <unordered_set>

namespace cwcl {
namespace {

using json = nlohmann::json;

bool is_manifest(const std::string& path) {
  for (const std::string suffix : {".jsonl", ".json"})
    if (path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0)
      return true;
  return false;
}

std::string string_field(const json& j, const std::string& field, const std::string& where) {
  if (!j.contains(field) || !j[field].is_string()) throw DataError(where + ": no string field '" + field + "'");
  return j[field].get<std::string>();
}

}  // namespace

TextInputs read_text_inputs(const std::string& path, const TextInputOptions& o) {
  TextInputs in;
  const bool manifest = is_manifest(path);
  if (!manifest && !o.label_field.empty())
    throw DataError(path + ": labels need a .jsonl manifest with field '" + o.label_field + "'");
  const auto lines = read_lines(path);
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string where = path + ":" + std::to_string(i + 1);
    std::string id = std::to_string(i + 1), text;
    std::map<std::string, std::string> others;
    if (manifest) {
      if (lines[i].find_first_not_of(" \t\r") == std::string::npos) continue;
      json j;
      try {
        j = json::parse(lines[i]);
      } catch (const json::exception& e) {
        throw DataError(where + ": not a JSON object: " + e.what());
      }
      if (!j.is_object()) throw DataError(where + ": not a JSON object");
      text = string_field(j, o.text_field, where);
      if (!o.label_field.empty()) in.labels.push_back(string_field(j, o.label_field, where));
      if (j.contains(o.id_field)) {
        const auto& v = j[o.id_field];
        if (v.is_string()) id = v.get<std::string>();
        else if (v.is_number_integer()) id = std::to_string(v.get<int64_t>());
        else throw DataError(where + ": field '" + o.id_field + "' is neither a string nor an integer");
      }
      for (const auto& [key, value] : j.items())
        if (key != o.text_field && key != o.id_field) others.emplace(key, value.dump());
    } else {
      text = lines[i];
      if (!text.empty() && text.back() == '\r') text.pop_back();
    }
    if (!seen.insert(id).second) throw DataError(where + ": duplicate id '" + id + "'");
    in.ids.push_back(std::move(id));
    in.texts.push_back(std::move(text));
    in.other_fields.push_back(std::move(others));
  }
  if (in.texts.empty()) throw DataError(path + ": no texts");
  return in;
}

}  // namespace cwcl
