// Image files through OpenCV: Fashion-MNIST-style gray thumbnails, and
// colour images with the towers' cropping and augmentation.
#include <cwcl/data/fashion_mnist.h>
#include <cwcl/data/images.h>
#include <cwcl/error.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

namespace cwcl {
namespace {

// A crop of `rgb` (its origin and extent in pixels) resized to size x size.
cv::Mat resized_crop(const cv::Mat& rgb, cv::Rect crop, int64_t size) {
  cv::Mat out;
  const int s = static_cast<int>(size);
  const bool shrinking = crop.width > s || crop.height > s;
  cv::resize(rgb(crop), out, cv::Size(s, s), 0, 0, shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
  return out;
}

cv::Mat as_mat(const torch::Tensor& rgb) {
  TORCH_CHECK(rgb.dim() == 3 && rgb.size(2) == 3 && rgb.scalar_type() == torch::kUInt8,
              "expected an image as uint8 [H, W, 3], got ", rgb.sizes(), " ", rgb.scalar_type());
  auto c = rgb.contiguous();
  return cv::Mat(static_cast<int>(c.size(0)), static_cast<int>(c.size(1)), CV_8UC3, c.data_ptr()).clone();
}

// HWC uint8 -> CHW uint8 tensor.
torch::Tensor channels_first(const cv::Mat& m) {
  return torch::from_blob(m.data, {m.rows, m.cols, 3}, torch::kUInt8).permute({2, 0, 1}).contiguous();
}

// Brightness, contrast and saturation factors applied in a random order as
// torchvision's ColorJitter does, on [0, 1] values.
torch::Tensor jitter(torch::Tensor x, double amount, std::mt19937_64& rng) {
  if (amount <= 0) return x;
  std::uniform_real_distribution<double> factor(std::max(0.0, 1 - amount), 1 + amount);
  const double b = factor(rng), c = factor(rng), s = factor(rng);
  int order[3] = {0, 1, 2};
  std::shuffle(order, order + 3, rng);
  for (int op : order) {
    // ITU-R BT.601 luma, as torchvision's rgb_to_grayscale.
    auto gray = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0);
    if (op == 0) x = x * b;
    if (op == 1) x = (x - gray.mean()) * c + gray.mean();
    if (op == 2) x = (x - gray) * s + gray;
    x = x.clamp(0, 1);
  }
  return x;
}

}  // namespace

bool image_files_built() { return true; }
bool colour_images_built() { return true; }

torch::Tensor load_image(const std::string& path, bool invert) {
  cv::Mat m = cv::imread(path, cv::IMREAD_GRAYSCALE);
  if (m.empty()) throw DataError(path + ": cannot read as an image");
  cv::Mat small;
  cv::resize(m, small, cv::Size(28, 28), 0, 0, cv::INTER_AREA);
  if (invert) small = 255 - small;
  return torch::from_blob(small.data, {28, 28}, torch::kUInt8).clone();
}

torch::Tensor read_rgb_image(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw DataError(path + ": no such file");
  cv::Mat m;
  try {
    m = cv::imread(path, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    throw DataError(path + ": cannot read as an image (" + e.err + ")");
  }
  if (m.empty()) throw DataError(path + ": cannot read as an image");
  if (m.depth() == CV_16U) m.convertTo(m, CV_8U, 1.0 / 257);
  if (m.depth() != CV_8U) throw DataError(path + ": unsupported pixel depth (8 or 16 bits per channel)");
  cv::Mat rgb;
  if (m.channels() == 4) {
    // Straight alpha over a white background: out = a * c + (1 - a) * 255.
    cv::Mat f, bgr;
    m.convertTo(f, CV_32F, 1.0 / 255);
    std::vector<cv::Mat> ch;
    cv::split(f, ch);
    for (int k = 0; k < 3; ++k) ch[static_cast<size_t>(k)] = ch[static_cast<size_t>(k)].mul(ch[3]) + (1 - ch[3]);
    cv::merge(std::vector<cv::Mat>(ch.begin(), ch.begin() + 3), bgr);
    bgr.convertTo(bgr, CV_8U, 255);
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  } else if (m.channels() == 3) {
    cv::cvtColor(m, rgb, cv::COLOR_BGR2RGB);
  } else if (m.channels() == 1) {
    cv::cvtColor(m, rgb, cv::COLOR_GRAY2RGB);
  } else {
    throw DataError(path + ": " + std::to_string(m.channels()) + " channels (1, 3 or 4 expected)");
  }
  return torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8).clone();
}

torch::Tensor fit_image(const torch::Tensor& rgb, int64_t size) {
  TORCH_CHECK(size > 0, "fit_image: size must be positive, got ", size);
  const auto m = as_mat(rgb);
  const int side = std::min(m.rows, m.cols);
  const cv::Rect centre((m.cols - side) / 2, (m.rows - side) / 2, side, side);
  return channels_first(resized_crop(m, centre, size));
}

torch::Tensor augment_image(const torch::Tensor& rgb, int64_t size, const ImageAugmentOptions& o, uint64_t seed) {
  TORCH_CHECK(size > 0, "augment_image: size must be positive, got ", size);
  TORCH_CHECK(o.min_area > 0 && o.min_area <= 1 && o.max_aspect >= 1 && o.jitter >= 0 && o.jitter < 1,
              "augment_image: min_area in (0, 1], max_aspect >= 1, jitter in [0, 1)");
  const auto m = as_mat(rgb);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> area(o.min_area, 1.0), log_aspect(-std::log(o.max_aspect), std::log(o.max_aspect));
  // torchvision's RandomResizedCrop: ten tries at a crop that fits, then the centre square.
  const double total = static_cast<double>(m.rows) * m.cols;
  cv::Rect crop;
  for (int attempt = 0; attempt < 10 && crop.area() == 0; ++attempt) {
    const double a = area(rng) * total, r = std::exp(log_aspect(rng));
    const int w = static_cast<int>(std::lround(std::sqrt(a * r))), h = static_cast<int>(std::lround(std::sqrt(a / r)));
    if (w < 1 || h < 1 || w > m.cols || h > m.rows) continue;
    const int x = std::uniform_int_distribution<int>(0, m.cols - w)(rng);
    const int y = std::uniform_int_distribution<int>(0, m.rows - h)(rng);
    crop = cv::Rect(x, y, w, h);
  }
  if (crop.area() == 0) {
    const int side = std::min(m.rows, m.cols);
    crop = cv::Rect((m.cols - side) / 2, (m.rows - side) / 2, side, side);
  }
  cv::Mat out = resized_crop(m, crop, size);
  if (o.flip && std::bernoulli_distribution(0.5)(rng)) cv::flip(out, out, 1);
  auto x = jitter(channels_first(out).to(torch::kFloat) / 255.0, o.jitter, rng);
  return (x * 255.0).round().clamp(0, 255).to(torch::kUInt8);
}

}  // namespace cwcl
