// The tiles the tiled loss walks (tiles.h): logits, online log-sum-exps,
// softmax gradients of a tile.
#include "tiles.h"

#include <limits>

namespace cwcl::detail {
namespace {

// How far apart (in log space) two shifts may be for one to stand in for
// the other: float keeps e^-87 as a normal number, and the margin keeps what
// rounds away below e^-27 of the largest term that matters.
double shared_shift_limit(const torch::Tensor& like) {
  return like.scalar_type() == torch::kDouble ? 600.0 : 60.0;
}

// Online log-sum-exp: combines running (max, sum of exp(x - max)) with a tile's.
void merge_running(torch::Tensor running_max, torch::Tensor running_sum,
                   const torch::Tensor& tile_max, const torch::Tensor& tile_sum) {
  auto new_max = torch::maximum(running_max, tile_max);
  running_sum.mul_((running_max - new_max).exp_()).add_(tile_sum * (tile_max - new_max).exp_());
  running_max.copy_(new_max);
}

}  // namespace

torch::Tensor tile_view(torch::Tensor& buffer, int64_t rows, int64_t cols) {
  return buffer.narrow(0, 0, rows * cols).view({rows, cols});
}

torch::Tensor tile_logits(torch::Tensor& buffer, const torch::Tensor& xi, const torch::Tensor& yj,
                          double s) {
  auto l = tile_view(buffer, xi.size(0), yj.size(0));
  torch::mm_out(l, xi, yj.t());
  l.mul_(s);
  return l;
}

// Merges a tile of logits into running row and/or column log-sum-exps (an
// undefined accumulator is skipped). The rows' exponentials E = exp(l - rowmax)
// also give the columns' sums, sum_i exp(l_ij - M) = (E^T a)_j with
// a_i = exp(rowmax_i - M) and M the tile's max, when every column's max is
// within shared_shift_limit of M; otherwise the columns take their own exp.
void merge_tile_lse(const torch::Tensor& l, torch::Tensor row_max, torch::Tensor row_sum,
                    torch::Tensor col_max, torch::Tensor col_sum, torch::Tensor& scratch) {
  auto e = tile_view(scratch, l.size(0), l.size(1));
  torch::Tensor rmax;
  if (row_max.defined()) {
    rmax = l.amax(1);
    torch::sub_out(e, l, rmax.unsqueeze(1));
    e.exp_();
    merge_running(row_max, row_sum, rmax, e.sum(1));
  }
  if (!col_max.defined()) return;
  auto cmax = l.amax(0);
  torch::Tensor csum;
  // The one-exponential shortcut needs its shifts checked on the host: on a
  // GPU, where that read would stall the stream, the columns take their own.
  if (rmax.defined() && !l.is_cuda()) {
    auto m = rmax.max();
    if ((m - cmax.min()).item<double>() <= shared_shift_limit(l))
      csum = torch::mv(e.t(), (rmax - m).exp_()).mul_((m - cmax).exp_());
  }
  if (!csum.defined()) {
    torch::sub_out(e, l, cmax.unsqueeze(0));
    csum = e.exp_().sum(0);
  }
  merge_running(col_max, col_sum, cmax, csum);
}

// g = g_rows * softmax over each row + g_cols * softmax over each column of a
// tile, given the final log-sum-exps (an undefined one counts 0). With one
// exponential when the shifts are close: exp(l_ij - lse_c_j) =
// exp(l_ij - lse_r_i) u_i v_j with u_i = exp(lse_r_i - K), v_j = exp(K - lse_c_j).
void softmax_grad_tile(const torch::Tensor& l, const torch::Tensor& lse_r,
                       const torch::Tensor& lse_c, double g_rows, double g_cols, torch::Tensor g,
                       torch::Tensor& scratch) {
  if (!lse_r.defined()) {
    torch::sub_out(g, l, lse_c.unsqueeze(0));
    g.exp_().mul_(g_cols);
    return;
  }
  torch::sub_out(g, l, lse_r.unsqueeze(1));
  g.exp_();
  if (!lse_c.defined()) {
    g.mul_(g_rows);
    return;
  }
  auto w = tile_view(scratch, l.size(0), l.size(1));
  auto k = lse_r.max();
  if (!l.is_cuda() && (k - lse_c.min()).item<double>() <= shared_shift_limit(l)) {
    auto u = (lse_r - k).exp_().mul_(g_cols), v = (k - lse_c).exp_();
    torch::mul_out(w, u.unsqueeze(1), v.unsqueeze(0));
    g.mul_(w.add_(g_rows));
    return;
  }
  g.mul_(g_rows);
  torch::sub_out(w, l, lse_c.unsqueeze(0));
  g.add_(w.exp_(), g_cols);
}

torch::Tensor inverse_norms(const torch::Tensor& x) {
  // As F::normalize: x / max(||x||, 1e-12).
  return x.norm(2, 1).clamp_min(1e-12).reciprocal();
}

}  // namespace cwcl::detail
