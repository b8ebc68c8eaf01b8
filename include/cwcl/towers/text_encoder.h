// Frozen text towers: a BERT-family sentence encoder loaded from a Hugging
// Face folder (default: sentence-transformers/all-MiniLM-L6-v2).
#pragma once

#include <cwcl/towers/tokenizer.h>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace cwcl {

/// The fields of a Hugging Face BERT config.json that the encoder uses.
struct BertConfig {
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;

  /// Reads config.json; throws naming the file and key for a non-BERT
  /// architecture or an inconsistent size.
  static BertConfig from_json_file(const std::string& path);
};

/// One post-LN transformer layer of BERT (load_bert_weights maps its
/// parameter names to Hugging Face's checkpoint names).
struct BertLayerImpl : torch::nn::Module {
  explicit BertLayerImpl(const BertConfig& config);
  /// x [B, T, H]; additive_mask [B, 1, 1, T] (0 or a large negative value).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& additive_mask);

  int64_t heads;
  torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr}, attention_output{nullptr},
      intermediate{nullptr}, output{nullptr};
  torch::nn::LayerNorm attention_norm{nullptr}, output_norm{nullptr};
};
TORCH_MODULE(BertLayer);

/// BERT: embeddings (word + position + token type, LayerNorm) and the
/// encoder layers. forward returns the last hidden states [B, T, H].
struct BertModelImpl : torch::nn::Module {
  explicit BertModelImpl(const BertConfig& config);
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);

  BertConfig config;
  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr},
      token_type_embeddings{nullptr};
  torch::nn::LayerNorm embedding_norm{nullptr};
  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(BertModel);

/// Copies a checkpoint's tensors into the model; checkpoint names may carry a
/// "bert." prefix and LayerNorm gamma/beta. Throws naming `source` and the
/// tensor when one is missing or has the wrong shape. Extra tensors (pooler)
/// are ignored.
void load_bert_weights(BertModel& model, const std::map<std::string, torch::Tensor>& tensors,
                       const std::string& source);

struct SentenceEncoderOptions {
  /// Sentences per forward pass; sentences are sorted by length first so
  /// that a batch pads little.
  int64_t batch_size = 64;
  /// L2-normalise the pooled embeddings (sentence-transformers' Normalize).
  bool normalize = true;
};

/// Tokenizer + BERT + mean pooling over real tokens (+ L2 normalisation):
/// what sentence-transformers computes for all-MiniLM-L6-v2.
class SentenceEncoder {
 public:
  /// Loads config.json, model.safetensors and the tokenizer files of a
  /// Hugging Face folder.
  static SentenceEncoder from_folder(const std::string& folder, SentenceEncoderOptions options = {});

  SentenceEncoder(WordPieceTokenizer tokenizer, BertModel model, SentenceEncoderOptions options);

  /// Embeddings [N, H] (float32, in input order).
  torch::Tensor encode(const std::vector<std::string>& texts) const;
  /// Embeddings of already tokenised inputs ([CLS] ... [SEP] ids).
  torch::Tensor encode_ids(const std::vector<std::vector<int64_t>>& ids) const;

  int64_t dim() const { return model_->config.hidden_size; }
  /// Hash of the model files it was loaded from (empty when built in memory):
  /// part of every embedding store key (see <cwcl/io/store.h>).
  const std::string& fingerprint() const { return fingerprint_; }
  const WordPieceTokenizer& tokenizer() const { return tokenizer_; }

 private:
  WordPieceTokenizer tokenizer_;
  mutable BertModel model_;  // forward is not const in libtorch; inference changes nothing
  SentenceEncoderOptions options_;
  std::string fingerprint_;
};

}  // namespace cwcl
