#include <cwcl/error.h>
#include <cwcl/eval/plot.h>
#include <cwcl/io/files.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>
#include <stdexcept>

namespace cwcl {
namespace {

const cv::Scalar kBlack(0, 0, 0), kWhite(255, 255, 255), kGrey(200, 200, 200);
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

// Encoded in memory, written like every other file (io/files.h).
void save(const std::string& path, const cv::Mat& image) {
  std::vector<uchar> png;
  if (!cv::imencode(".png", image, png)) throw InternalError(path + ": cannot encode the plot as PNG");
  replace_file_atomically(path, [&](const std::string& tmp) { write_file(tmp, {{png.data(), png.size()}}); });
}

std::string number(double v) {
  std::ostringstream s;
  s << std::setprecision(3) << v;
  return s.str();
}

// Distinguishable colours (BGR) for up to eight series.
cv::Scalar colour(size_t i) {
  static const cv::Scalar palette[] = {{180, 119, 31}, {14, 127, 255}, {44, 160, 44},  {40, 39, 214},
                                       {189, 103, 148}, {75, 86, 140},  {194, 119, 227}, {127, 127, 127}};
  return palette[i % 8];
}

}  // namespace

void write_heatmaps_png(const std::string& path, const std::vector<torch::Tensor>& matrices,
                        const std::vector<std::string>& titles, int cell) {
  TORCH_CHECK(!matrices.empty() && matrices.size() == titles.size(), "write_heatmaps_png: one title per matrix");
  TORCH_CHECK(cell >= 1, "write_heatmaps_png: cell_pixels must be >= 1");
  const int margin = 10, title_h = 30;
  int width = margin, height = 0;
  std::vector<cv::Mat> tiles;
  for (const auto& m : matrices) {
    TORCH_CHECK(m.dim() == 2, "write_heatmaps_png: matrices must be 2-D");
    auto f = m.to(torch::kFloat).contiguous();
    const float lo = f.min().item<float>(), hi = f.max().item<float>();
    auto scaled = ((f - lo) / std::max(hi - lo, 1e-12f) * 255).clamp(0, 255).to(torch::kUInt8).contiguous();
    cv::Mat gray(static_cast<int>(scaled.size(0)), static_cast<int>(scaled.size(1)), CV_8UC1, scaled.data_ptr());
    cv::Mat big, coloured;
    cv::resize(gray, big, cv::Size(), cell, cell, cv::INTER_NEAREST);
    cv::applyColorMap(big, coloured, cv::COLORMAP_VIRIDIS);
    tiles.push_back(coloured.clone());
    width += coloured.cols + margin;
    height = std::max(height, coloured.rows);
  }
  cv::Mat canvas(height + title_h + 2 * margin, std::max(width, 300), CV_8UC3, kWhite);
  int x = margin;
  for (size_t i = 0; i < tiles.size(); ++i) {
    cv::putText(canvas, titles[i], cv::Point(x, margin + 16), kFont, 0.5, kBlack, 1, cv::LINE_AA);
    tiles[i].copyTo(canvas(cv::Rect(x, margin + title_h, tiles[i].cols, tiles[i].rows)));
    x += tiles[i].cols + margin;
  }
  save(path, canvas);
}

void write_line_plot_png(const std::string& path, const std::string& title, const std::string& x_label,
                         const std::string& y_label, const std::vector<PlotSeries>& series) {
  TORCH_CHECK(!series.empty(), "write_line_plot_png: no series");
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& s : series) {
    TORCH_CHECK(s.x.size() == s.y.size(), "write_line_plot_png: series '", s.name, "' has unequal x and y");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
  }
  TORCH_CHECK(std::isfinite(x0) && std::isfinite(y0), "write_line_plot_png: no finite points");
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad, y1 += pad;
  const int w = 720, h = 440, left = 70, right = 180, top = 40, bottom = 50;
  cv::Mat canvas(h, w, CV_8UC3, kWhite);
  const int pw = w - left - right, ph = h - top - bottom;
  auto px = [&](double x) { return left + static_cast<int>((x - x0) / (x1 - x0) * pw); };
  auto py = [&](double y) { return top + ph - static_cast<int>((y - y0) / (y1 - y0) * ph); };
  for (int t = 0; t <= 4; ++t) {
    const double yv = y0 + (y1 - y0) * t / 4, xv = x0 + (x1 - x0) * t / 4;
    cv::line(canvas, {left, py(yv)}, {left + pw, py(yv)}, kGrey, 1);
    cv::putText(canvas, number(yv), {5, py(yv) + 4}, kFont, 0.4, kBlack, 1, cv::LINE_AA);
    cv::putText(canvas, number(xv), {px(xv) - 10, top + ph + 18}, kFont, 0.4, kBlack, 1, cv::LINE_AA);
  }
  cv::rectangle(canvas, {left, top}, {left + pw, top + ph}, kBlack, 1);
  cv::putText(canvas, title, {left, 25}, kFont, 0.55, kBlack, 1, cv::LINE_AA);
  cv::putText(canvas, x_label, {left + pw / 2 - 40, h - 10}, kFont, 0.45, kBlack, 1, cv::LINE_AA);
  cv::putText(canvas, y_label, {5, top - 8}, kFont, 0.45, kBlack, 1, cv::LINE_AA);
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      const cv::Point p(px(s.x[i]), py(s.y[i]));
      if (i > 0 && std::isfinite(s.y[i - 1])) cv::line(canvas, {px(s.x[i - 1]), py(s.y[i - 1])}, p, colour(k), 2, cv::LINE_AA);
      if (s.x.size() <= 20) cv::circle(canvas, p, 3, colour(k), -1, cv::LINE_AA);
    }
    const int ly = top + 15 + 20 * static_cast<int>(k);
    cv::line(canvas, {left + pw + 10, ly - 4}, {left + pw + 30, ly - 4}, colour(k), 2);
    cv::putText(canvas, s.name, {left + pw + 35, ly}, kFont, 0.4, kBlack, 1, cv::LINE_AA);
  }
  save(path, canvas);
}

}  // namespace cwcl
