#include <cwcl/config.h>
#include <cwcl/loss.h>

#include <toml++/toml.h>

#include <functional>
#include <sstream>
#include <utility>
#include <variant>

namespace cwcl {
namespace {

using FieldRef = std::variant<std::string*, int64_t*, double*, bool*>;

// The one table of keys: parsing, --set, validation messages and the resolved
// TOML all walk it, so a new field is added in one place.
std::vector<std::pair<std::string, FieldRef>> fields(TrainConfig& c) {
  return {
      {"run.out", &c.run.out},
      {"run.seed", &c.run.seed},
      {"run.steps", &c.run.steps},
      {"run.batch_size", &c.run.batch_size},
      {"run.threads", &c.run.threads},
      {"run.checkpoint_every", &c.run.checkpoint_every},
      {"run.keep_checkpoints", &c.run.keep_checkpoints},
      {"run.log_every", &c.run.log_every},
      {"model.tower", &c.model.tower},
      {"model.whisper_model", &c.model.whisper_model},
      {"model.whisper_training", &c.model.whisper_training},
      {"model.top_blocks", &c.model.top_blocks},
      {"model.layer_decay", &c.model.layer_decay},
      {"model.scratch_size", &c.model.scratch_size},
      {"model.pooling", &c.model.pooling},
      {"model.head_hidden", &c.model.head_hidden},
      {"model.image_width", &c.model.image_width},
      {"text.tower", &c.text.tower},
      {"text.model", &c.text.model},
      {"data.train", &c.data.train},
      {"data.features", &c.data.features},
      {"data.text_store", &c.data.text_store},
      {"data.limit", &c.data.limit},
      {"data.augment", &c.data.augment},
      {"data.classes", &c.data.classes},
      {"data.valid_fraction", &c.data.valid_fraction},
      {"data.class_names", &c.data.class_names},
      {"data.templates", &c.data.templates},
      {"loss.kind", &c.loss.kind},
      {"loss.weights", &c.loss.weights},
      {"loss.gamma", &c.loss.gamma},
      {"loss.kernel_tau", &c.loss.kernel_tau},
      {"loss.center", &c.loss.center},
      {"loss.calibrate", &c.loss.calibrate},
      {"loss.directions", &c.loss.directions},
      {"loss.temperature", &c.loss.temperature},
      {"loss.learn_temperature", &c.loss.learn_temperature},
      {"optim.lr", &c.optim.lr},
      {"optim.weight_decay", &c.optim.weight_decay},
      {"optim.warmup", &c.optim.warmup},
      {"optim.min_lr", &c.optim.min_lr},
      {"optim.encoder_lr", &c.optim.encoder_lr},
      {"optim.clip", &c.optim.clip},
  };
}

const char* type_name(const FieldRef& f) {
  return std::visit(
      [](auto* p) -> const char* {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, std::string>) return "a string";
        else if constexpr (std::is_same_v<T, int64_t>) return "an integer";
        else if constexpr (std::is_same_v<T, double>) return "a number";
        else return "true or false";
      },
      f);
}

// Stores a TOML value into a field; false when the type does not fit.
bool assign(const FieldRef& field, const toml::node& node) {
  return std::visit(
      [&](auto* p) {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, std::string>) {
          if (auto v = node.value_exact<std::string>()) return *p = *v, true;
        } else if constexpr (std::is_same_v<T, int64_t>) {
          if (auto v = node.value_exact<int64_t>()) return *p = *v, true;
        } else if constexpr (std::is_same_v<T, double>) {
          if (auto v = node.value_exact<double>()) return *p = *v, true;
          if (auto v = node.value_exact<int64_t>()) return *p = static_cast<double>(*v), true;
        } else {
          if (auto v = node.value_exact<bool>()) return *p = *v, true;
        }
        return false;
      },
      field);
}

void apply_table(TrainConfig& c, const toml::table& table, const std::string& source, const std::string& prefix = "") {
  auto known = fields(c);
  for (const auto& [k, node] : table) {
    const std::string key = prefix + std::string(k.str());
    if (const auto* sub = node.as_table()) {
      apply_table(c, *sub, source, key + ".");
      continue;
    }
    auto it = std::find_if(known.begin(), known.end(), [&](const auto& f) { return f.first == key; });
    if (it == known.end()) throw ConfigError(source + ": unknown key '" + key + "'");
    if (!assign(it->second, node))
      throw ConfigError(source + ": key '" + key + "' must be " + type_name(it->second));
  }
}

toml::table parse_or_throw(const std::string& text, const std::string& source) {
  try {
    return toml::parse(text, std::string_view(source));
  } catch (const toml::parse_error& e) {
    std::ostringstream m;
    m << source << ":" << e.source().begin.line << ": " << e.description();
    throw ConfigError(m.str());
  }
}

void check(bool ok, const std::string& key, const std::string& why) {
  if (!ok) throw ConfigError("config key '" + key + "': " + why);
}

void check_one_of(const std::string& value, const std::string& key, std::initializer_list<const char*> names) {
  std::string list;
  for (const char* n : names) {
    if (value == n) return;
    list += (list.empty() ? "" : ", ") + std::string(n);
  }
  throw ConfigError("config key '" + key + "': '" + value + "' is not one of " + list);
}

}  // namespace

TrainConfig TrainConfig::from_string(const std::string& text, const std::string& source) {
  TrainConfig c;
  apply_table(c, parse_or_throw(text, source), source);
  return c;
}

TrainConfig TrainConfig::from_file(const std::string& path) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream m;
    m << path << ":" << e.source().begin.line << ": " << e.description();
    throw ConfigError(m.str());
  }
  TrainConfig c;
  apply_table(c, table, path);
  return c;
}

void TrainConfig::set(const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set " + assignment + ": expected section.key=value");
  const std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  toml::table table;
  try {
    table = toml::parse(key + " = " + value, std::string_view("--set"));
  } catch (const toml::parse_error&) {
    // A bare word: take it as a string (escape quotes and backslashes).
    std::string quoted = "\"";
    for (char ch : value) quoted += (ch == '"' || ch == '\\') ? std::string("\\") + ch : std::string(1, ch);
    table = parse_or_throw(key + " = " + quoted + "\"", "--set " + assignment);
  }
  apply_table(*this, table, "--set " + assignment);
}

void TrainConfig::validate() const {
  check(!run.out.empty(), "run.out", "must not be empty");
  check(run.steps >= 1, "run.steps", "must be >= 1");
  check(run.batch_size >= 2, "run.batch_size", "must be >= 2 (a contrastive batch)");
  check(run.threads >= 1, "run.threads", "must be >= 1");
  check(run.checkpoint_every >= 1, "run.checkpoint_every", "must be >= 1");
  check(run.keep_checkpoints >= 1, "run.keep_checkpoints", "must be >= 1");
  check(run.log_every >= 1, "run.log_every", "must be >= 1");
  check_one_of(model.tower, "model.tower", {"whisper", "scratch", "image"});
  check_one_of(model.whisper_training, "model.whisper_training", {"frozen", "top", "full"});
  check_one_of(model.scratch_size, "model.scratch_size", {"tiny", "small"});
  check_one_of(model.pooling, "model.pooling", {"mean", "attention"});
  check(model.top_blocks >= 1, "model.top_blocks", "must be >= 1");
  check(model.layer_decay > 0 && model.layer_decay <= 1, "model.layer_decay", "must be in (0, 1]");
  check(model.head_hidden >= 0, "model.head_hidden", "must be >= 0");
  check(model.image_width >= 1, "model.image_width", "must be >= 1");
  check(!data.train.empty(), "data.train", "must name the training data");
  check(data.limit >= 0, "data.limit", "must be >= 0");
  check(data.valid_fraction >= 0 && data.valid_fraction < 1, "data.valid_fraction", "must be in [0, 1)");
  try {
    parse_loss_kind(loss.kind);
  } catch (const std::exception& e) {
    throw ConfigError(std::string("config key 'loss.kind': ") + e.what());
  }
  try {
    parse_weight_map(loss.weights);
  } catch (const std::exception& e) {
    throw ConfigError(std::string("config key 'loss.weights': ") + e.what());
  }
  try {
    parse_weighted_directions(loss.directions);
  } catch (const std::exception& e) {
    throw ConfigError(std::string("config key 'loss.directions': ") + e.what());
  }
  check(loss.weights != "custom", "loss.weights", "custom weights need the library API, not a config");
  check(loss.gamma > 0, "loss.gamma", "must be > 0");
  check(loss.kernel_tau > 0, "loss.kernel_tau", "must be > 0");
  check(loss.calibrate >= 0, "loss.calibrate", "must be >= 0");
  check(loss.calibrate == 0 || loss.weights == "kernel" || loss.weights == "power", "loss.calibrate",
        "needs loss.weights = kernel or power");
  check(loss.temperature > 0, "loss.temperature", "must be > 0");
  check(optim.lr > 0, "optim.lr", "must be > 0");
  check(optim.weight_decay >= 0, "optim.weight_decay", "must be >= 0");
  check(optim.warmup >= 0, "optim.warmup", "must be >= 0");
  check(optim.min_lr >= 0 && optim.min_lr <= optim.lr, "optim.min_lr", "must be in [0, optim.lr]");
  check(optim.clip >= 0, "optim.clip", "must be >= 0");
  check(optim.encoder_lr > 0, "optim.encoder_lr", "must be > 0");
}

std::string TrainConfig::to_toml() const {
  toml::table root;
  auto copy = *this;
  for (const auto& [key, field] : fields(copy)) {
    const auto dot = key.find('.');
    const std::string section = key.substr(0, dot), name = key.substr(dot + 1);
    if (!root.contains(section)) root.insert(section, toml::table{});
    auto& t = *root[section].as_table();
    std::visit([&](auto* p) { t.insert(name, *p); }, field);
  }
  std::ostringstream out;
  out << root << "\n";
  return out.str();
}

std::vector<std::pair<std::string, std::string>> TrainConfig::values() const {
  auto copy = *this;
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [key, field] : fields(copy)) {
    std::ostringstream v;
    std::visit(
        [&](auto* p) {
          using T = std::remove_pointer_t<decltype(p)>;
          if constexpr (std::is_same_v<T, std::string>) v << toml::value<std::string>(*p);
          else if constexpr (std::is_same_v<T, bool>) v << (*p ? "true" : "false");
          else v << *p;
        },
        field);
    out.emplace_back(key, v.str());
  }
  return out;
}

std::vector<std::string> TrainConfig::keys() {
  TrainConfig c;
  std::vector<std::string> out;
  for (const auto& f : fields(c)) out.push_back(f.first);
  return out;
}

}  // namespace cwcl
