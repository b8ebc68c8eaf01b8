#include "protocol.h"

#include <cwcl/error.h>
#include <cwcl/runtime.h>

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <sstream>

namespace cwcl::demo {
namespace {

namespace fs = std::filesystem;

toml::table parse_file(const std::string& path) {
  try {
    return toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream m;
    m << path << ":" << e.source().begin.line << ": " << e.description();
    throw ConfigError(m.str());
  }
}

// A sub-table's keys as an overlay (errors name the file and table).
ConfigOverlay overlay_of(const toml::table* table, const std::string& source) {
  if (table == nullptr) return ConfigOverlay::parse("", source);
  std::ostringstream text;
  text << *table;
  return ConfigOverlay::parse(text.str(), source);
}

std::string string_of(const toml::table& t, const std::string& key, const std::string& where) {
  const auto value = t[key].value<std::string>();
  if (!value) throw ConfigError(where + ": needs a string '" + key + "'");
  return *value;
}

std::vector<Variant> read_variants(const std::string& path) {
  const auto file = parse_file(path);
  std::vector<Variant> out;
  for (const auto& [key, node] : file) {
    const std::string name(key.str()), where = path + " [" + name + "]";
    const auto* t = node.as_table();
    if (t == nullptr) throw ConfigError(where + ": a variant is a table with 'method' and 'set'");
    for (const auto& [k, v] : *t)
      if (k.str() != "method" && k.str() != "set")
        throw ConfigError(where + ": unknown key '" + std::string(k.str()) + "' (a variant has 'method' and 'set')");
    DemoMethod method{};
    try {
      method = parse_name<DemoMethod>(string_of(*t, "method", where));
    } catch (const UsageError& e) {
      throw ConfigError(where + ": " + e.what());
    }
    out.push_back({name, method, overlay_of((*t)["set"].as_table(), where + ".set")});
  }
  return out;
}

std::string preset_path(const std::string& name_or_file) {
  if (fs::is_regular_file(name_or_file)) return name_or_file;
  if (name_or_file.find('/') != std::string::npos || name_or_file.find(".toml") != std::string::npos)
    throw UsageError("--preset " + name_or_file + ": no such file");
  try {
    return config_file("demo/" + name_or_file + ".toml");
  } catch (const DataError&) {
    throw UsageError("--preset: no preset '" + shorten(name_or_file) + "' (configs/demo has quick, full, smoke, batch, whisper-base)");
  }
}

// A folder of the corpus (its name only: letters, digits, '_' and '-').
std::string corpus_part(const toml::table& t, const std::string& key, const std::string& where) {
  const auto value = t[key].value<std::string>();
  const bool ok = value && !value->empty() && std::all_of(value->begin(), value->end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
  if (!ok) throw ConfigError(where + ": '" + key + "' must name a folder of the corpus, such as \"train_mixed\"");
  return *value;
}

int64_t positive_integer(const toml::table& t, const std::string& key, const std::string& where) {
  const auto v = t[key].value<int64_t>();
  if (!v || *v < 1) throw ConfigError(where + ": '" + key + "' must be a positive integer");
  return *v;
}

// The batch axis of a speech_batch stage: batches, samples, min_steps.
BatchAxis read_batch_axis(const toml::table& t, const std::string& where) {
  BatchAxis axis;
  const auto* batches = t["batches"].as_array();
  if (batches == nullptr || batches->empty()) throw ConfigError(where + ": needs 'batches', a list of global batch sizes");
  for (const auto& b : *batches) {
    const auto v = b.value<int64_t>();
    if (!v || *v < 2) throw ConfigError(where + ": batches must be integers >= 2");
    axis.batches.push_back(*v);
  }
  axis.samples = positive_integer(t, "samples", where);
  axis.min_steps = t.contains("min_steps") ? positive_integer(t, "min_steps", where) : 1;
  axis.chunk = t.contains("chunk") ? positive_integer(t, "chunk", where) : 0;
  for (const auto b : axis.batches)
    if (axis.chunk > 0 && b > axis.chunk && b % axis.chunk != 0)
      throw ConfigError(where + ": chunk " + std::to_string(axis.chunk) + " does not divide batch " + std::to_string(b));
  return axis;
}

std::optional<Stage> read_stage(const toml::table& preset, const std::string& name, const std::string& path,
                                const Preset& p) {
  const std::string where = path + " [" + name + "]";
  const auto* t = preset[name].as_table();
  if (t == nullptr) return std::nullopt;
  const bool batch = name == "speech_batch" || name == "image_batch";
  const bool speech = name.rfind("speech_", 0) == 0;
  for (const auto& [k, v] : *t)
    if (k.str() != "config" && k.str() != "set" && k.str() != "variants" && !(speech && k.str() == "train") &&
        !(batch && (k.str() == "batches" || k.str() == "samples" || k.str() == "min_steps" || k.str() == "chunk")))
      throw ConfigError(where + ": unknown key '" + std::string(k.str()) + "' (config, set, variants" +
                        (speech ? ", train" : "") + (batch ? ", batches, samples, min_steps, chunk)" : ")"));
  Stage stage;
  stage.base = string_of(*t, "config", where);
  if (t->contains("train")) stage.train_part = corpus_part(*t, "train", where);
  stage.config = TrainConfig::from_file(config_file(stage.base));
  stage.config.apply(overlay_of((*t)["set"].as_table(), where + ".set"));
  if (const auto* names = (*t)["variants"].as_array()) {
    for (const auto& n : *names) {
      const auto name_of_variant = n.value<std::string>();
      if (!name_of_variant) throw ConfigError(where + ": variants must be names");
      try {
        stage.variants.push_back(p.variant(*name_of_variant));
      } catch (const UsageError& e) {
        throw ConfigError(where + ": " + e.what());
      }
    }
  }
  // Every variant applies to this stage's configuration (its keys exist).
  for (const auto& v : stage.variants) {
    auto probe = stage.config;
    probe.apply(v.overlay);
  }
  return stage;
}

}  // namespace

const Variant& Preset::variant(const std::string& name) const {
  for (const auto& v : all_variants)
    if (v.name == name) return v;
  throw UsageError("no variant '" + shorten(name) + "' in configs/demo/variants.toml");
}

Preset load_preset(const std::string& name_or_file) {
  const auto path = preset_path(name_or_file);
  const auto file = parse_file(path);
  for (const auto& [k, v] : file)
    if (k.str() != "speech_frozen" && k.str() != "speech_finetuned" && k.str() != "image" &&
        k.str() != "speech_batch" && k.str() != "image_batch")
      throw ConfigError(path + ": unknown table [" + std::string(k.str()) +
                        "] (a preset has speech_frozen, speech_finetuned, image, speech_batch, image_batch)");
  Preset p;
  p.name = fs::path(path).stem().string();
  p.all_variants = read_variants(config_file("demo/variants.toml"));
  p.speech_frozen = read_stage(file, "speech_frozen", path, p);
  p.speech_finetuned = read_stage(file, "speech_finetuned", path, p);
  if (p.speech_frozen.has_value() != p.speech_finetuned.has_value())
    throw ConfigError(path + ": the speech part needs both [speech_frozen] and [speech_finetuned]");
  p.image = read_stage(file, "image", path, p);
  p.speech_batch = read_stage(file, "speech_batch", path, p);
  if (p.speech_batch) p.batch_axis = read_batch_axis(*file["speech_batch"].as_table(), path + " [speech_batch]");
  p.image_batch = read_stage(file, "image_batch", path, p);
  if (p.image_batch)
    p.image_batch_axis = read_batch_axis(*file["image_batch"].as_table(), path + " [image_batch]");
  return p;
}

}  // namespace cwcl::demo
