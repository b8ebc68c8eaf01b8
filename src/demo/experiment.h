// Internal to the demo tier: what the demo's parts share.
#pragma once

#include <cwcl/demo/demo.h>
#include <cwcl/eval/tasks.h>

#include "protocol.h"
#include "summary.h"

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cwcl::demo {

namespace fs = std::filesystem;
using Log = std::function<void(const std::string&)>;

// The validation sets and test tasks of each part.
inline constexpr const char* kSpeechValidation = "slurp-devel";
inline constexpr const char* kImageValidation = "emoji-devel";
inline const std::vector<std::string> kSpeechTasks = {"slurp-intent", "kws-35", "kws-10", "real-words", "real-letters"};
inline const std::vector<std::string> kImageTasks = {"emoji-unseen", "emoji-style"};

/// The part a results row (its task and weights) or a validation set
/// belongs to: the batch part's rows name their batch in their weights.
std::optional<DemoPart> part_of(const std::string& task, const std::string& weights);

/// What every experiment of one demo run shares.
struct Demo {
  Preset preset;
  fs::path out, corpus, runs, data;
  TextTower text;
  DemoSummary summary;
  Log log;
  std::function<void(const TrainProgress&)> progress;
};

struct Run {
  std::string name, dir;
  TrainConfig config;  ///< as the run resolved it (calibrated sharpness)
  double train_seconds = 0;
};

/// Trains (or, when the run directory already holds its model, reuses) one
/// run of a variant on a stage's configuration.
Run train_run(const Demo& d, TrainConfig c, const std::string& dir, const Variant& variant);

/// A results row; with intervals: its 95 % bootstrap interval of top-1 and,
/// against CL on the same test items, the paired difference and its interval.
ResultRow row(const std::string& task, const std::string& method, const TaskResult& r);
ResultRow row_with_intervals(const std::string& task, const std::string& method, const TaskResult& r,
                             const TaskResult* cl);

/// Training-loss curves of CL and the chosen CWCL run.
void curves_plot(const std::string& path, const std::string& title, const Run& cl, const Run& cwcl);
/// The cross-modal similarity of a few items per class, sorted by class.
torch::Tensor sorted_similarity(const TaskResult& r, const torch::Tensor& frozen_side, int64_t per_class,
                                int64_t max_classes);
/// Does the automatic calibration match the best hand-picked map on validation?
CalibrationReport calibration_report(const std::map<std::string, double>& validation, const Preset& p, double tau);

/// The model a run keeps: best.pt where validation chose one, else the last.
std::string kept_model(const Run& run);
/// Copies a finished run to its published name (replacing an older one); the
/// model it keeps becomes model.pt there.
void publish(const Run& run, const fs::path& to);
/// A file of --data, or of cwcl's bundled data when --data is not given.
std::string data_path(const Demo& d, const std::string& relative);

/// Trains every variant of a stage, validates each, and picks the best CWCL
/// variant on validation (never on test); `evaluate` records each variant's
/// test results.
struct Ablation {
  std::map<std::string, Run> trained;
  std::string chosen;
};
Ablation train_and_choose(Demo& d, PartSummary& part, const Stage& stage, const TrainConfig& base,
                          const std::string& prefix, const std::string& validation_set,
                          const std::function<double(TrainedModel&)>& validate,
                          const std::function<void(const std::string&, TrainedModel&)>& evaluate);

/// The main rows: CL and the chosen CWCL, with the difference between them.
void add_main_rows(PartSummary& part, const std::string& task, const TaskResult& cl, const TaskResult& cwcl);
/// One ablation row per variant not in `skip`, against the variants' own
/// CL; `tag` says which tower they trained (the "weights" column).
void add_ablation_rows(PartSummary& part, const Preset& p, const std::string& task,
                       const std::map<std::string, TaskResult>& by_variant, const std::vector<std::string>& skip,
                       const std::string& tag);

/// A part of the speech corpus: <corpus>/<part>/manifest.jsonl.
std::string manifest(const Demo& d, const std::string& part);
/// The manifest a speech stage trains on. A part other than "train" is not
/// built by the corpus step: throws DataError naming it when it is missing.
std::string training_manifest(const Demo& d, const Stage& stage);
/// The corpus, built first when a part of it is missing (cwcl corpus).
void ensure_corpus(const Demo& d);
/// The speech validation set (SLURP devel, intents) of the demo's corpus.
SpeechTaskData speech_validation(const Demo& d);
/// The speech test sets of kSpeechTasks named in `tasks`, in that order, from
/// the demo's corpus (one table of where each lives and what labels it).
std::vector<SpeechTaskData> speech_tests(const Demo& d, const std::vector<std::string>& tasks = kSpeechTasks);

/// A variant's configuration at one batch of the axis: the batch, its
/// steps, warmup 10 % of them, a checkpoint at the end only, embedded in
/// chunks of the axis's chunk rows.
TrainConfig batch_config(TrainConfig c, const BatchAxis& axis, int64_t batch);

/// The emoji benchmark's files in <corpus>/emoji (cwcl emoji writes them
/// there first when they are missing) and its prompt templates.
struct EmojiFiles {
  fs::path folder;
  std::string templates;
  std::string file(const std::string& name) const { return (folder / name).string(); }
};
EmojiFiles emoji_benchmark(const Demo& d);
/// A stage's configuration on the emoji benchmark's files: training, devel
/// validation and the caption store. Throws ConfigError when the stage's
/// tower is not the colour one.
TrainConfig emoji_config(const Demo& d, const Stage& stage, const EmojiFiles& emoji);

/// The parts: each fills its PartSummary (and the speech and image parts
/// publish their models).
void speech_experiments(Demo& d, PartSummary& part);
void image_experiments(Demo& d, PartSummary& part);
/// The batch part: the speech axis and the image axis, where the preset has them.
void batch_experiments(Demo& d, PartSummary& part);

}  // namespace cwcl::demo
