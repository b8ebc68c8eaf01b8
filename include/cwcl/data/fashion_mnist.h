// Fashion-MNIST (Xiao et al. 2017; Debian's dataset-fashion-mnist): the IDX
// files, class names with synonyms and their captions, the seeded split of
// the training images, image files, normalisation and augmentation.
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
  /// The rows at these indices.
  ImageSet rows(const torch::Tensor& index) const;
};

enum class FashionMnistSplit { Train, Test };

/// Reads a split of the IDX files (gzipped or not) in `folder` (Debian:
/// /usr/share/datasets/fashion-mnist). Throws DataError naming the file for a
/// missing file, a wrong magic number or a short read.
ImageSet read_fashion_mnist(const std::string& folder, FashionMnistSplit split);

/// Mean and standard deviation of the Fashion-MNIST training pixels in [0, 1].
inline constexpr double kFashionMnistMean = 0.2860, kFashionMnistStd = 0.3530;

/// uint8 [B, H, W] -> float [B, 1, H, W]: (x / 255 - mean) / std.
torch::Tensor normalise_images(const torch::Tensor& images);

/// An image file (PNG, JPEG, anything OpenCV reads) as uint8 [28, 28]
/// grayscale; `invert` for dark objects on a light background (Fashion-MNIST
/// has light objects on black). Throws DataError naming the file.
torch::Tensor load_image(const std::string& path, bool invert = false);
/// False in a build with CWCL_WITH_OPENCV=OFF: image files and PNG plots
/// throw UsageError there.
bool image_files_built();

/// Random shifts of up to `max_shift` pixels and horizontal flips, per image,
/// deterministic given the generator. uint8 [B, H, W] in and out.
torch::Tensor augment_images(const torch::Tensor& images, int64_t max_shift, torch::Generator& generator);

/// Class names and synonyms (a TSV: label<TAB>name<TAB>synonyms separated by
/// commas; labels 0..C-1, each once), and the captions built from them.
struct ClassNames {
  std::vector<std::string> names;                  ///< per label
  std::vector<std::vector<std::string>> synonyms;  ///< per label, the name first
  int64_t size() const { return static_cast<int64_t>(names.size()); }
  /// Throws DataError naming the file and line.
  static ClassNames read(const std::string& path);
  /// Every template with every name or synonym of a class.
  std::vector<std::string> captions(int64_t label, const std::vector<std::string>& templates) const;
};

/// What is wrong with a list of classes of a set of `count` ("class 12
/// outside 0..9", "class 3 twice"); empty when every class lies in
/// [0, count) once. The caller names the setting (a config key: ConfigError;
/// an argument: UsageError).
std::string classes_problem(const std::vector<int64_t>& classes, int64_t count);

/// The training images of `classes` split by a seeded permutation into
/// training rows and held-out validation rows (floor(valid_fraction * N)).
struct ImageSplit {
  ImageSet train, valid;
};
ImageSplit split_training_images(const ImageSet& train, const std::vector<int64_t>& classes, double valid_fraction,
                                 uint64_t seed);

}  // namespace cwcl
