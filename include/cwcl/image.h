// Images: the Fashion-MNIST IDX files, image files through OpenCV, and a
// small convolutional image tower.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cwcl {

/// Images [N, 28, 28] uint8 and labels [N] int64 of one split.
struct ImageSet {
  torch::Tensor images, labels;
  int64_t size() const { return images.defined() ? images.size(0) : 0; }
  /// The rows whose label is one of `classes`, in order.
  ImageSet only(const std::vector<int64_t>& classes) const;
};

/// Reads a split ("train" or "t10k") of the IDX files (gzipped or not) in
/// `folder` (Debian: /usr/share/datasets/fashion-mnist). Throws naming the
/// file for a missing file, a wrong magic number or a short read.
ImageSet read_fashion_mnist(const std::string& folder, const std::string& split);

/// The ten Fashion-MNIST class names, in label order.
const std::vector<std::string>& fashion_mnist_classes();

/// uint8 [B, H, W] -> float [B, 1, H, W] normalised with Fashion-MNIST's mean and deviation.
torch::Tensor normalise_images(const torch::Tensor& images);

/// An image file (PNG, JPEG, anything OpenCV reads) as uint8 [28, 28]
/// grayscale; `invert` for dark objects on a light background (Fashion-MNIST
/// has light objects on black). Throws naming the file when it cannot be read.
torch::Tensor load_image(const std::string& path, bool invert = false);

/// Random shifts of up to `max_shift` pixels and horizontal flips, per image,
/// deterministic given the generator. uint8 [B, H, W] in and out.
torch::Tensor augment_images(const torch::Tensor& images, int64_t max_shift, torch::Generator& generator);

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
