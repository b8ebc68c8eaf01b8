// Built with CWCL_WITH_OPENCV=OFF: image files and PNG plots say so instead
// of linking OpenCV. Fashion-MNIST's IDX files need no OpenCV and still work.
#include <cwcl/data/fashion_mnist.h>
#include <cwcl/error.h>
#include <cwcl/eval/plot.h>

namespace cwcl {
namespace {
[[noreturn]] void unavailable(const std::string& what) {
  throw UsageError(what + ": this cwcl was built without OpenCV (CWCL_WITH_OPENCV=OFF)");
}
}  // namespace

bool image_files_built() { return false; }

torch::Tensor load_image(const std::string& path, bool) { unavailable(path); }

void write_heatmaps_png(const std::string& path, const std::vector<torch::Tensor>&, const std::vector<std::string>&,
                        int) {
  unavailable(path);
}

void write_line_plot_png(const std::string& path, const std::string&, const std::string&, const std::string&,
                         const std::vector<PlotSeries>&) {
  unavailable(path);
}

}  // namespace cwcl
