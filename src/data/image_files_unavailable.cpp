// Built with CWCL_WITH_OPENCV=OFF: image files say so instead of linking
// OpenCV. Fashion-MNIST's IDX files need no OpenCV and still work.
#include <cwcl/data/fashion_mnist.h>
#include <cwcl/error.h>

namespace cwcl {

bool image_files_built() { return false; }

torch::Tensor load_image(const std::string& path, bool) {
  throw UsageError(path + ": this cwcl was built without OpenCV (CWCL_WITH_OPENCV=OFF)");
}

}  // namespace cwcl
