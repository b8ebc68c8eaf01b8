// Internal to the loss tier (not installed): the tiles the tiled loss walks,
// and what the softmax and sigmoid kinds share over them.
#pragma once

#include "detail.h"

#include <cstdint>
#include <utility>

namespace cwcl::detail {

/// A contiguous [rows, cols] view on the front of a reusable buffer.
torch::Tensor tile_view(torch::Tensor& buffer, int64_t rows, int64_t cols);

/// l = s * x_I y_J^T into a buffer.
torch::Tensor tile_logits(torch::Tensor& buffer, const torch::Tensor& xi, const torch::Tensor& yj, double s);

/// Merges a tile of logits into running row and/or column log-sum-exps (an
/// undefined accumulator is skipped); `scratch` holds a tile.
void merge_tile_lse(const torch::Tensor& l, torch::Tensor row_max, torch::Tensor row_sum, torch::Tensor col_max,
                    torch::Tensor col_sum, torch::Tensor& scratch);

/// g = g_rows * softmax over each row + g_cols * softmax over each column of
/// a tile, given the final log-sum-exps (an undefined one counts 0).
void softmax_grad_tile(const torch::Tensor& l, const torch::Tensor& lse_r, const torch::Tensor& lse_c, double g_rows,
                       double g_cols, torch::Tensor g, torch::Tensor& scratch);

/// A sum over tiles kept on the inputs' device as a 0-dim double: the tiles
/// never wait for the host (on a GPU a read is a synchronisation); the
/// loss reads it once. Adding as_double(x) equals adding x.item<double>().
inline torch::Tensor device_sum(const torch::TensorOptions& like) { return torch::zeros({}, like.dtype(torch::kDouble)); }
inline torch::Tensor as_double(const torch::Tensor& x) { return x.to(torch::kDouble); }

/// Calls f(i0, ti, j0, tj) for every tile of an n x m matrix.
template <typename F>
void for_each_tile(int64_t n, int64_t m, int64_t tile, F&& f) {
  for (int64_t i0 = 0; i0 < n; i0 += tile)
    for (int64_t j0 = 0; j0 < m; j0 += tile) f(i0, std::min(tile, n - i0), j0, std::min(tile, m - j0));
}

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
                  "contrastive_loss: a row of the weights sums to zero (", name_of(o.map),
                  " map); every row needs a positive weight");
      inv_row_sum_ = sums.reciprocal();
    }
  }

  // Weights (normalised if asked) of rows [i0, i0 + ti) and columns [j0, j0 + tj).
  torch::Tensor operator()(int64_t i0, int64_t ti, int64_t j0, int64_t tj) const {
    auto w = raw(i0, ti, j0, tj);
    return inv_row_sum_.defined() ? w * inv_row_sum_.narrow(0, i0, ti) : w;
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


/// Raw rows and their inverse norms: unit(i0, t) gives normalised rows without
/// ever holding a normalised copy of the whole input.
struct Side {
  torch::Tensor x, inv;
  int64_t size() const { return x.size(0); }
  torch::Tensor unit(int64_t i0, int64_t t) const { return x.narrow(0, i0, t) * inv.narrow(0, i0, t).unsqueeze(1); }
};

/// 1 / max(|x_i|, 1e-12) per row, as F::normalize divides.
torch::Tensor inverse_norms(const torch::Tensor& x);

/// The weighted targets of one process with a cosine map that is symmetric
/// in its two rows (relu, power, kernel): w_ij = w_ji, so one weight tile
/// serves the logit tiles (I, J) and (J, I) and both directions' targets,
/// T = W / r with r the row sums (docs/method.md, "Symmetric weight tiles").
/// The row sums are accumulated during the forward pass over the logits and
/// kept for the backward pass, which makes each weight tile once more.
struct SymmetricTargets {
  WeightOptions weights;
  torch::Tensor a;  ///< the frozen rows in weight space (normalised, centred), detached
  bool pq = false, qp = false;  ///< which directions use the weights
  torch::Tensor inv_row_sums;   ///< 1 / r, after the forward pass
  /// Whether these options take this path.
  static bool applies(const WeightOptions& weights, bool local);
  /// Weights of rows [i0, i0 + ti) against columns [j0, j0 + tj) into
  /// `buffer` (`spare` is a second tile for maps that need one).
  torch::Tensor tile(torch::Tensor& buffer, torch::Tensor& spare, int64_t i0, int64_t ti, int64_t j0, int64_t tj) const;
};

/// Forward: the row log-sum-exps of s P^ Q^T (lse_pq, rows p_i against every
/// q_j) and its column log-sum-exps (lse_qp, rows q_j against every p_i), and
/// the weighted directions' target sum <T, l> (device_sum); fills t.inv_row_sums.
torch::Tensor symmetric_lse_pass(const Side& p, const Side& q, double s, int64_t tile, torch::Tensor lse_pq,
                          torch::Tensor lse_qp, SymmetricTargets& t);

/// Backward: adds c s (softmax - targets) of every logit tile to dp (rows)
/// and dq (columns); returns the log-sum-exps' part of d loss / d s.
torch::Tensor symmetric_logit_gradients(const Side& p, const Side& q, const torch::Tensor& lse_pq, const torch::Tensor& lse_qp,
                                 const SymmetricTargets& t, double s, double c, bool need_s, int64_t tile,
                                 torch::Tensor& dp, torch::Tensor& dq);

}  // namespace cwcl::detail
