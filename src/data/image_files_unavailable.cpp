// Built with CWCL_WITH_OPENCV=OFF: image files say so instead of linking
// OpenCV. Fashion-MNIST's IDX files need no OpenCV and still work.
#include <cwcl/data/fashion_mnist.h>
#include <cwcl/data/images.h>
#include <cwcl/error.h>

namespace cwcl {
namespace {

[[noreturn]] void unavailable(const std::string& what) {
  throw UsageError(what + ": this cwcl was built without OpenCV (CWCL_WITH_OPENCV=OFF)");
}

}  // namespace

bool image_files_built() { return false; }
bool colour_images_built() { return false; }

torch::Tensor load_image(const std::string& path, bool) { unavailable(path); }
torch::Tensor read_rgb_image(const std::string& path) { unavailable(path); }
torch::Tensor fit_image(const torch::Tensor&, int64_t) { unavailable("fit_image"); }
torch::Tensor augment_image(const torch::Tensor&, int64_t, const ImageAugmentOptions&, uint64_t) {
  unavailable("augment_image");
}

}  // namespace cwcl
