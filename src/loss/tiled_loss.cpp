// Contrastive losses that never hold an N x N tensor.
//
// A softmax loss (CL, CWCL, SupCon) with row targets T (rows summing to 1) is
//   sum_i [LSE_j(l_ij) - sum_j T_ij l_ij]
// per direction. The log-sum-exp part is a custom autograd function that walks
// tiles, merging per-row and per-column maxima and sums online (as
// FlashAttention and Inf-CL do) and recomputing each tile's logits in the
// backward pass. The target part is linear in the logits: for CL it is the
// diagonal, for the paper's affine weights it needs only D x D reductions
// (docs/method.md, "The affine shortcut"), and for any other map it is a tiled product
// with weight tiles made on the fly. Sigmoid losses need no normaliser, so
// their gradients are computed in the same pass as the value.
#include "detail.h"
#include "../core/serial_elementwise.h"

#include <limits>
#include <optional>

namespace cwcl::detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// A contiguous [rows, cols] view on the front of a reusable buffer.
torch::Tensor tile_view(torch::Tensor& buffer, int64_t rows, int64_t cols) {
  return buffer.narrow(0, 0, rows * cols).view({rows, cols});
}

// l = s * x_I y_J^T into a buffer.
torch::Tensor tile_logits(torch::Tensor& buffer, const torch::Tensor& xi, const torch::Tensor& yj,
                          double s) {
  auto l = tile_view(buffer, xi.size(0), yj.size(0));
  torch::mm_out(l, xi, yj.t());
  l.mul_(s);
  return l;
}

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
  if (rmax.defined()) {
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
  if ((k - lse_c.min()).item<double>() <= shared_shift_limit(l)) {
    auto u = (lse_r - k).exp_().mul_(g_cols), v = (k - lse_c).exp_();
    torch::mul_out(w, u.unsqueeze(1), v.unsqueeze(0));
    g.mul_(w.add_(g_rows));
    return;
  }
  g.mul_(g_rows);
  torch::sub_out(w, l, lse_c.unsqueeze(0));
  g.add_(w.exp_(), g_cols);
}

// sum_i LSE_j(s <x_i, y_j>) over this rank's rows x against all columns y
// (the gathered ones in distributed training). Memory: O(N + tile^2).
struct TiledLogSumExp : public torch::autograd::Function<TiledLogSumExp> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& y, const torch::Tensor& scale, int64_t tile) {
    SerialElementwise serial;
    const double s = scale.item<double>();
    const int64_t n = x.size(0), m = y.size(0);
    const auto opts = x.options();
    auto row_max = torch::full({n}, -std::numeric_limits<double>::infinity(), opts);
    auto row_sum = torch::zeros({n}, opts);
    auto logits = torch::empty({tile * tile}, opts), scratch = torch::empty({tile * tile}, opts);
    for (int64_t i0 = 0; i0 < n; i0 += tile) {
      const int64_t ti = std::min(tile, n - i0);
      auto xi = x.narrow(0, i0, ti);
      for (int64_t j0 = 0; j0 < m; j0 += tile) {
        auto l = tile_logits(logits, xi, y.narrow(0, j0, std::min(tile, m - j0)), s);
        merge_tile_lse(l, row_max.narrow(0, i0, ti), row_sum.narrow(0, i0, ti), {}, {}, scratch);
      }
    }
    auto lse_rows = row_max + row_sum.log();
    ctx->save_for_backward({x, y, scale, lse_rows});
    ctx->saved_data["tile"] = tile;
    return lse_rows.sum();
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &y = saved[1], &scale = saved[2], &lse_rows = saved[3];
    SerialElementwise serial;
    const int64_t tile = ctx->saved_data["tile"].toInt();
    const double s = scale.item<double>();
    const double g_rows = grad_outputs[0].item<double>();
    const bool need_x = ctx->needs_input_grad(0), need_y = ctx->needs_input_grad(1),
               need_s = ctx->needs_input_grad(2);
    const int64_t n = x.size(0), m = y.size(0);
    const auto opts = x.options();
    torch::Tensor dx = need_x ? torch::zeros_like(x) : torch::Tensor();
    torch::Tensor dy = need_y ? torch::zeros_like(y) : torch::Tensor();
    double ds = 0;
    auto logits = torch::empty({tile * tile}, opts), grad = torch::empty({tile * tile}, opts),
         scratch = torch::empty({tile * tile}, opts);
    for (int64_t i0 = 0; i0 < n; i0 += tile) {
      const int64_t ti = std::min(tile, n - i0);
      auto xi = x.narrow(0, i0, ti);
      for (int64_t j0 = 0; j0 < m; j0 += tile) {
        const int64_t tj = std::min(tile, m - j0);
        auto yj = y.narrow(0, j0, tj);
        auto l = tile_logits(logits, xi, yj, s);
        // dLSE_i/dl_ij = softmax over the row.
        auto gl = tile_view(grad, ti, tj);
        softmax_grad_tile(l, lse_rows.narrow(0, i0, ti), {}, g_rows, 0.0, gl, scratch);
        // l = s <x, y>: dl/ds = l / s.
        if (need_s) ds += gl.view(-1).dot(l.view(-1)).item<double>() / s;
        if (need_x) dx.narrow(0, i0, ti).addmm_(gl, yj, 1.0, s);
        if (need_y) dy.narrow(0, j0, tj).addmm_(gl.t(), xi, 1.0, s);
      }
    }
    torch::Tensor dscale = need_s ? torch::full({}, ds, scale.options()) : torch::Tensor();
    return {dx, dy, dscale, torch::Tensor()};
  }
};

// Weights of any map, one tile at a time, optionally row-normalised (the
// softmax targets). The row sums (and, for row_minmax, each row's cosine
// range) come from one pass over tiles when the map needs them.
class WeightTiles {
 public:
  WeightTiles(const WeightOptions& o, const ScoredBatch& b, int64_t tile, bool normalise)
      : o_(o),
        labels_rows_(b.labels_rows),
        labels_cols_(b.labels_cols),
        offset_(b.offset),
        options_(b.p_rows.options()) {
    const int64_t n = b.p_rows.size(0), m = b.p_cols.size(0);
    if (o.map == WeightMap::Custom) check_custom_weights(o.custom, n, m, b.p_rows);
    if (o.map == WeightMap::Labels)
      TORCH_CHECK(labels_rows_.defined() && labels_cols_.defined(),
                  "contrastive_weights: the labels map needs labels (options.labels)");
    if (is_similarity_map(o.map)) std::tie(a_, b_) = weight_space(b.p_rows, b.p_cols, o);
    if (o.map == WeightMap::RowMinMax) {
      auto lo = torch::full({n, 1}, std::numeric_limits<double>::infinity(), b.p_rows.options());
      auto hi = torch::full({n, 1}, -std::numeric_limits<double>::infinity(), b.p_rows.options());
      for_each_tile(n, m, tile, [&](int64_t i0, int64_t ti, int64_t j0, int64_t tj) {
        auto cos = cosines(i0, ti, j0, tj);
        lo.narrow(0, i0, ti).copy_(torch::minimum(lo.narrow(0, i0, ti), std::get<0>(cos.min(1, true))));
        hi.narrow(0, i0, ti).copy_(torch::maximum(hi.narrow(0, i0, ti), std::get<0>(cos.max(1, true))));
      });
      row_lo_ = lo;
      row_range_ = hi - lo;
    }
    if (normalise) {
      auto sums = torch::zeros({n, 1}, b.p_rows.options());
      for_each_tile(n, m, tile, [&](int64_t i0, int64_t ti, int64_t j0, int64_t tj) {
        sums.narrow(0, i0, ti).add_(raw(i0, ti, j0, tj).sum(1, true));
      });
      TORCH_CHECK(sums.min().item<double>() > 0,
                  "contrastive_loss: a row of the weights sums to zero (", to_string(o.map),
                  " map); every row needs a positive weight");
      inv_row_sum_ = sums.reciprocal();
    }
  }

  // Weights (normalised if asked) of rows [i0, i0 + ti) and columns [j0, j0 + tj).
  torch::Tensor operator()(int64_t i0, int64_t ti, int64_t j0, int64_t tj) const {
    auto w = raw(i0, ti, j0, tj);
    return inv_row_sum_.defined() ? w * inv_row_sum_.narrow(0, i0, ti) : w;
  }

  template <typename F>
  static void for_each_tile(int64_t n, int64_t m, int64_t tile, F&& f) {
    for (int64_t i0 = 0; i0 < n; i0 += tile)
      for (int64_t j0 = 0; j0 < m; j0 += tile)
        f(i0, std::min(tile, n - i0), j0, std::min(tile, m - j0));
  }

 private:
  torch::Tensor cosines(int64_t i0, int64_t ti, int64_t j0, int64_t tj) const {
    return torch::mm(a_.narrow(0, i0, ti), b_.narrow(0, j0, tj).t()).clamp(-1.0, 1.0);
  }

  torch::Tensor raw(int64_t i0, int64_t ti, int64_t j0, int64_t tj) const {
    switch (o_.map) {
      case WeightMap::Identity: {
        auto r = torch::arange(i0 + offset_, i0 + offset_ + ti, labels_or_long());
        auto c = torch::arange(j0, j0 + tj, labels_or_long());
        return r.unsqueeze(1).eq(c.unsqueeze(0)).to(dtype_options());
      }
      case WeightMap::Labels:
        return labels_rows_.narrow(0, i0, ti)
            .unsqueeze(1)
            .eq(labels_cols_.narrow(0, j0, tj).unsqueeze(0))
            .to(dtype_options());
      case WeightMap::Custom:
        return o_.custom.detach().narrow(0, i0, ti).narrow(1, j0, tj).to(dtype_options());
      default: {
        torch::Tensor lo, range;
        if (row_lo_.defined()) {
          lo = row_lo_.narrow(0, i0, ti);
          range = row_range_.narrow(0, i0, ti);
        }
        return map_cosines(cosines(i0, ti, j0, tj), o_, lo, range);
      }
    }
  }

  torch::TensorOptions labels_or_long() const {
    return torch::TensorOptions().dtype(torch::kLong).device(options_.device());
  }
  const torch::TensorOptions& dtype_options() const { return options_; }

  WeightOptions o_;
  torch::Tensor a_, b_, labels_rows_, labels_cols_, row_lo_, row_range_, inv_row_sum_;
  int64_t offset_;
  torch::TensorOptions options_;
};

// s * sum_ij T_ij <r_i, c_j> for row targets T given tile by tile. Value and
// gradients are computed in one pass: with V = T c and U = T^T r (both
// constants here), the expression s <r, V> + s <c - c.detach(), U> has the
// right value and the exact first derivatives in r, c and s.
torch::Tensor tiled_target_sum(const torch::Tensor& r, const torch::Tensor& c,
                               const torch::Tensor& scale, const WeightTiles& targets,
                               int64_t tile) {
  torch::Tensor v, u;
  {
    torch::NoGradGuard no_grad;
    v = torch::zeros_like(r);
    const bool need_u = c.requires_grad();
    if (need_u) u = torch::zeros_like(c);
    auto rd = r.detach(), cd = c.detach();
    WeightTiles::for_each_tile(r.size(0), c.size(0), tile,
                               [&](int64_t i0, int64_t ti, int64_t j0, int64_t tj) {
                                 auto t = targets(i0, ti, j0, tj);
                                 v.narrow(0, i0, ti).addmm_(t, cd.narrow(0, j0, tj));
                                 if (need_u) u.narrow(0, j0, tj).addmm_(t.t(), rd.narrow(0, i0, ti));
                               });
  }
  auto value = scale * (r * v).sum();
  if (u.defined()) value = value + scale.detach() * ((c - c.detach()) * u).sum();
  return value;
}

// The affine shortcut (docs/method.md, "The affine shortcut"): with
// w_ij = (<a_i, b_j> + 1) / 2 over m columns, the row sums are
// W_i = (<a_i, sum_j b_j> + m) / 2 and sum_j w_ij c_j = (B^T C)^T a_i / 2 + sum_j c_j / 2,
// so no N x N tensor is needed. Both the fused and the distributed path
// take their row sums here.
torch::Tensor affine_row_sums(const torch::Tensor& a, const torch::Tensor& b_sum, double m) {
  return (torch::mv(a, b_sum) + m) * 0.5;
}

// s * sum_ij T_ij <r_i, c_j> for the affine targets T_ij = w_ij / W_i, in O(N D^2).
torch::Tensor affine_target_sum(const torch::Tensor& r, const torch::Tensor& c,
                                const torch::Tensor& scale, const torch::Tensor& a,
                                const torch::Tensor& b) {
  auto row_sums = affine_row_sums(a, b.sum(0), static_cast<double>(b.size(0)));  // [n]
  auto weighted_c = (torch::mm(a, torch::mm(b.t(), c)) + c.sum(0)) * 0.5;          // [n, D]
  return scale * ((r * weighted_c).sum(1) / row_sums).sum();
}

// s * sum_i <r_i, c_{offset + i}>: the CL target (one positive per row).
torch::Tensor diagonal_target_sum(const torch::Tensor& r, const torch::Tensor& c,
                                  const torch::Tensor& scale, int64_t offset) {
  return scale * (r * c.narrow(0, offset, r.size(0))).sum();
}

// SigLIP and CWSigLIP: (1/N) sum_ij [softplus(z_ij) - t_ij z_ij] with
// z = s <p_i, q_j> + b, which is -(1/N) sum_ij [t log sigmoid(z) + (1 - t)
// log sigmoid(-z)]. No normaliser couples the tiles, so the gradients
// (dz = sigmoid(z) - t) are accumulated in the same pass as the value and
// the backward pass only scales them.
struct TiledSigmoidLoss : public torch::autograd::Function<TiledSigmoidLoss> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& p,
                               const torch::Tensor& q, const torch::Tensor& scale,
                               const torch::Tensor& bias, const WeightTiles* targets,
                               int64_t tile, double n_global) {
    SerialElementwise serial;
    const double s = scale.item<double>(), b = bias.item<double>();
    const int64_t n = p.size(0), m = q.size(0);
    const auto opts = p.options();
    const bool need_p = p.requires_grad(), need_q = q.requires_grad();
    torch::Tensor dp = need_p ? torch::zeros_like(p) : torch::Tensor();
    torch::Tensor dq = need_q ? torch::zeros_like(q) : torch::Tensor();
    double loss = 0, ds = 0, db = 0;
    auto cos_buf = torch::empty({tile * tile}, opts), z_buf = torch::empty({tile * tile}, opts);
    WeightTiles::for_each_tile(n, m, tile, [&](int64_t i0, int64_t ti, int64_t j0, int64_t tj) {
      auto pi = p.narrow(0, i0, ti), qj = q.narrow(0, j0, tj);
      auto cos = tile_logits(cos_buf, pi, qj, 1.0);
      auto z = tile_view(z_buf, ti, tj);
      z.copy_(cos).mul_(s).add_(b);
      auto t = (*targets)(i0, ti, j0, tj);
      loss += (torch::softplus(z) - t * z).sum().item<double>();
      auto dz = z.sigmoid_().sub_(t);  // reuses z's buffer
      ds += dz.view(-1).dot(cos.view(-1)).item<double>();
      db += dz.sum().item<double>();
      if (need_p) dp.narrow(0, i0, ti).addmm_(dz, qj, 1.0, s);
      if (need_q) dq.narrow(0, j0, tj).addmm_(dz.t(), pi, 1.0, s);
    });
    const double inv_n = 1.0 / n_global;
    ctx->saved_data["dp"] = need_p ? dp.mul_(inv_n) : dp;
    ctx->saved_data["dq"] = need_q ? dq.mul_(inv_n) : dq;
    ctx->saved_data["ds"] = ds * inv_n;
    ctx->saved_data["db"] = db * inv_n;
    ctx->saved_data["scale_options"] = torch::empty({}, scale.options());
    ctx->saved_data["bias_options"] = torch::empty({}, bias.options());
    return torch::full({}, loss * inv_n, opts);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto& g = grad_outputs[0];
    auto scaled = [&](const char* key) {
      auto t = ctx->saved_data[key].toOptional<torch::Tensor>().value_or(torch::Tensor());
      return t.defined() ? t * g : t;
    };
    auto scalar = [&](const char* key, const char* like) {
      auto ref = ctx->saved_data[like].toTensor();
      return torch::full({}, ctx->saved_data[key].toDouble(), ref.options()) * g.to(ref.dtype());
    };
    return {scaled("dp"),         scaled("dq"),    scalar("ds", "scale_options"),
            scalar("db", "bias_options"), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};


// ---------------------------------------------------------------------------
// The single-process softmax loss in one autograd function: normalisation,
// log-sum-exp and targets, with a hand-written backward that writes every
// gradient contribution into one [N, D] buffer per input. Beyond the inputs
// it holds O(N) vectors, D x D statistics and a few tiles (docs/performance.md).

enum class Target { Diagonal, Affine, Tiles };

struct FusedConfig {
  Target pq = Target::Diagonal, qp = Target::Diagonal;  // rows p vs q; rows q vs p
  WeightOptions weights;  // Tiles: the map; Affine: weights.center
  torch::Tensor labels;   // Tiles with the labels map
  int64_t tile = 1024;

  // Weight tiles over p against itself, row-normalised (the softmax targets).
  std::optional<WeightTiles> make_tiles(const torch::Tensor& p) const {
    if (pq != Target::Tiles && qp != Target::Tiles) return std::nullopt;
    ScoredBatch b;
    b.p_rows = b.p_cols = p;
    b.labels_rows = b.labels_cols = labels;
    return WeightTiles(weights, b, tile, /*normalise=*/true);
  }
};

// Rows [i0, i0 + t) of x scaled by their inverse norms.
torch::Tensor unit_rows(const torch::Tensor& x, const torch::Tensor& inv_norm, int64_t i0,
                        int64_t t) {
  return x.narrow(0, i0, t) * inv_norm.narrow(0, i0, t).unsqueeze(1);
}

torch::Tensor inverse_norms(const torch::Tensor& x) {
  // As F::normalize: x / max(||x||, 1e-12).
  return x.norm(2, 1).clamp_min(1e-12).reciprocal();
}

// Affine targets through D x D statistics (docs/method.md): a = normalised (and
// optionally centred) p, W_i = sum_j (<a_i, a_j> + 1) / 2, aw_i = a_i / W_i.
// For the direction with rows r and columns c (r, c in {p^, q^}):
//   sum_ij T_ij <r_i, c_j> = (<A^T C, AW^T R> + <sum_i r_i / W_i, sum_j c_j>) / 2.
struct AffineStats {
  torch::Tensor row_sums;          // W [N]
  torch::Tensor at_q, at_p;        // A^T Q^, A^T P^  [D, D]
  torch::Tensor awt_p, awt_q;      // AW^T P^, AW^T Q^ [D, D]
  torch::Tensor p_over_w, q_over_w;  // sum_i p^_i / W_i, sum_i q^_i / W_i [D]
  torch::Tensor p_sum, q_sum;      // sum_j p^_j, sum_j q^_j [D]

  double value_pq() const {
    return 0.5 * ((at_q * awt_p).sum() + p_over_w.dot(q_sum)).item<double>();
  }
  double value_qp() const {
    return 0.5 * ((at_p * awt_q).sum() + q_over_w.dot(p_sum)).item<double>();
  }
};

torch::Tensor affine_rows(const torch::Tensor& p_hat, const torch::Tensor& center) {
  return center.defined() ? normalize_rows(p_hat - center) : p_hat;
}

AffineStats affine_stats(const torch::Tensor& p, const torch::Tensor& q,
                         const torch::Tensor& inv_p, const torch::Tensor& inv_q,
                         const torch::Tensor& center, int64_t block) {
  const int64_t n = p.size(0), d = p.size(1);
  const auto opts = p.options();
  AffineStats st;
  auto a_sum = torch::zeros({d}, opts);
  for (int64_t i0 = 0; i0 < n; i0 += block) {
    const int64_t t = std::min(block, n - i0);
    a_sum += affine_rows(unit_rows(p, inv_p, i0, t), center).sum(0);
  }
  st.row_sums = torch::empty({n}, opts);
  st.at_q = torch::zeros({d, d}, opts);
  st.at_p = torch::zeros({d, d}, opts);
  st.awt_p = torch::zeros({d, d}, opts);
  st.awt_q = torch::zeros({d, d}, opts);
  st.p_over_w = torch::zeros({d}, opts);
  st.q_over_w = torch::zeros({d}, opts);
  st.p_sum = torch::zeros({d}, opts);
  st.q_sum = torch::zeros({d}, opts);
  for (int64_t i0 = 0; i0 < n; i0 += block) {
    const int64_t t = std::min(block, n - i0);
    auto ph = unit_rows(p, inv_p, i0, t), qh = unit_rows(q, inv_q, i0, t);
    auto a = affine_rows(ph, center);
    auto w = affine_row_sums(a, a_sum, static_cast<double>(n));
    st.row_sums.narrow(0, i0, t).copy_(w);
    auto inv_w = w.reciprocal().unsqueeze(1);
    auto aw = a * inv_w;
    st.at_q.addmm_(a.t(), qh);
    st.at_p.addmm_(a.t(), ph);
    st.awt_p.addmm_(aw.t(), ph);
    st.awt_q.addmm_(aw.t(), qh);
    st.p_over_w += (ph * inv_w).sum(0);
    st.q_over_w += (qh * inv_w).sum(0);
    st.p_sum += ph.sum(0);
    st.q_sum += qh.sum(0);
  }
  return st;
}

// What the backward pass needs, kept whole in one capsule: the autograd
// context holds IValues only, and a field added here reaches the backward
// pass by itself (no field-by-field copies).
struct FusedState : torch::CustomClassHolder {
  FusedConfig config;
  torch::Tensor inv_p, inv_q;        // 1 / |p_i|, 1 / |q_i|
  torch::Tensor lse_rows, lse_cols;  // per-row log-sum-exps of both directions
  AffineStats affine;                // when a direction uses affine targets
  double targets_over_s = 0;         // sum of the target terms / s

  static c10::intrusive_ptr<FusedState> load(AutogradContext* ctx) {
    return c10::static_intrusive_pointer_cast<FusedState>(ctx->saved_data["state"].toCapsule());
  }
};

// Gradients of the log-sum-exp and tiled-target terms with respect to the
// normalised rows p^, q^, tile by tile; returns their part of d loss / d s.
double logit_gradients(const torch::Tensor& p, const torch::Tensor& q, const FusedState& st, double s, double c,
                       bool need_s, torch::Tensor& dp, torch::Tensor& dq) {
  const auto& cfg = st.config;
  const int64_t n = p.size(0), tile = cfg.tile;
  const auto tiles = cfg.make_tiles(p);
  const auto opts = p.options();
  double ds = 0;
  auto logits = torch::empty({tile * tile}, opts), grad = torch::empty({tile * tile}, opts),
       scratch = torch::empty({tile * tile}, opts);
  for (int64_t i0 = 0; i0 < n; i0 += tile) {
    const int64_t ti = std::min(tile, n - i0);
    auto pi = unit_rows(p, st.inv_p, i0, ti);
    for (int64_t j0 = 0; j0 < n; j0 += tile) {
      const int64_t tj = std::min(tile, n - j0);
      auto qj = unit_rows(q, st.inv_q, j0, tj);
      auto l = tile_logits(logits, pi, qj, s);
      auto g = tile_view(grad, ti, tj);
      softmax_grad_tile(l, st.lse_rows.narrow(0, i0, ti), st.lse_cols.narrow(0, j0, tj), 1.0, 1.0, g, scratch);
      if (need_s) ds += c * g.view(-1).dot(l.view(-1)).item<double>() / s;
      if (cfg.pq == Target::Tiles) g.sub_((*tiles)(i0, ti, j0, tj));
      if (cfg.qp == Target::Tiles) g.sub_((*tiles)(j0, tj, i0, ti).t());
      // l = s <p^_i, q^_j>
      if (dp.defined()) dp.narrow(0, i0, ti).addmm_(g, qj, 1.0, c * s);
      dq.narrow(0, j0, tj).addmm_(g.t(), pi, 1.0, c * s);
    }
  }
  return ds;
}

// Adds the diagonal and affine targets' gradients (each direction's
// sum_ij T_ij <r_i, c_j>, coefficient k = -c s), then maps the gradients
// through the normalisation x^ = x / |x|: dx = (dx^ - x^ <x^, dx^>) / |x|.
void target_gradients(const torch::Tensor& p, const torch::Tensor& q, const FusedState& st, double k,
                      torch::Tensor& dp, torch::Tensor& dq) {
  const auto& cfg = st.config;
  const auto& a_st = st.affine;
  const int64_t n = p.size(0), tile = cfg.tile;
  const int diagonal_dirs = (cfg.pq == Target::Diagonal) + (cfg.qp == Target::Diagonal);
  const bool need_p = dp.defined();
  for (int64_t i0 = 0; i0 < n; i0 += tile) {
    const int64_t t = std::min(tile, n - i0);
    auto pi = unit_rows(p, st.inv_p, i0, t), qi = unit_rows(q, st.inv_q, i0, t);
    auto dpi = need_p ? dp.narrow(0, i0, t) : torch::Tensor();
    auto dqi = dq.narrow(0, i0, t);
    if (diagonal_dirs > 0) {
      dqi.add_(pi, k * diagonal_dirs);
      if (need_p) dpi.add_(qi, k * diagonal_dirs);
    }
    if (cfg.pq == Target::Affine || cfg.qp == Target::Affine) {
      auto a = affine_rows(pi, cfg.weights.center);
      auto inv_w = a_st.row_sums.narrow(0, i0, t).reciprocal().unsqueeze(1);
      auto aw = a * inv_w;
      if (cfg.pq == Target::Affine) {
        // value = (<A^T Q^, AW^T P^> + <sum p^/W, sum q^>) / 2
        dqi.add_(torch::mm(a, a_st.awt_p) + a_st.p_over_w, 0.5 * k);
        if (need_p) dpi.add_(torch::mm(aw, a_st.at_q) + inv_w * a_st.q_sum, 0.5 * k);
      }
      if (cfg.qp == Target::Affine) {
        // value = (<A^T P^, AW^T Q^> + <sum q^/W, sum p^>) / 2
        dqi.add_(torch::mm(aw, a_st.at_p) + inv_w * a_st.p_sum, 0.5 * k);
        if (need_p) dpi.add_(torch::mm(a, a_st.awt_q) + a_st.q_over_w, 0.5 * k);
      }
    }
    dqi.sub_(qi * (qi * dqi).sum(1, true)).mul_(st.inv_q.narrow(0, i0, t).unsqueeze(1));
    if (need_p) dpi.sub_(pi * (pi * dpi).sum(1, true)).mul_(st.inv_p.narrow(0, i0, t).unsqueeze(1));
  }
}

// Log-sum-exp over rows (p_i vs all q) and columns (q_j vs all p) into the
// state, and the tiled targets <T, l> of either direction, in one pass.
double log_sum_exps(const torch::Tensor& p, const torch::Tensor& q, FusedState& st, double s) {
  const auto& cfg = st.config;
  const int64_t n = p.size(0), tile = cfg.tile;
  const auto opts = p.options();
  const auto tiles = cfg.make_tiles(p);
  const double neg_inf = -std::numeric_limits<double>::infinity();
  auto row_max = torch::full({n}, neg_inf, opts), row_sum = torch::zeros({n}, opts);
  auto col_max = torch::full({n}, neg_inf, opts), col_sum = torch::zeros({n}, opts);
  auto logits = torch::empty({tile * tile}, opts), scratch = torch::empty({tile * tile}, opts);
  double tiled_targets = 0;
  for (int64_t i0 = 0; i0 < n; i0 += tile) {
    const int64_t ti = std::min(tile, n - i0);
    auto pi = unit_rows(p, st.inv_p, i0, ti);
    for (int64_t j0 = 0; j0 < n; j0 += tile) {
      const int64_t tj = std::min(tile, n - j0);
      auto l = tile_logits(logits, pi, unit_rows(q, st.inv_q, j0, tj), s);
      merge_tile_lse(l, row_max.narrow(0, i0, ti), row_sum.narrow(0, i0, ti), col_max.narrow(0, j0, tj),
                     col_sum.narrow(0, j0, tj), scratch);
      if (cfg.pq == Target::Tiles) tiled_targets += l.view(-1).dot((*tiles)(i0, ti, j0, tj).reshape(-1)).item<double>();
      // Rows q_j against columns p_i: logit l_ij with target T_ji.
      if (cfg.qp == Target::Tiles) tiled_targets += (l * (*tiles)(j0, tj, i0, ti).t()).sum().item<double>();
    }
  }
  st.lse_rows = row_max + row_sum.log();
  st.lse_cols = col_max + col_sum.log();
  return tiled_targets;
}

// The diagonal and affine targets' sum (affine statistics kept in the state).
double linear_targets(const torch::Tensor& p, const torch::Tensor& q, FusedState& st, double s) {
  const auto& cfg = st.config;
  const int64_t n = p.size(0), tile = cfg.tile;
  double targets = 0;
  const int diagonal_dirs = (cfg.pq == Target::Diagonal) + (cfg.qp == Target::Diagonal);
  if (diagonal_dirs > 0) {
    double diagonal = 0;  // sum_i <p^_i, q^_i>
    for (int64_t i0 = 0; i0 < n; i0 += tile) {
      const int64_t t = std::min(tile, n - i0);
      diagonal += (unit_rows(p, st.inv_p, i0, t) * unit_rows(q, st.inv_q, i0, t)).sum().item<double>();
    }
    targets += s * diagonal * diagonal_dirs;
  }
  if (cfg.pq == Target::Affine || cfg.qp == Target::Affine) {
    st.affine = affine_stats(p, q, st.inv_p, st.inv_q, cfg.weights.center, tile);
    if (cfg.pq == Target::Affine) targets += s * st.affine.value_pq();
    if (cfg.qp == Target::Affine) targets += s * st.affine.value_qp();
  }
  return targets;
}

struct FusedSoftmaxLoss : public torch::autograd::Function<FusedSoftmaxLoss> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& p, const torch::Tensor& q,
                               const torch::Tensor& scale, const FusedConfig& config) {
    SerialElementwise serial;
    const double s = scale.item<double>();
    auto st = c10::make_intrusive<FusedState>();
    st->config = config;
    st->inv_p = inverse_norms(p);
    st->inv_q = inverse_norms(q);
    const double targets = log_sum_exps(p, q, *st, s) + linear_targets(p, q, *st, s);
    const double lse = st->lse_rows.sum().item<double>() + st->lse_cols.sum().item<double>();
    st->targets_over_s = targets / s;
    ctx->save_for_backward({p, q, scale});
    ctx->saved_data["state"] = c10::IValue::make_capsule(st);
    return torch::full({}, (lse - targets) / (2.0 * static_cast<double>(p.size(0))), p.options());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const auto &p = saved[0], &q = saved[1], &scale = saved[2];
    SerialElementwise serial;
    const auto state = FusedState::load(ctx);
    const double s = scale.item<double>();
    // d loss / d l_ij = c [softmax_row + softmax_col - targets], c = g / 2N.
    const double c = grad_outputs[0].item<double>() / (2.0 * static_cast<double>(p.size(0)));
    const bool need_p = ctx->needs_input_grad(0), need_s = ctx->needs_input_grad(2);
    auto dq = torch::zeros_like(q);
    torch::Tensor dp = need_p ? torch::zeros_like(p) : torch::Tensor();
    double ds = need_s ? -c * state->targets_over_s : 0.0;
    ds += logit_gradients(p, q, *state, s, c, need_s, dp, dq);
    target_gradients(p, q, *state, -c * s, dp, dq);
    torch::Tensor dscale = need_s ? torch::full({}, ds, scale.options()) : torch::Tensor();
    return {dp, dq, dscale, torch::Tensor()};
  }
};
}  // namespace

torch::Tensor tiled_sigmoid_loss(const ScoredBatch& b, const LossOptions& o) {
  WeightOptions weights = o.weights;
  if (o.kind == LossKind::SigLIP) {
    weights = WeightOptions();
    weights.map = WeightMap::Identity;
  }
  WeightTiles targets(weights, b, o.tiling.tile, /*normalise=*/false);
  return TiledSigmoidLoss::apply(b.p_rows, b.q_cols, b.scale, b.bias, &targets, o.tiling.tile,
                                 static_cast<double>(b.p_cols.size(0)));
}

torch::Tensor fused_softmax_loss(const torch::Tensor& p, const torch::Tensor& q,
                                 const torch::Tensor& scale, const LossOptions& o) {
  const auto targets = softmax_targets(o);
  FusedConfig cfg;
  cfg.tile = o.tiling.tile;
  cfg.weights = targets.weights;
  if (cfg.weights.map == WeightMap::Labels) cfg.labels = o.labels;
  const Target weighted =
      cfg.weights.map == WeightMap::Affine ? Target::Affine : Target::Tiles;
  cfg.pq = targets.frozen_to_trained ? weighted : Target::Diagonal;
  cfg.qp = targets.trained_to_frozen ? weighted : Target::Diagonal;
  if (cfg.weights.center.defined()) {
    // Validated and cast once here (weight_space does the same for the other paths).
    TORCH_CHECK(cfg.weights.center.dim() == 1 && cfg.weights.center.size(0) == p.size(1),
                "contrastive_weights: center must be [", p.size(1), "], got ",
                cfg.weights.center.sizes());
    cfg.weights.center = cfg.weights.center.detach().to(p.options());
  }
  return FusedSoftmaxLoss::apply(p, q, scale, cfg);
}

torch::Tensor tiled_softmax_loss(const ScoredBatch& b, const LossOptions& o) {
  TORCH_CHECK(b.distributed, "tiled_softmax_loss: one process uses fused_softmax_loss");
  const int64_t tile = o.tiling.tile;
  const double n_global = static_cast<double>(b.p_cols.size(0));
  // Log-sum-exp of this rank's rows of both directions against the gathered
  // columns: p_i vs all q, and q_i vs all p.
  auto lse = TiledLogSumExp::apply(b.p_rows, b.q_cols, b.scale, tile) +
             TiledLogSumExp::apply(b.q_rows, b.p_cols, b.scale, tile);

  const auto t = softmax_targets(o);
  // Each direction's target sum: the diagonal, or weighted (affine through
  // D x D statistics, any other map through weight tiles).
  std::optional<WeightTiles> tiles;
  torch::Tensor wa, wb;
  if (t.any() && t.weights.map == WeightMap::Affine) std::tie(wa, wb) = weight_space(b.p_rows, b.p_cols, t.weights);
  if (t.any() && t.weights.map != WeightMap::Affine) tiles.emplace(t.weights, b, tile, /*normalise=*/true);
  auto direction = [&](bool weighted, const torch::Tensor& rows, const torch::Tensor& cols) {
    if (!weighted) return diagonal_target_sum(rows, cols, b.scale, b.offset);
    return tiles ? tiled_target_sum(rows, cols, b.scale, *tiles, tile)
                 : affine_target_sum(rows, cols, b.scale, wa, wb);
  };
  auto targets = direction(t.frozen_to_trained, b.p_rows, b.q_cols) + direction(t.trained_to_frozen, b.q_rows, b.p_cols);
  return (lse - targets) / (2.0 * n_global);
}

}  // namespace cwcl::detail
