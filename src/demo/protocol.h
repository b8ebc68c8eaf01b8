// Internal to the demo tier: a preset and the loss variants, read from the
// demo's data files (configs/demo/) into typed configuration.
#pragma once

#include <cwcl/model/config.h>
#include <cwcl/names.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

namespace cwcl::demo {

/// The method column of a results row.
enum class DemoMethod { CL, CWCL, Cosine, ClPlusCosine };

}  // namespace cwcl::demo

namespace cwcl {
template <>
struct Names<demo::DemoMethod> {
  static constexpr const char* what = "method";
  static constexpr std::array<std::pair<demo::DemoMethod, const char*>, 4> table{
      {{demo::DemoMethod::CL, "cl"},
       {demo::DemoMethod::CWCL, "cwcl"},
       {demo::DemoMethod::Cosine, "cosine"},
       {demo::DemoMethod::ClPlusCosine, "cl+cosine"}}};
};
}  // namespace cwcl

namespace cwcl::demo {

/// One loss variant: its name, its method, the keys it sets.
struct Variant {
  std::string name;
  DemoMethod method = DemoMethod::CWCL;
  ConfigOverlay overlay;
};

/// One stage: the configuration every run of it starts from (a file users
/// run with the preset's keys set on it) and the variants it trains.
struct Stage {
  std::string base;     ///< the configuration file, for messages and summaries
  TrainConfig config;
  std::vector<Variant> variants;
  /// Speech stages: the corpus part they train on, <corpus>/<part>/manifest.jsonl
  /// ("train"; "train_mixed" adds the Piper voice: make piper-corpus).
  std::string train_part = "train";
};

/// The batch axis: every variant at every global batch, each run seeing
/// `samples` samples (steps = max(min_steps, samples / batch)), warmup 10 %
/// of its steps.
struct BatchAxis {
  std::vector<int64_t> batches;
  int64_t samples = 0, min_steps = 1;
  /// Rows embedded at once: a larger batch is embedded in chunks of this
  /// many (GradCache, run.accum_steps = batch / chunk); 0: whole.
  int64_t chunk = 0;
  int64_t steps(int64_t batch) const { return std::max(min_steps, samples / batch); }
};

struct Preset {
  std::string name;
  /// The stages a preset has (a part runs when its stages are there).
  std::optional<Stage> speech_frozen, speech_finetuned, image, speech_batch, image_batch;
  BatchAxis batch_axis, image_batch_axis;
  /// Every variant of configs/demo/variants.toml, in its order.
  std::vector<Variant> all_variants;
  const Variant& variant(const std::string& name) const;
};

/// A preset by name (configs/demo/<name>.toml) or by file. Throws
/// UsageError for an unknown name (listing the presets there), ConfigError
/// naming the file and table for a bad key, value or variant.
Preset load_preset(const std::string& name_or_file);

}  // namespace cwcl::demo
