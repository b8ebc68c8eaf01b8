// PNG plots for reports: similarity heatmaps and line charts (OpenCV).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace cwcl {

/// Square heatmaps side by side (e.g. the cross-modal similarity of CL and
/// CWCL on one evaluation batch), each [N, N] scaled to its own min..max,
/// viridis colours, a title above each. Throws naming the file when it
/// cannot be written.
void write_heatmaps_png(const std::string& path, const std::vector<torch::Tensor>& matrices,
                        const std::vector<std::string>& titles, int cell_pixels = 4);

struct PlotSeries {
  std::string name;
  std::vector<double> x, y;
};

/// A line chart with axes, tick labels and a legend.
void write_line_plot_png(const std::string& path, const std::string& title, const std::string& x_label,
                         const std::string& y_label, const std::vector<PlotSeries>& series);

}  // namespace cwcl
