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

/// One image of a grid and the lines of text under it.
struct GridCell {
  torch::Tensor image;             ///< uint8 [3, S, S] RGB
  std::vector<std::string> lines;  ///< under the image (non-ASCII shown as '?')
  std::vector<int> marks;          ///< per line: 1 green (right), -1 red (wrong), 0 black
};
/// Images in rows of `columns`, each enlarged to `side` pixels with its
/// lines under it, a title above.
void write_image_grid_png(const std::string& path, const std::string& title, const std::vector<GridCell>& cells,
                          int columns = 6, int side = 96);

}  // namespace cwcl
