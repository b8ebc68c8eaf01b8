// A speech tower trained from scratch: convolutional subsampling (x4), a
// pre-LN transformer, pooling over real frames and a projection into the
// frozen tower's space.
#pragma once

#include <cwcl/names.h>
#include <torch/torch.h>

#include <string>

namespace cwcl {

enum class Pooling {
  Mean,       ///< masked mean over real frames
  Attention,  ///< one learned query attending over real frames
};

/// Pooling over each item's real frames: masked mean, or softmax attention
/// with one learned query (padding gets no weight either way).
struct FramePoolingImpl : torch::nn::Module {
  FramePoolingImpl(int64_t dim, Pooling kind);
  /// x [B, T, D], lengths [B] real frames -> [B, D].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& lengths);

  Pooling kind;
  torch::Tensor query;  // [D], attention only
};
TORCH_MODULE(FramePooling);

template <>
struct Names<Pooling> {
  static constexpr const char* what = "pooling";
  static constexpr std::array<std::pair<Pooling, const char*>, 2> table{
      {{Pooling::Mean, "mean"}, {Pooling::Attention, "attention"}}};
};

/// Sizes of the from-scratch encoder.
enum class ScratchSize {
  Tiny,   ///< trains in seconds, for tests
  Small,  ///< the default, ~2.6M parameters
};

template <>
struct Names<ScratchSize> {
  static constexpr const char* what = "speech encoder size";
  static constexpr std::array<std::pair<ScratchSize, const char*>, 2> table{
      {{ScratchSize::Tiny, "tiny"}, {ScratchSize::Small, "small"}}};
};

struct SpeechEncoderOptions {
  int64_t n_mels = 80;
  int64_t channels = 64;   ///< of the two stride-2 convolutions
  int64_t d_model = 192;
  int64_t layers = 4;
  int64_t heads = 4;
  int64_t ff = 768;
  int64_t out_dim = 384;   ///< the frozen tower's dimension
  double dropout = 0.1;
  Pooling pooling = Pooling::Mean;

  static SpeechEncoderOptions preset(ScratchSize size);
};

struct SpeechEncoderImpl : torch::nn::Module {
  explicit SpeechEncoderImpl(SpeechEncoderOptions options = {});

  /// mel [B, T, n_mels], frame_lengths [B] (undefined: all T) -> [B, out_dim].
  /// Padding past an item's length never changes its output.
  torch::Tensor forward(const torch::Tensor& mel, const torch::Tensor& frame_lengths = {});

  /// Frames left after the two stride-2 convolutions (kernel 3, no padding).
  static torch::Tensor output_lengths(const torch::Tensor& frame_lengths);

  SpeechEncoderOptions options;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear input_projection{nullptr}, head{nullptr};
  torch::nn::TransformerEncoder transformer{nullptr};
  torch::nn::LayerNorm final_norm{nullptr};
  FramePooling pooling{nullptr};
};
TORCH_MODULE(SpeechEncoder);

}  // namespace cwcl
