// Built with CWCL_WITH_OPENCV=OFF: PNG plots say so instead of linking OpenCV.
#include <cwcl/error.h>
#include <cwcl/eval/plot.h>

namespace cwcl {
namespace {
[[noreturn]] void unavailable(const std::string& path) {
  throw UsageError(path + ": this cwcl was built without OpenCV (CWCL_WITH_OPENCV=OFF)");
}
}  // namespace

void write_heatmaps_png(const std::string& path, const std::vector<torch::Tensor>&, const std::vector<std::string>&,
                        int) {
  unavailable(path);
}

void write_line_plot_png(const std::string& path, const std::string&, const std::string&, const std::string&,
                         const std::vector<PlotSeries>&) {
  unavailable(path);
}

void write_image_grid_png(const std::string& path, const std::string&, const std::vector<GridCell>&, int, int) {
  unavailable(path);
}

}  // namespace cwcl
