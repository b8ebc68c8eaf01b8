// A frozen text tower chosen by name (configs and the command line).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace cwcl {

struct TextTower {
  std::string name;
  std::string fingerprint;  ///< keys the embedding store
  /// Texts -> [N, D] L2-normalised embeddings.
  std::function<torch::Tensor(const std::vector<std::string>&)> encode;
};

struct TextTowerOptions {
  std::string tower = "minilm";  ///< minilm, glove-mean, glove-sif or script
  std::string model;             ///< model folder (empty: the models cache); script: the .pt
  std::string sif_reference = "data/slurp/lm.txt";  ///< glove-sif: corpus for the common component
  int64_t batch_size = 64;
};

/// Loads a tower; an unknown name is std::invalid_argument listing the known ones.
TextTower load_text_tower(const TextTowerOptions& options);

/// Lines of a text file (without line ends); throws naming the file when it
/// cannot be read.
std::vector<std::string> read_lines(const std::string& path);

}  // namespace cwcl
