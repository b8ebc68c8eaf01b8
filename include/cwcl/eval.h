// Zero-shot evaluation: nearest label embedding by cosine similarity.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace cwcl {

/// Class names and the text that describes each (a label file).
struct LabelSet {
  std::vector<std::string> names;
  std::vector<std::string> texts;

  /// A TSV with the header "intent<TAB>label" (or any two column names) and
  /// one class per line. Throws naming file and line for a missing column,
  /// an empty name or text, a duplicate name or a duplicate text.
  static LabelSet read_tsv(const std::string& path);
  /// Index of a class name, -1 when absent.
  int64_t index_of(const std::string& name) const;
  /// The subset of classes with these names, in this order; throws naming
  /// the first name without a label.
  LabelSet subset(const std::vector<std::string>& names, const std::string& source) const;
};

struct ClassificationResult {
  int64_t n = 0;
  double top1 = 0, top5 = 0;
  std::vector<int64_t> predictions;          ///< top-1 class per input
  std::vector<double> per_class_accuracy;    ///< NaN for a class with no inputs
  torch::Tensor confusion;                   ///< [C, C] counts, row = true class
};

/// inputs [N, D], classes [C, D] (any norms: cosine is used), targets [N]
/// class indices. top-k counts an input right when its class is among the k
/// most similar labels.
ClassificationResult zero_shot_classify(const torch::Tensor& inputs, const torch::Tensor& classes,
                                        const torch::Tensor& targets, int64_t k = 5);

}  // namespace cwcl
