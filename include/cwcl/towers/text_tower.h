// A frozen text tower chosen by kind (configs and the command line).
#pragma once

#include <cwcl/names.h>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace cwcl {

enum class TextTowerKind {
  MiniLM,     ///< a BERT-family sentence encoder folder (default all-MiniLM-L6-v2)
  GloveMean,  ///< mean of GloVe word vectors
  GloveSif,   ///< SIF-weighted GloVe with the common component removed
  Script,     ///< a TorchScript module: forward(List[str]) -> [N, D]
  Store,      ///< rows of an embedding store whose ids are the texts (text.model: the store)
};

template <>
struct Names<TextTowerKind> {
  static constexpr const char* what = "text tower";
  static constexpr std::array<std::pair<TextTowerKind, const char*>, 5> table{
      {{TextTowerKind::MiniLM, "minilm"},
       {TextTowerKind::GloveMean, "glove-mean"},
       {TextTowerKind::GloveSif, "glove-sif"},
       {TextTowerKind::Script, "script"},
       {TextTowerKind::Store, "store"}}};
};

struct TextTower {
  std::string name;         ///< the kind's name
  std::string fingerprint;  ///< keys the embedding store
  /// Texts -> [N, D] L2-normalised embeddings.
  std::function<torch::Tensor(const std::vector<std::string>&)> encode;
  int64_t dim = 0;  ///< D
};

struct TextTowerOptions {
  TextTowerKind kind = TextTowerKind::MiniLM;
  std::string model;          ///< model folder (empty: the models cache); script: the .pt
  std::string sif_reference;  ///< glove-sif: corpus for the common component (empty: SLURP's lm.txt)
  int64_t batch_size = 64;
};

/// Loads a tower. Throws DataError naming the folder or file when the model
/// is missing. Store serves precomputed embeddings: a store (cwcl embed, or
/// any toolkit's in the same layout) whose ids are the texts themselves, so
/// that training needs no text model (a text it lacks is a DataError naming
/// it); `cwcl embed --tower store` instead picks a store's rows by id.
/// UsageError for Store without a model.
TextTower load_text_tower(const TextTowerOptions& options);

}  // namespace cwcl
