// A small convolutional image tower for 28 x 28 grayscale images.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace cwcl {

struct ImageEncoderOptions {
  int64_t width = 32;     ///< channels of the first block; doubled twice
  int64_t hidden = 256;   ///< of the projection head
  int64_t out_dim = 384;  ///< the frozen tower's dimension
};

/// Four 3x3 convolution blocks (batch norm, ReLU, two 2x2 poolings), global
/// average pooling, and a two-layer projection head.
struct ImageEncoderImpl : torch::nn::Module {
  explicit ImageEncoderImpl(ImageEncoderOptions options = {});
  /// x [B, 1, 28, 28] normalised -> [B, out_dim].
  torch::Tensor forward(const torch::Tensor& x);
  ImageEncoderOptions options;
  torch::nn::Sequential features{nullptr}, head{nullptr};
};
TORCH_MODULE(ImageEncoder);

}  // namespace cwcl
