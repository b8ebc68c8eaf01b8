#include <cwcl/image.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <zlib.h>

#include <array>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace cwcl {
namespace {

// Whole file, inflated when gzipped (gzread passes plain files through).
std::vector<uint8_t> read_maybe_gzipped(const std::string& path) {
  std::unique_ptr<gzFile_s, int (*)(gzFile)> f(gzopen(path.c_str(), "rb"), gzclose);
  if (!f) throw std::invalid_argument(path + ": cannot open");
  std::vector<uint8_t> out;
  std::array<uint8_t, 1 << 16> chunk{};
  for (;;) {
    const int n = gzread(f.get(), chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) throw std::runtime_error(path + ": read error (corrupt gzip?)");
    if (n == 0) break;
    out.insert(out.end(), chunk.begin(), chunk.begin() + n);
  }
  return out;
}

uint32_t big_endian(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) | b[at + 3];
}

// The IDX format (LeCun et al.): magic 0x0000 08 <rank>, rank big-endian sizes, uint8 data.
torch::Tensor read_idx(const std::string& path, int rank) {
  auto bytes = read_maybe_gzipped(path);
  const size_t header = 4 + 4 * static_cast<size_t>(rank);
  if (bytes.size() < header || big_endian(bytes, 0) != 0x0800u + static_cast<uint32_t>(rank))
    throw std::runtime_error(path + ": not an IDX file of rank " + std::to_string(rank));
  std::vector<int64_t> shape;
  size_t count = 1;
  for (int r = 0; r < rank; ++r) {
    shape.push_back(big_endian(bytes, 4 + 4 * static_cast<size_t>(r)));
    count *= static_cast<size_t>(shape.back());
  }
  if (bytes.size() != header + count)
    throw std::runtime_error(path + ": expected " + std::to_string(count) + " bytes of data, found " +
                             std::to_string(bytes.size() - header));
  return torch::from_blob(bytes.data() + header, shape, torch::kUInt8).clone();
}

std::string find_file(const std::string& folder, const std::string& stem) {
  for (const char* suffix : {"", ".gz"}) {
    const std::string path = folder + "/" + stem + suffix;
    if (std::ifstream(path).good()) return path;
  }
  throw std::invalid_argument(folder + ": no " + stem + "[.gz] (Debian package dataset-fashion-mnist)");
}

}  // namespace

ImageSet ImageSet::only(const std::vector<int64_t>& classes) const {
  auto keep = torch::zeros_like(labels, torch::kBool);
  for (auto c : classes) keep |= labels == c;
  auto rows = keep.nonzero().squeeze(1);
  return {images.index_select(0, rows), labels.index_select(0, rows)};
}

ImageSet read_fashion_mnist(const std::string& folder, const std::string& split) {
  if (split != "train" && split != "t10k")
    throw std::invalid_argument("read_fashion_mnist: split must be train or t10k, not " + split);
  ImageSet set;
  set.images = read_idx(find_file(folder, split + "-images-idx3-ubyte"), 3);
  set.labels = read_idx(find_file(folder, split + "-labels-idx1-ubyte"), 1).to(torch::kLong);
  if (set.images.size(0) != set.labels.size(0))
    throw std::runtime_error(folder + ": " + split + " has " + std::to_string(set.images.size(0)) +
                             " images but " + std::to_string(set.labels.size(0)) + " labels");
  if (set.labels.numel() && set.labels.max().item<int64_t>() >= 10)
    throw std::runtime_error(folder + ": " + split + " labels outside 0..9");
  return set;
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"t-shirt", "trouser", "pullover", "dress", "coat",
                                                 "sandal",  "shirt",   "sneaker",  "bag",   "ankle boot"};
  return names;
}

torch::Tensor normalise_images(const torch::Tensor& images) {
  // Mean and standard deviation of the Fashion-MNIST training pixels.
  return ((images.to(torch::kFloat) / 255.0 - 0.2860) / 0.3530).unsqueeze(1);
}

torch::Tensor load_image(const std::string& path, bool invert) {
  cv::Mat m = cv::imread(path, cv::IMREAD_GRAYSCALE);
  if (m.empty()) throw std::invalid_argument(path + ": cannot read as an image");
  cv::Mat small;
  cv::resize(m, small, cv::Size(28, 28), 0, 0, cv::INTER_AREA);
  if (invert) small = 255 - small;
  return torch::from_blob(small.data, {28, 28}, torch::kUInt8).clone();
}

torch::Tensor augment_images(const torch::Tensor& images, int64_t max_shift, torch::Generator& generator) {
  TORCH_CHECK(images.dim() == 3 && images.scalar_type() == torch::kUInt8, "augment_images: uint8 [B, H, W]");
  const int64_t b = images.size(0), h = images.size(1), w = images.size(2);
  auto shifts = torch::randint(-max_shift, max_shift + 1, {b, 2}, generator, torch::kLong);
  auto flips = torch::randint(0, 2, {b}, generator, torch::kLong);
  auto padded = torch::constant_pad_nd(images, {max_shift, max_shift, max_shift, max_shift}, 0);
  auto out = torch::empty_like(images);
  auto s = shifts.accessor<int64_t, 2>();
  auto f = flips.accessor<int64_t, 1>();
  for (int64_t i = 0; i < b; ++i) {
    auto crop = padded[i].narrow(0, max_shift + s[i][0], h).narrow(1, max_shift + s[i][1], w);
    out[i].copy_(f[i] ? crop.flip({1}) : crop);
  }
  return out;
}

ImageEncoderImpl::ImageEncoderImpl(ImageEncoderOptions o) : options(o) {
  TORCH_CHECK(o.width > 0 && o.hidden > 0 && o.out_dim > 0, "ImageEncoder: sizes must be positive");
  features = torch::nn::Sequential();
  auto block = [&](int64_t in, int64_t out, bool pool) {
    features->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1).bias(false)));
    features->push_back(torch::nn::BatchNorm2d(out));
    features->push_back(torch::nn::ReLU());
    if (pool) features->push_back(torch::nn::MaxPool2d(2));
  };
  block(1, o.width, false);
  block(o.width, 2 * o.width, true);       // 14 x 14
  block(2 * o.width, 4 * o.width, true);   // 7 x 7
  block(4 * o.width, 4 * o.width, false);
  features->push_back(torch::nn::AdaptiveAvgPool2d(1));
  features->push_back(torch::nn::Flatten());
  head = torch::nn::Sequential(torch::nn::Linear(4 * o.width, o.hidden), torch::nn::GELU(),
                               torch::nn::Linear(o.hidden, o.out_dim));
  register_module("features", features);
  register_module("head", head);
}

torch::Tensor ImageEncoderImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 1, "ImageEncoder: expected [B, 1, H, W], got ", x.sizes());
  return head->forward(features->forward(x));
}

}  // namespace cwcl
