// Zero-shot evaluation tasks of trained models: labelled speech sets (SLURP
// intents, Speech Commands words), their text-only bound, Fashion-MNIST
// classes, and the validation a training run scores itself with. Shared by
// `cwcl eval`, the trainer's validation and `cwcl demo`.
#pragma once

#include <cwcl/data/images.h>
#include <cwcl/data/speech.h>
#include <cwcl/eval/eval.h>
#include <cwcl/model/model.h>
#include <cwcl/towers/text_tower.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cwcl {

/// A labelled speech set: a JSONL manifest whose `label_field` names each
/// utterance's class, and label texts (a label argument, or the class names
/// themselves).
struct SpeechTaskSpec {
  std::string name;          ///< e.g. slurp-intent
  std::string manifest;
  std::string label_field = "intent";
  std::string labels;        ///< LabelSet::read argument; empty: the class names are the texts
  std::string filter_field;  ///< keep only lines where this field is true (kws10)
  std::string templates;     ///< optional prompt templates for the label texts
};

/// A loaded speech set: utterances, classes, texts.
struct SpeechTaskData {
  SpeechTaskSpec spec;
  std::vector<SpeechExample> examples;  ///< labelled, filtered
  std::vector<int64_t> targets;
  LabelSet labels;                      ///< the classes present, in sorted order
  std::vector<std::string> templates;
  int64_t skipped = 0;                  ///< bad lines, lines without a label
  /// Throws DataError naming the manifest when no line has a label, and the
  /// label file when a class has no text.
  static SpeechTaskData load(const SpeechTaskSpec& spec);
};

struct TaskResult {
  std::string task;
  int64_t skipped = 0;  ///< inputs left out: bad lines, unreadable audio
  ClassificationResult classification;
  std::vector<std::string> class_names;
  std::optional<RetrievalResult> retrieval;  ///< speech: inputs against their own texts
  torch::Tensor inputs, class_embeddings, targets;  ///< for plots
  std::vector<std::string> item_ids;                 ///< manifests: the id of each input row
};

/// The model's embeddings of a speech set (features cached beside the
/// manifest, feature_cache_path) against its label texts, and retrieval of
/// each utterance's own text among the set's texts. Unreadable clips and
/// clips shorter or longer than the tower takes are skipped and counted.
TaskResult evaluate_speech(TrainedModel& model, const TextTower& text, const SpeechTaskData& data);
/// Ground-truth texts of the same set through the frozen tower: the text bound.
TaskResult evaluate_text_bound(const TextTower& text, const SpeechTaskData& data);

/// Fashion-MNIST zero-shot: images of `classes` against the names of those
/// classes through the first k templates.
struct ImageTaskSpec {
  std::string name;  ///< fmnist-all, fmnist-unseen, fmnist-valid
  std::vector<int64_t> classes;
  int64_t k = 1;             ///< templates averaged (0: all)
  bool validation = false;   ///< held-out training images of the model's config instead of the test set
};
TaskResult evaluate_images(TrainedModel& model, const TextTower& text, const ImageTaskSpec& spec);

/// A labelled image set: an image manifest whose lines carry `label`, and
/// the label texts (a LabelSet::read argument: the classes to choose among,
/// which every line's label must be one of; empty: the labels present, each
/// its own text).
struct ImageManifestTaskSpec {
  std::string name;  ///< e.g. emoji-unseen
  std::string manifest;
  std::string labels;
  std::string templates;  ///< optional prompt templates for the label texts
};

/// A loaded image set: images, classes, texts.
struct ImageManifestTaskData {
  ImageManifestTaskSpec spec;
  std::vector<ImageExample> examples;  ///< labelled
  std::vector<int64_t> targets;
  LabelSet labels;
  std::vector<std::string> templates;
  int64_t skipped = 0;  ///< bad lines, lines without a label or with one the label file lacks
  /// Throws DataError naming the manifest when no line has a usable label.
  static ImageManifestTaskData load(const ImageManifestTaskSpec& spec);
};

/// The model's embeddings of the images (the tower's own preprocessing)
/// against the label texts, and retrieval both ways between images and
/// their class's text (images of one class count as one text). Unreadable
/// images are skipped and counted.
TaskResult evaluate_image_manifest(TrainedModel& model, const TextTower& text, const ImageManifestTaskData& data);

/// Top-1 with its 95 % percentile bootstrap interval over the items and,
/// against a baseline judged on the same items, the difference (top-1 minus
/// the baseline's) with its paired bootstrap interval, so that a 1-point
/// difference is not read as a result.
struct Top1Intervals {
  Interval top1;
  std::optional<double> difference;
  Interval difference_ci;
};
Top1Intervals top1_intervals(const TaskResult& result, const TaskResult* baseline = nullptr);

/// Top-1 of the items sharing one value of a manifest field (e.g. voice),
/// every group judged against the whole set's classes (splitting the set
/// would shrink the class set); lines without the field form "(none)".
struct GroupTop1 {
  std::string value;
  int64_t n = 0;
  double top1 = 0;
};
std::vector<GroupTop1> top1_by_field(const TaskResult& result, const std::string& manifest, const std::string& field);

/// One validation of a model being trained (run.eval_every).
struct Validation {
  double score = 0;  ///< higher is better: the best so far is kept as best.pt
  std::vector<std::pair<std::string, double>> values;  ///< written to results.jsonl
};
using Validator = std::function<Validation(TrainedModel&, const TextTower&)>;

/// The validation a configuration asks for: zero-shot top-1 (the score) and
/// top-5 on eval.manifest for speech and the colour tower, with retrieval
/// R@1 both ways; on the held-out Fashion-MNIST training images of the seen
/// classes for the small image tower. Empty when
/// run.eval_every is 0. Loads the validation set now (errors surface
/// before training starts).
Validator make_validator(const TrainConfig& config);

}  // namespace cwcl
