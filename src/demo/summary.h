// Internal to the demo tier: the typed summary of a demo run, written as
// summary.json (DESIGN.md contract 5) and summary.md.
#pragma once

#include <cwcl/demo/demo.h>
#include <cwcl/eval/eval.h>
#include <cwcl/towers/tower.h>  // Modality

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cwcl::demo {

/// One row of the results table.
struct ResultRow {
  std::string task, method;
  std::string weights;  ///< the ablation variant; empty in a main row
  double top1 = 0, top5 = 0;
  int64_t n = 0;
  std::optional<Interval> top1_ci;
  std::optional<double> vs_cl;  ///< paired difference from CL on the same items
  Interval vs_cl_ci;
};

struct CalibrationReport {
  double kernel_tau = 0, calibrated_top1 = 0, best_hand_picked_top1 = 0, gap = 0;
  std::string best_hand_picked;
};

struct TemplateRow {
  std::string task, method;
  int64_t k = 0;
  double top1 = 0;
};

/// A trained main-row run of the fine-tuned speech tower.
struct FinetunedRun {
  std::string run, model, weights;
  double train_seconds = 0;
  std::string trained_on = "train";  ///< the corpus folder of its training manifest
  std::string precision = "fp32";    ///< what run.precision resolved to
};

/// One setting of a batch axis: a map at a global batch, trained with the
/// same samples seen as the others at its batch. Speech (the frozen
/// encoder): devel SLURP devel, test SLURP test intents, second kws-35.
/// Image (the ResNet tower): devel emoji-devel, test emoji-unseen, second
/// emoji-style. R@1: input->text.
struct BatchRow {
  Modality axis = Modality::Speech;
  int64_t batch = 0, steps = 0;
  std::string variant;
  double effective_positives = 0;       ///< per row of a training batch (WeightStats)
  double devel_top1 = 0, devel_r1 = 0;  ///< the choice set
  double test_top1 = 0, test_r1 = 0, second_top1 = 0;
  /// Against CL at the same batch, paired over the same test items.
  std::optional<double> test_top1_vs_cl, test_r1_vs_cl, second_vs_cl;
  Interval test_top1_vs_cl_ci, test_r1_vs_cl_ci, second_vs_cl_ci;
};

/// The setting a batch axis's rule picks on devel.
struct BatchChoice {
  int64_t batch = 0;
  std::string variant, rule;
};

/// Everything one part of the demo contributes.
struct PartSummary {
  std::vector<ResultRow> results;
  std::string chosen;  ///< the CWCL variant chosen on validation
  std::map<std::string, std::map<std::string, double>> validation;  ///< validation set -> variant -> top-1
  std::optional<CalibrationReport> calibration;
  std::vector<TemplateRow> templates;
  std::map<std::string, FinetunedRun> finetuned;  ///< cl / cwcl
  std::map<std::string, std::map<std::string, RetrievalResult>> retrieval;  ///< task -> cl / cwcl
  std::vector<std::string> plots;
  std::vector<BatchRow> batch_table;  ///< the batch part, both axes
  std::optional<BatchChoice> batch_choice, image_batch_choice;
};

struct DemoSummary {
  std::string preset;
  std::map<DemoPart, PartSummary> parts;
  double seconds = 0;

  /// The parts of a summary.json a previous run of this preset wrote; a
  /// missing file, another preset or an unreadable file gives none (said
  /// through `log`). `part_of` says which part a row (task, weights) or a
  /// validation set belongs to; plots belong to the part their name starts
  /// with.
  static std::map<DemoPart, PartSummary> read_parts(
      const std::string& path, const std::string& preset,
      const std::function<std::optional<DemoPart>(const std::string&, const std::string&)>& part_of,
      const std::function<void(const std::string&)>& log);
  void write_json(const std::string& path) const;
  void write_markdown(const std::string& path) const;
};

}  // namespace cwcl::demo
