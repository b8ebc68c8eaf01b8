// Image files through OpenCV.
#include <cwcl/data/fashion_mnist.h>
#include <cwcl/error.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace cwcl {

bool image_files_built() { return true; }

torch::Tensor load_image(const std::string& path, bool invert) {
  cv::Mat m = cv::imread(path, cv::IMREAD_GRAYSCALE);
  if (m.empty()) throw DataError(path + ": cannot read as an image");
  cv::Mat small;
  cv::resize(m, small, cv::Size(28, 28), 0, 0, cv::INTER_AREA);
  if (invert) small = 255 - small;
  return torch::from_blob(small.data, {28, 28}, torch::kUInt8).clone();
}

}  // namespace cwcl
