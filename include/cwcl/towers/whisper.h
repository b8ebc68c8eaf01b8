// Whisper's audio encoder (Radford et al. 2022) in libtorch, loaded from a
// CTranslate2 checkpoint (e.g. faster-whisper tiny.en): two 1-D convolutions
// (the second with stride 2) with GELU, sinusoidal positions, pre-LN
// transformer blocks, a final layer norm.
#pragma once

#include <cwcl/io/ctranslate2.h>
#include <cwcl/towers/speech_encoder.h>  // Pooling, FramePooling
#include <torch/torch.h>

#include <vector>

namespace cwcl {

struct WhisperEncoderConfig {
  int64_t n_mels = 80;
  int64_t d_model = 384;
  int64_t heads = 6;
  int64_t layers = 4;
  int64_t max_positions = 1500;  ///< 30 s after the stride-2 convolution

  /// Sizes read from a checkpoint's variables.
  static WhisperEncoderConfig from_ct2(const Ct2Model& model, const std::string& source);
};

struct WhisperBlockImpl : torch::nn::Module {
  WhisperBlockImpl(int64_t d_model, int64_t heads);
  /// x [B, T, D]; key_mask_add [B, 1, 1, T] additive (0 or -inf-like).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_mask_add);

  int64_t heads;
  torch::nn::LayerNorm attention_norm{nullptr}, mlp_norm{nullptr};
  torch::nn::Linear qkv{nullptr}, attention_out{nullptr}, mlp_in{nullptr}, mlp_out{nullptr};
};
TORCH_MODULE(WhisperBlock);

struct WhisperEncoderImpl : torch::nn::Module {
  explicit WhisperEncoderImpl(const WhisperEncoderConfig& config);

  /// mel [B, T, n_mels] (Whisper's log-mel, T <= 2 * max_positions) and the
  /// number of real frames of each item (undefined: all T). Inputs shorter
  /// than 30 s run as they are, against the first positions. Returns hidden
  /// states [B, ceil(T / 2), D]; frames past an item's end are padding (see
  /// output_lengths), and padding never changes a real frame's output.
  torch::Tensor forward(const torch::Tensor& mel, const torch::Tensor& frame_lengths = {});

  /// Output frames of each item: ceil(frame_lengths / 2).
  static torch::Tensor output_lengths(const torch::Tensor& frame_lengths);

  WhisperEncoderConfig config;
  torch::nn::Conv1d conv1{nullptr}, conv2{nullptr};
  torch::Tensor positions;  // [max_positions, D] buffer
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm final_norm{nullptr};
};
TORCH_MODULE(WhisperEncoder);

/// Builds the encoder from the "encoder/..." variables of a CTranslate2
/// Whisper model (float16 weights become float32). Throws naming `source`
/// and the variable when one is missing or has the wrong shape.
WhisperEncoder load_whisper_encoder(const Ct2Model& model, const std::string& source);

/// Reads `folder`/model.bin.
WhisperEncoder load_whisper_encoder(const std::string& folder);

/// Which parts of the pre-trained encoder train (the sinusoidal positions never do).
enum class WhisperTraining {
  Frozen,     ///< nothing: only what sits on top (pooling, head) trains
  TopBlocks,  ///< the top `top_blocks` transformer blocks and the final norm
  Full,       ///< every block, the convolutions and the final norm
};

template <>
struct Names<WhisperTraining> {
  static constexpr const char* what = "Whisper training mode";
  static constexpr std::array<std::pair<WhisperTraining, const char*>, 3> table{
      {{WhisperTraining::Frozen, "frozen"}, {WhisperTraining::TopBlocks, "top"}, {WhisperTraining::Full, "full"}}};
};

struct WhisperTrainingOptions {
  WhisperTraining mode = WhisperTraining::TopBlocks;
  int64_t top_blocks = 2;
  double learning_rate = 1e-4;
  /// Layer-wise learning-rate decay: the block k below the top trains at
  /// learning_rate * layer_decay^k, the convolutions one step below the first block.
  double layer_decay = 0.8;
};

/// Sets requires_grad on the encoder's parameters as `options.mode` says and
/// returns one optimizer group per trained depth, with its learning rate.
std::vector<torch::optim::OptimizerParamGroup> whisper_parameter_groups(
    WhisperEncoder& encoder, const WhisperTrainingOptions& options);

/// The speech tower of the paper's setting: the pre-trained Whisper encoder,
/// pooling over real frames and a projection into the frozen tower's space.
struct WhisperTowerImpl : torch::nn::Module {
  /// head_hidden 0: a linear head; otherwise Linear-GELU-Linear with that width.
  WhisperTowerImpl(WhisperEncoder encoder, int64_t out_dim, Pooling pooling = Pooling::Mean,
                   int64_t head_hidden = 0);
  /// Whisper log-mel [B, T, 80] and real frame counts [B] -> [B, out_dim].
  torch::Tensor forward(const torch::Tensor& mel, const torch::Tensor& frame_lengths = {});
  /// The pooled encoder output [B, D], before the head.
  torch::Tensor pooled(const torch::Tensor& mel, const torch::Tensor& frame_lengths = {});

  WhisperEncoder encoder;
  FramePooling pooling{nullptr};
  torch::nn::Sequential head{nullptr};
};
TORCH_MODULE(WhisperTower);

}  // namespace cwcl
