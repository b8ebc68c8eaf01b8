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

namespace {

// Hershey fonts draw ASCII only.
std::string ascii(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto ch = static_cast<unsigned char>(text[i]);
    if (ch < 0x80) {
      out += text[i];
      continue;
    }
    out += '?';
    while (i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80) ++i;  // the rest of the character
  }
  return out;
}

// The longest prefix of `text` that fits `width` pixels at `scale`.
std::string fitted(const std::string& text, double scale, int width) {
  std::string t = text;
  int baseline = 0;
  while (!t.empty() && cv::getTextSize(t, kFont, scale, 1, &baseline).width > width) t.pop_back();
  return t;
}

}  // namespace

void write_image_grid_png(const std::string& path, const std::string& title, const std::vector<GridCell>& cells,
                          int columns, int side) {
  TORCH_CHECK(!cells.empty() && columns >= 1 && side >= 8, "write_image_grid_png: cells, columns >= 1, side >= 8");
  size_t most_lines = 0;
  for (const auto& c : cells) most_lines = std::max(most_lines, c.lines.size());
  const int margin = 10, title_h = 30, line_h = 14, cell_w = side + 2 * margin;
  const int cell_h = side + static_cast<int>(most_lines) * line_h + margin;
  const int rows = (static_cast<int>(cells.size()) + columns - 1) / columns;
  cv::Mat canvas(title_h + rows * cell_h + margin, columns * cell_w + margin, CV_8UC3, kWhite);
  cv::putText(canvas, ascii(title), cv::Point(margin, 20), kFont, 0.55, kBlack, 1, cv::LINE_AA);
  for (size_t i = 0; i < cells.size(); ++i) {
    const auto& c = cells[i];
    TORCH_CHECK(c.image.dim() == 3 && c.image.size(0) == 3 && c.image.scalar_type() == torch::kUInt8,
                "write_image_grid_png: images must be uint8 [3, S, S]");
    auto hwc = c.image.permute({1, 2, 0}).contiguous();
    cv::Mat rgb(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), CV_8UC3, hwc.data_ptr()), bgr, big;
    cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
    cv::resize(bgr, big, cv::Size(side, side), 0, 0, cv::INTER_NEAREST);
    const int x = margin + static_cast<int>(i % static_cast<size_t>(columns)) * cell_w;
    const int y = title_h + static_cast<int>(i / static_cast<size_t>(columns)) * cell_h;
    big.copyTo(canvas(cv::Rect(x, y, side, side)));
    for (size_t l = 0; l < c.lines.size(); ++l) {
      const int mark = l < c.marks.size() ? c.marks[l] : 0;
      const cv::Scalar ink = mark > 0 ? cv::Scalar(40, 140, 40) : mark < 0 ? cv::Scalar(40, 40, 200) : kBlack;
      cv::putText(canvas, fitted(ascii(c.lines[l]), 0.35, cell_w - 4), cv::Point(x, y + side + 12 + static_cast<int>(l) * line_h),
                  kFont, 0.35, ink, 1, cv::LINE_AA);
    }
  }
  save(path, canvas);
}

}  // namespace cwcl
