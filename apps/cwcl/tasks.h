// Zero-shot evaluation tasks of trained models: labelled speech test sets
// (SLURP intents, Speech Commands words), their text-only bound, and
// Fashion-MNIST classes. Shared by `cwcl eval` and `cwcl demo`.
#pragma once

#include <cwcl/eval/eval.h>
#include <cwcl/towers/text_tower.h>
#include <cwcl/data/fashion_mnist.h>
#include <cwcl/train/model.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

namespace cwcl::app {

/// A labelled speech set: a JSONL manifest whose `label_field` names each
/// utterance's class, and label texts (a TSV, or the class names themselves).
struct SpeechTaskSpec {
  std::string name;            ///< e.g. slurp-intent
  std::string manifest;
  std::string label_field = "intent";
  std::string labels;          ///< TSV class<TAB>text; empty: the class names are the texts
  std::string filter_field;    ///< keep only lines where this field is true (kws10)
  std::string templates;       ///< optional prompt templates for the label texts
};

/// A loaded speech set: utterances, classes, texts; feature caches per front end built once.
struct SpeechTaskData {
  SpeechTaskSpec spec;
  std::vector<SpeechExample> examples;  ///< labelled, filtered
  std::vector<int64_t> targets;
  LabelSet labels;                      ///< the classes present, in sorted order
  std::vector<std::string> templates;
  int64_t skipped = 0;                  ///< bad lines, unknown classes, unreadable audio
  static SpeechTaskData load(const SpeechTaskSpec& spec);
};

struct TaskResult {
  std::string task;
  int64_t skipped = 0;
  ClassificationResult classification;
  std::vector<std::string> class_names;
  bool has_retrieval = false;
  RetrievalResult retrieval;
  torch::Tensor inputs, class_embeddings, targets;  ///< for plots
  std::vector<std::string> item_ids;                 ///< speech: the manifest id of each input row
  nlohmann::json to_json(bool details) const;
};

/// Top-1 per value of a manifest field (e.g. "voice"), every group judged
/// against the whole set's classes: {"<value>": {"n", "top1"}}; lines
/// without the field form the group "(none)".
nlohmann::json top1_by_field(const TaskResult& result, const std::string& manifest, const std::string& field);

/// top1_ci: the 95 % percentile bootstrap interval of top-1 over the items;
/// with a baseline judged on the same items, difference (top-1 minus the
/// baseline's) and difference_ci (paired bootstrap), so that a 1-point
/// difference is not read as a result.
nlohmann::json top1_intervals(const TaskResult& result, const TaskResult* baseline = nullptr);

/// The model's embeddings of a speech set (features cached beside the manifest).
TaskResult evaluate_speech(TrainedModel& model, const TextTower& text, const SpeechTaskData& data);
/// Ground-truth texts of the same set through the frozen tower: the text bound.
TaskResult evaluate_text_bound(const TextTower& text, const SpeechTaskData& data);

/// Fashion-MNIST zero-shot: images of `classes` against the names of those
/// classes through the first k templates.
struct ImageTaskSpec {
  std::string name;           ///< fmnist-all, fmnist-unseen, fmnist-valid
  std::vector<int64_t> classes;
  int64_t k = 1;              ///< templates averaged (0: all)
  bool validation = false;    ///< held-out training images of the model's config instead of the test set
};
TaskResult evaluate_images(TrainedModel& model, const TextTower& text, const ImageTaskSpec& spec);

/// Reads labels from a TSV (class<TAB>text), a .txt (one per line) or a comma
/// list; empty lines and duplicates are errors naming the file and line.
LabelSet read_label_argument(const std::string& argument);

}  // namespace cwcl::app
