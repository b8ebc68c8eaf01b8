// cwcl embed: texts from a file through a frozen tower into an embedding store.
#include "commands.h"

#include <cwcl/towers/glove.h>
#include <cwcl/towers/script_tower.h>
#include <cwcl/io/store.h>
#include <cwcl/towers/text_encoder.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <unordered_set>

#include <unistd.h>

namespace cwcl::app {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

TextInputs read_text_inputs(const std::string& path, const std::string& text_field,
                            const std::string& id_field, const std::string& label_field) {
  TextInputs in;
  const bool jsonl = ends_with(path, ".jsonl") || ends_with(path, ".json");
  const auto lines = read_lines(path);
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string where = path + ":" + std::to_string(i + 1);
    std::string id = std::to_string(i + 1), text;
    if (jsonl) {
      if (lines[i].find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(lines[i]);
      } catch (const nlohmann::json::exception& e) {
        throw DataError(where + ": not a JSON object: " + e.what());
      }
      if (!j.is_object() || !j.contains(text_field) || !j[text_field].is_string())
        throw DataError(where + ": no string field '" + text_field + "'");
      text = j[text_field].get<std::string>();
      if (!label_field.empty()) {
        if (!j.contains(label_field) || !j[label_field].is_string())
          throw DataError(where + ": no string field '" + label_field + "'");
        in.labels.push_back(j[label_field].get<std::string>());
      }
      if (j.contains(id_field)) {
        const auto& v = j[id_field];
        if (v.is_string()) id = v.get<std::string>();
        else if (v.is_number_integer()) id = std::to_string(v.get<int64_t>());
        else throw DataError(where + ": field '" + id_field + "' is neither a string nor an integer");
      }
    } else {
      if (!label_field.empty())
        throw DataError(path + ": labels need a .jsonl manifest with field '" + label_field + "'");
      text = lines[i];
      if (!text.empty() && text.back() == '\r') text.pop_back();
    }
    if (!seen.insert(id).second) throw DataError(where + ": duplicate id '" + id + "'");
    in.ids.push_back(std::move(id));
    in.texts.push_back(std::move(text));
  }
  if (in.texts.empty()) throw DataError(path + ": no texts");
  return in;
}

// --tower store: rows of an existing store (made by any toolkit), picked by id.
int embed_from_store(const EmbedOptions& o, const TextInputs& inputs) {
  if (o.tower.model.empty()) throw UsageError("--tower store needs --model <store.safetensors>");
  const auto source = EmbeddingStore::read(o.tower.model);
  const auto fingerprint = fingerprint_files({o.tower.model});
  std::vector<std::string> keys;
  for (const auto& t : inputs.texts) keys.push_back(content_key(fingerprint, t));
  EmbeddingStore out(source.lookup_ids(inputs.ids), inputs.ids, keys, "store:" + o.tower.model);
  out.write(o.out);
  std::cout << "embed: " << out.size() << " rows of dimension " << out.dim() << " from " << o.tower.model
            << " into " << o.out << "\n";
  return 0;
}

int run_embed(const EmbedOptions& o) {
  const auto inputs = read_text_inputs(o.input, o.text_field, o.id_field);
  if (o.tower.kind == TextTowerKind::Store) return embed_from_store(o, inputs);
  const auto tower = load_text_tower(o.tower);
  const bool tty = ::isatty(STDERR_FILENO);
  int64_t computed = 0;
  auto encode = [&](const std::vector<std::string>& texts) {
    computed = static_cast<int64_t>(texts.size());
    const size_t chunk = 1024;
    std::vector<torch::Tensor> parts;
    for (size_t start = 0; start < texts.size(); start += chunk) {
      const size_t end = std::min(texts.size(), start + chunk);
      parts.push_back(tower.encode({texts.begin() + static_cast<long>(start), texts.begin() + static_cast<long>(end)}));
      if (tty) std::cerr << "\rembed: " << end << "/" << texts.size() << std::flush;
    }
    if (tty) std::cerr << "\n";
    return torch::cat(parts, 0);
  };
  auto embeddings = embed_with_store(o.out, tower.name, tower.fingerprint, inputs.ids, inputs.texts, encode);
  std::cout << "embed: " << inputs.texts.size() << " texts, " << computed << " computed, "
            << inputs.texts.size() - static_cast<size_t>(computed) << " from the store; "
            << o.out << " holds " << EmbeddingStore::read(o.out).size() << " rows of dimension "
            << embeddings.size(1) << "\n";
  return 0;
}

}  // namespace cwcl::app
