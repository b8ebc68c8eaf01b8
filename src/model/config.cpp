// The one table of configuration keys: parsing, --set, the resolved TOML and
// resume checks all walk it, so a key is added in one place. Enum values are
// parsed here and nowhere else in the library.
#include <cwcl/io/files.h>
#include <cwcl/runtime.h>
#include <cwcl/model/config.h>

#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <set>
#include <sstream>

namespace cwcl {
namespace {

struct Field {
  std::string key;
  const char* type;  // for "must be ..." messages
  std::function<bool(const toml::node&)> assign;  // false when the node's type does not fit
  std::function<std::string()> show;              // the value in TOML syntax
  // A resumed run may give this key another value: it changes how or how
  // long the run computes, where it lives, or what it reports, not the
  // weights of the steps already taken (TrainConfig::may_change_on_resume).
  bool may_change_on_resume = false;
};

// Marks a field that may change on resume.
Field resumable(Field f) {
  f.may_change_on_resume = true;
  return f;
}

template <class T>
std::string toml_text(const T& value) {
  std::ostringstream out;
  out << toml::value<T>(value);
  return out.str();
}

// The shortest text that reads back as the same double (0.1, not
// 0.10000000000000001), with a '.' or exponent so TOML keeps it a float.
std::string shortest_float(double v) {
  if (!std::isfinite(v)) return toml_text(v);
  char buf[64];
  const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
  std::string s(buf, end);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

Field field(const std::string& key, std::string& v) {
  return {key, "a string",
          [&v](const toml::node& n) {
            auto x = n.value_exact<std::string>();
            return x ? (v = *x, true) : false;
          },
          [&v] { return toml_text(v); }};
}

Field field(const std::string& key, int64_t& v) {
  return {key, "an integer",
          [&v](const toml::node& n) {
            auto x = n.value_exact<int64_t>();
            return x ? (v = *x, true) : false;
          },
          [&v] { return std::to_string(v); }};
}

// Every number of a configuration is finite: inf and nan are refused here,
// naming the key, whatever range check follows.
Field field(const std::string& key, double& v) {
  return {key, "a finite number",
          [&v](const toml::node& n) {
            if (auto x = n.value_exact<double>()) {
              if (!std::isfinite(*x)) return false;
              return v = *x, true;
            }
            if (auto x = n.value_exact<int64_t>()) return v = static_cast<double>(*x), true;
            return false;
          },
          [&v] { return shortest_float(v); }};
}

Field field(const std::string& key, bool& v) {
  return {key, "true or false",
          [&v](const toml::node& n) {
            auto x = n.value_exact<bool>();
            return x ? (v = *x, true) : false;
          },
          [&v] { return std::string(v ? "true" : "false"); }};
}

// An enum given by name; `parse` throws (any exception) for an unknown one.
template <class E>
Field enum_field(const std::string& key, E& v, std::function<E(const std::string&)> parse,
                 std::function<std::string(E)> name) {
  return {key, "a string",
          [&v, key, parse](const toml::node& n) {
            auto x = n.value_exact<std::string>();
            if (!x) return false;
            try {
              v = parse(*x);
            } catch (const std::exception& e) {
              throw ConfigError("key '" + key + "': " + e.what());
            }
            return true;
          },
          [&v, name] { return toml_text(name(v)); }};
}

template <class E>
Field named_field(const std::string& key, E& v) {
  return enum_field<E>(key, v, [](const std::string& s) { return parse_name<E>(s); },
                       [](E e) { return std::string(name_of(e)); });
}

// "0,1,2" (a string, as --set gives it) or [0, 1, 2].
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& key) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    try {
      size_t used = 0;
      out.push_back(std::stoll(item, &used));
      if (used == item.size()) continue;
    } catch (const std::exception&) {
    }
    throw ConfigError("key '" + key + "': '" + shorten(item) + "' is not an integer");
  }
  return out;
}

Field list_field(const std::string& key, std::vector<int64_t>& v) {
  return {key, "a list of integers",
          [&v, key](const toml::node& n) {
            if (auto s = n.value_exact<std::string>()) return v = parse_int_list(*s, key), true;
            const auto* array = n.as_array();
            if (!array) return false;
            std::vector<int64_t> out;
            for (const auto& item : *array) {
              auto x = item.value_exact<int64_t>();
              if (!x) return false;
              out.push_back(*x);
            }
            v = out;
            return true;
          },
          [&v] {
            std::string s;
            for (auto x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
            return toml_text(s);
          }};
}

void add_tower_fields(std::vector<Field>& f, TowerSpec& spec) {
  if (auto* w = std::get_if<WhisperTowerSpec>(&spec)) {
    f.push_back(field("model.whisper_model", w->model));
    f.push_back(named_field("model.whisper_training", w->training));
    f.push_back(field("model.top_blocks", w->top_blocks));
    f.push_back(field("model.layer_decay", w->layer_decay));
    f.push_back(named_field("model.pooling", w->pooling));
    f.push_back(field("model.head_hidden", w->head_hidden));
  } else if (auto* s = std::get_if<ScratchSpeechTowerSpec>(&spec)) {
    f.push_back(named_field("model.scratch_size", s->size));
    f.push_back(named_field("model.pooling", s->pooling));
  } else if (auto* i = std::get_if<ImageTowerSpec>(&spec)) {
    f.push_back(field("model.image_width", i->width));
  } else if (auto* r = std::get_if<ResNetTowerSpec>(&spec)) {
    f.push_back(field("model.resnet_width", r->width));
    f.push_back(field("model.resnet_blocks", r->blocks));
    f.push_back(field("model.image_size", r->image_size));
    f.push_back(field("model.init", r->init));
  }
}

// The keys of `c` as it is now (its tower's keys only), in order.
std::vector<Field> fields(TrainConfig& c) {
  auto& r = c.run;
  // A moved run directory, a longer run, other chunks, timeouts, threads,
  // device, cadences: the same training, up to rounding.
  std::vector<Field> f{resumable(field("run.out", r.out)), field("run.seed", r.seed),
                       resumable(field("run.steps", r.steps)), field("run.batch_size", r.batch_size),
                       resumable(field("run.accum_steps", r.accum_steps)),
                       resumable(field("run.dist_timeout", r.dist_timeout)), resumable(field("run.threads", r.threads)),
                       resumable(field("run.checkpoint_every", r.checkpoint_every)),
                       resumable(field("run.keep_checkpoints", r.keep_checkpoints)),
                       resumable(field("run.log_every", r.log_every)), resumable(field("run.eval_every", r.eval_every)),
                       resumable(enum_field<DeviceSpec>("run.device", r.device, DeviceSpec::parse,
                                                        [](const DeviceSpec& d) { return d.str(); })),
                       named_field("run.precision", r.precision)};
  // model.tower picks the variant's alternative; a new kind starts from its defaults.
  f.push_back({"model.tower", "a string",
               [&c](const toml::node& n) {
                 auto x = n.value_exact<std::string>();
                 if (!x) return false;
                 TowerKind kind{};
                 try {
                   kind = parse_name<TowerKind>(*x);
                 } catch (const std::exception& e) {
                   throw ConfigError(std::string("key 'model.tower': ") + e.what());
                 }
                 if (kind != tower_kind(c.model)) c.model = default_spec(kind);
                 return true;
               },
               [&c] { return toml_text(std::string(name_of(tower_kind(c.model)))); }});
  add_tower_fields(f, c.model);
  auto& d = c.data;
  auto& l = c.loss;
  auto& o = c.optim;
  std::vector<Field> rest{
      named_field("text.tower", c.text.tower), field("text.model", c.text.model), field("data.train", d.train),
      field("data.features", d.features), field("data.text_store", d.text_store), field("data.limit", d.limit),
      field("data.augment", d.augment), field("data.audio_copies", d.audio_copies),
      field("data.copy_augment.min_speed", d.copy_augment.min_speed),
      field("data.copy_augment.max_speed", d.copy_augment.max_speed),
      field("data.copy_augment.reverb_probability", d.copy_augment.reverb_probability),
      field("data.copy_augment.min_rt60", d.copy_augment.min_rt60),
      field("data.copy_augment.max_rt60", d.copy_augment.max_rt60),
      field("data.copy_augment.min_drr_db", d.copy_augment.min_drr_db),
      field("data.copy_augment.max_drr_db", d.copy_augment.max_drr_db),
      field("data.copy_augment.max_gain_db", d.copy_augment.max_gain_db),
      field("data.copy_augment.noise_probability", d.copy_augment.noise_probability),
      field("data.copy_augment.min_snr_db", d.copy_augment.min_snr_db),
      field("data.copy_augment.max_snr_db", d.copy_augment.max_snr_db),
      field("data.copy_augment.min_warp", d.copy_warp.min_factor),
      field("data.copy_augment.max_warp", d.copy_warp.max_factor),
      field("data.trim_silence", d.trim_silence), list_field("data.classes", d.classes),
      field("data.valid_fraction", d.valid_fraction), field("data.class_names", d.class_names),
      field("data.templates", d.templates),
      // Validation reads the model; it does not change it.
      resumable(field("eval.manifest", c.eval.manifest)), resumable(field("eval.label_field", c.eval.label_field)),
      resumable(field("eval.labels", c.eval.labels)), resumable(field("eval.templates", c.eval.templates)),
      named_field("loss.kind", l.kind),
      named_field("loss.weights", l.weights),
      // Set by calibration at the start and restored from the checkpoint.
      resumable(field("loss.gamma", l.gamma)), resumable(field("loss.kernel_tau", l.kernel_tau)), field("loss.center", l.center),
      field("loss.calibrate", l.calibrate),
      named_field("loss.directions", l.directions),
      field("loss.cosine_weight", l.cosine_weight), field("loss.temperature", l.temperature), field("loss.learn_temperature", l.learn_temperature),
      // Measured at the start, restored from the checkpoint; both paths give the same loss.
      resumable(named_field("loss.path", l.path)),
      field("optim.lr", o.lr), field("optim.weight_decay", o.weight_decay), field("optim.warmup", o.warmup),
      field("optim.min_lr", o.min_lr), field("optim.encoder_lr", o.encoder_lr), field("optim.clip", o.clip)};
  f.insert(f.end(), rest.begin(), rest.end());
  return f;
}

// Which tower kind owns a model.* key that the current tower lacks.
std::string owner_of(const std::string& key) {
  for (const auto& [kind, name] : Names<TowerKind>::table) {
    TrainConfig probe;
    probe.model = default_spec(kind);
    std::vector<Field> f;
    add_tower_fields(f, probe.model);
    for (const auto& x : f)
      if (x.key == key) return name;
  }
  return "";
}

using FlatTable = std::vector<std::pair<std::string, const toml::node*>>;

void flatten(const toml::table& table, const std::string& prefix, FlatTable& out) {
  for (const auto& [k, node] : table) {
    const std::string key = prefix + std::string(k.str());
    if (const auto* sub = node.as_table())
      flatten(*sub, key + ".", out);
    else
      out.emplace_back(key, &node);
  }
}

void assign_key(TrainConfig& c, const std::string& key, const toml::node& node, const std::string& source) {
  auto known = fields(c);
  auto it = std::find_if(known.begin(), known.end(), [&](const Field& f) { return f.key == key; });
  if (it == known.end()) {
    const auto owner = owner_of(key);
    if (owner.empty()) throw ConfigError(source + ": unknown key '" + shorten(key) + "'");
    throw ConfigError(source + ": key '" + key + "' belongs to model.tower = \"" + owner + "\", but the tower is \"" +
                      name_of(tower_kind(c.model)) + "\"");
  }
  try {
    if (!it->assign(node)) throw ConfigError("key '" + key + "' must be " + it->type);
  } catch (const ConfigError& e) {
    throw ConfigError(source + ": " + e.what());
  }
}

// model.tower first: it decides which other model.* keys exist.
void apply_table(TrainConfig& c, const toml::table& table, const std::string& source) {
  FlatTable flat;
  flatten(table, "", flat);
  std::stable_partition(flat.begin(), flat.end(), [](const auto& kv) { return kv.first == "model.tower"; });
  for (const auto& [key, node] : flat) assign_key(c, key, *node, source);
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

}  // namespace

struct ConfigOverlay::Table {
  toml::table table;
};

ConfigOverlay ConfigOverlay::parse(const std::string& text, const std::string& source) {
  ConfigOverlay o;
  o.table_ = std::make_shared<const Table>(Table{parse_or_throw(text, source)});
  o.source_ = source;
  return o;
}

ConfigOverlay ConfigOverlay::read(const std::string& path) {
  std::string text;
  for (const auto& line : read_lines(path)) text += line + "\n";
  return parse(text, path);
}

std::vector<std::string> ConfigOverlay::keys() const {
  FlatTable flat;
  flatten(table_->table, "", flat);
  std::vector<std::string> out;
  for (const auto& kv : flat) out.push_back(kv.first);
  return out;
}

void TrainConfig::apply(const ConfigOverlay& overlay) { apply_table(*this, overlay.table_->table, overlay.source_); }

TrainConfig TrainConfig::from_string(const std::string& text, const std::string& source) {
  TrainConfig c;
  c.apply(ConfigOverlay::parse(text, source));
  return c;
}

TrainConfig TrainConfig::from_file(const std::string& path) {
  TrainConfig c;
  c.apply(ConfigOverlay::read(path));
  return c;
}

void TrainConfig::set(const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) throw ConfigError("--set " + assignment + ": expected section.key=value");
  const std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  toml::table table;
  try {
    table = toml::parse(key + " = " + value, std::string_view("--set"));
  } catch (const toml::parse_error& e) {
    // A bare word is taken as a string; a value that tried to be TOML and
    // failed (a lone quote, a bracket) is a typo, not a word.
    if (value.empty() || value.find_first_of("\"'[{") == 0 || value.find_first_of("\n\r") != std::string::npos)
      throw ConfigError("--set " + shorten(key) + ": the value is not valid TOML (" +
                        std::string(e.description()) + ")");
    std::string quoted = "\"";
    for (char ch : value) quoted += (ch == '"' || ch == '\\') ? std::string("\\") + ch : std::string(1, ch);
    table = parse_or_throw(key + " = " + quoted + "\"", "--set " + shorten(assignment));
  }
  apply_table(*this, table, "--set " + assignment);
}


std::string TrainConfig::to_toml() const {
  auto copy = *this;
  std::ostringstream out;
  std::string section;
  for (const auto& f : fields(copy)) {
    const auto dot = f.key.find('.');
    if (f.key.substr(0, dot) != section) {
      section = f.key.substr(0, dot);
      out << (out.tellp() > 0 ? "\n" : "") << "[" << section << "]\n";
    }
    out << f.key.substr(dot + 1) << " = " << f.show() << "\n";
  }
  return out.str();
}

std::vector<std::pair<std::string, std::string>> TrainConfig::values() const {
  auto copy = *this;
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : fields(copy)) out.emplace_back(f.key, f.show());
  return out;
}

bool TrainConfig::may_change_on_resume(const std::string& key) {
  for (const auto& [kind, name] : Names<TowerKind>::table) {
    TrainConfig c;
    c.model = default_spec(kind);
    for (const auto& f : fields(c))
      if (f.key == key) return f.may_change_on_resume;
  }
  return false;
}

std::vector<std::string> TrainConfig::keys() {
  std::vector<std::string> out;
  for (const auto& [kind, name] : Names<TowerKind>::table) {
    TrainConfig c;
    c.model = default_spec(kind);
    for (const auto& f : fields(c))
      if (std::find(out.begin(), out.end(), f.key) == out.end()) out.push_back(f.key);
  }
  return out;
}

LossOptions TrainConfig::loss_options() const {
  LossOptions o;
  o.kind = loss.kind;
  o.temperature = loss.temperature;
  o.weights.map = loss.weights;
  o.weights.gamma = loss.gamma;
  o.weights.kernel_tau = loss.kernel_tau;
  o.directions = loss.directions;
  o.cosine_weight = loss.cosine_weight;
  o.tiling.path = loss.path;
  return o;
}

TextTowerOptions TrainConfig::text_tower_options() const {
  TextTowerOptions o;
  o.kind = text.tower;
  o.model = text.model;
  return o;
}

std::string TrainConfig::class_names_file() const {
  return data.class_names.empty() ? data_file("fashion-mnist/classes.tsv") : data.class_names;
}

std::string TrainConfig::templates_file() const {
  return data.templates.empty() ? data_file("fashion-mnist/templates.txt") : data.templates;
}

}  // namespace cwcl
