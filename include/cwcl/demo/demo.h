// The experiments of DESIGN.md end to end (`cwcl demo`, `make demo`): CL
// against CWCL with identical data, tower, seed, steps and schedule, the
// weight map of the main CWCL rows chosen on validation data, never on
// test. The protocol is data: presets (configs/demo/<preset>.toml) name the
// configurations users run and the keys each stage sets, the loss variants
// live in configs/demo/variants.toml (docs/experiments.md).
#pragma once

#include <cwcl/names.h>
#include <cwcl/train/trainer.h>

#include <functional>
#include <string>
#include <vector>

namespace cwcl {

/// The parts of the demo, each run or kept (--only) as a whole: speech (the
/// map ablation on the frozen encoder, the fine-tuned main rows), image, and
/// batch (CL against CWCL maps across global batch sizes, on the frozen
/// encoder). A preset runs the parts whose stages it has.
enum class DemoPart { Speech, Image, Batch };
template <>
struct Names<DemoPart> {
  static constexpr const char* what = "demo part";
  static constexpr std::array<std::pair<DemoPart, const char*>, 3> table{
      {{DemoPart::Speech, "speech"}, {DemoPart::Image, "image"}, {DemoPart::Batch, "batch"}}};
};

struct DemoOptions {
  /// A preset name (configs/demo/<name>.toml: quick, full, smoke) or a preset file.
  std::string preset = "quick";
  std::string out = "runs/demo";
  /// The speech corpus; built there first (build_corpus) when it is missing.
  std::string corpus = "runs/corpus";
  /// A data folder like the repository's data/ (empty: cwcl's bundled data).
  std::string data;
  /// Parts to run (empty: all). The others keep their results from the
  /// summary a previous run of the same preset wrote.
  std::vector<DemoPart> only;
  std::function<void(const std::string&)> log;
  std::function<void(const TrainProgress&)> progress;  ///< each training run's steps
};

/// Trains, evaluates and writes <out>/summary.json (DESIGN.md contract 5),
/// summary.md, the plots and the models <out>/{speech,image}-{cl,cwcl}.
/// Finished runs (under <out>/runs/<preset>) are reused. Returns a line
/// saying what was written.
std::string run_demo_protocol(const DemoOptions& options);

/// What a preset trains, without training it: per stage its base file and
/// the configuration of each run (the stage's keys and the variant's set;
/// the paths the demo sets from --corpus and --out left as the base has them).
/// The fine-tuned speech stage lists CL and every CWCL variant it may be
/// given (the map is chosen on validation at run time).
struct DemoStagePlan {
  std::string stage, base;
  std::vector<std::pair<std::string, TrainConfig>> runs;  ///< variant name, configuration
  std::string train_part;  ///< a speech stage's corpus folder ("train" unless the preset sets `train`)
};
/// Throws UsageError for an unknown preset, ConfigError naming the file and
/// table for a bad key, value or variant.
std::vector<DemoStagePlan> plan_demo(const std::string& preset);

struct CorpusOptions {
  std::string out;   ///< the corpus folder; finished parts are kept
  std::string data;  ///< a data folder like the repository's data/ (empty: cwcl's bundled data)
  int workers = 2;   ///< synthesis processes
  bool texts_only = false;  ///< the texts and manifests to synthesise, no audio
  /// Recorded human letters and words (Debian klettres-data), test sets only.
  std::string recorded_speech = "/usr/share/klettres";
};

/// The synthesised speech corpus of the experiments (docs/corpus.md): SLURP
/// training text plus WordNet usage examples spoken by espeak-ng training
/// voices, SLURP devel by two held-out espeak-ng voices, SLURP test and the
/// Speech Commands words by the four flite voices; the recorded test sets
/// real_words and real_letters (manifests over recorded_speech). Resumable. Returns one
/// JSON line of counts.
std::string build_corpus(const CorpusOptions& options, const std::function<void(const std::string&)>& log = {});

}  // namespace cwcl
