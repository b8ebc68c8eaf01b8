// A ResNet-style colour image tower (He et al. 2016: basic blocks, batch
// norm, identity shortcuts), sized to train on a CPU in minutes.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace cwcl {

struct ResNetOptions {
  int64_t width = 32;    ///< channels of the first stage; doubled at each of the three others
  int64_t blocks = 1;    ///< basic blocks per stage
  int64_t hidden = 512;  ///< of the projection head
  int64_t out_dim = 384; ///< the frozen tower's dimension
};

/// Two 3x3 convolutions with batch norm and a shortcut (a strided 1x1
/// convolution when the shape changes).
struct ResNetBlockImpl : torch::nn::Module {
  ResNetBlockImpl(int64_t in, int64_t out, int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Sequential shortcut{nullptr};  ///< null: identity
};
TORCH_MODULE(ResNetBlock);

/// Stem (3x3 convolution, stride 2), four stages of `blocks` blocks (the
/// last three halve the side), global average pooling and a two-layer
/// projection head. Any input side works; 64 px gives 4 x 4 before pooling.
struct ResNetImpl : torch::nn::Module {
  explicit ResNetImpl(ResNetOptions options = {});
  /// x [B, 3, S, S] normalised (normalise_colour) -> [B, out_dim].
  torch::Tensor forward(const torch::Tensor& x);
  ResNetOptions options;
  torch::nn::Sequential stem{nullptr}, head{nullptr};
  torch::nn::ModuleList stages{nullptr};  ///< one Sequential of blocks per stage
};
TORCH_MODULE(ResNet);

}  // namespace cwcl
