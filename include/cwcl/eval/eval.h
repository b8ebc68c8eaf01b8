// Zero-shot evaluation: nearest label embedding by cosine similarity.
#pragma once

#include <torch/torch.h>

#include <functional>
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
  /// A label argument: a .tsv (read_tsv), a .txt file (one label per line,
  /// the label its own text) or a comma list. Empty and duplicate labels are
  /// errors naming the file and line (DataError) or the item (UsageError).
  static LabelSet read(const std::string& argument);
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

namespace cwcl {

/// Prompt templates with "{}" where the label text goes (CLIP's prompt
/// ensembling). One per line in a file; lines without "{}" are rejected
/// naming the file and line.
std::vector<std::string> read_templates(const std::string& path);

/// Class embeddings [C, D]: each label text through the first k templates
/// (all when k is 0 or larger than the list; no templates: the text as it
/// is), each normalised, averaged, and normalised again (Radford et al. 2021).
torch::Tensor class_embeddings(const std::function<torch::Tensor(const std::vector<std::string>&)>& encode,
                               const std::vector<std::string>& label_texts,
                               const std::vector<std::string>& templates = {}, int64_t k = 0);

struct RetrievalResult {
  double a_to_b[3] = {0, 0, 0};  ///< R@1, R@5, R@10 retrieving b rows for each a row
  double b_to_a[3] = {0, 0, 0};
  /// Per item, whether its own row came first (R@1's items): paired
  /// bootstraps of retrieval between two models use them.
  std::vector<bool> a_to_b_hits, b_to_a_hits;
};
/// Paired rows a [N, D] and b [N, D] (row i of a belongs with row i of b):
/// recall at 1, 5 and 10 by cosine, in both directions. `group` [N] gives
/// the same id to rows whose text repeats: any row of the group is right,
/// and a -> b ranks distinct groups (a repeated text takes one place of the
/// top k, at its best score).
RetrievalResult retrieval(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& group = {});

/// A two-sided confidence interval.
struct Interval {
  double low = 0, high = 0;
};

/// Percentile bootstrap over items (Efron and Tibshirani 1993): the
/// `level` interval of the accuracy mean(correct), from `resamples`
/// resamplings of the items with replacement, seeded.
Interval bootstrap_accuracy(const std::vector<bool>& correct, int64_t resamples = 2000, uint64_t seed = 0,
                            double level = 0.95);
/// Paired bootstrap of mean(a) - mean(b): both judged on the same
/// resampled items (the same test set, two models), so that what they share
/// cancels. a and b must have the same length.
Interval bootstrap_difference(const std::vector<bool>& a, const std::vector<bool>& b, int64_t resamples = 2000,
                              uint64_t seed = 0, double level = 0.95);

/// Which inputs a classification got right (top-1).
std::vector<bool> correct_top1(const ClassificationResult& result, const torch::Tensor& targets);

}  // namespace cwcl
