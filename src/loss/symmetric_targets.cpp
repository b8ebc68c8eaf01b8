// Weighted targets of one process through symmetric weight tiles (tiles.h,
// docs/method.md "Symmetric weight tiles"). The pairs of tiles (I, J) and
// (J, I) are visited together: the weight tile W_IJ is made once (one
// product of the frozen rows and the map) and serves the logit tiles L_IJ
// and L_JI, W_JI being its transpose; per logit tile, rows x against
// columns y:
//   p->q targets: T_xy = w_xy / r_x   (value: sum_x v_x / r_x, v_x = sum_y w_xy l_xy)
//   q->p targets: row q_y against columns p_x, T'_yx = w_yx / r_y = w_xy / r_y
// so the target sums need only the row sums r, accumulated in the same pass.
#include "tiles.h"

#include <cmath>
#include <limits>

namespace cwcl::detail {
namespace {

// x^k in place for an integer k >= 1, by squaring (`result` is a second
// tile): x^8 is three products.
void integer_power_(torch::Tensor& x, torch::Tensor& result, int64_t k) {
  bool started = false;
  while (true) {
    if (k & 1) {
      if (started) result.mul_(x);
      else result.copy_(x), started = true;
    }
    k >>= 1;
    if (k == 0) break;
    x.mul_(x);
  }
  x.copy_(result);
}

// w = shift + scale * a_i a_j^T into w: the map's affine part rides in
// the matrix product, which then needs no pass of its own. (beta 1 with a
// 0-dim `shift` broadcast; the product's old values are not read.)
void scaled_cosines(torch::Tensor& w, const torch::Tensor& ai, const torch::Tensor& aj, double shift, double scale) {
  at::addmm_out(w, torch::full({}, shift, w.options()), ai, aj.t(), /*beta=*/1.0, /*alpha=*/scale);
}

// The pairs of row blocks (I, J), J >= I.
template <typename F>
void for_each_tile_pair(int64_t n, int64_t tile, F&& f) {
  for (int64_t i0 = 0; i0 < n; i0 += tile)
    for (int64_t j0 = i0; j0 < n; j0 += tile) f(i0, std::min(tile, n - i0), j0, std::min(tile, n - j0));
}

// The two logit tiles a weight tile W_IJ serves, both in W's orientation
// (rows I, columns J): s P_I Q_J^T, whose rows are p->q rows and whose
// columns are q->p rows; and, off the diagonal, s Q_I P_J^T = (s P_J Q_I^T)^T,
// whose rows are q->p rows and whose columns are p->q rows.
struct Orientation {
  const Side* rows;
  const Side* cols;
  bool rows_are_p;  // p->q rows (else q->p rows)
};

}  // namespace

bool SymmetricTargets::applies(const WeightOptions& w, bool local) {
  return local && (w.map == WeightMap::Relu || w.map == WeightMap::Power || w.map == WeightMap::Kernel);
}

// Cosines of unit rows lie in [-1, 1] up to rounding; the plain path clamps
// them, these maps need not (an excess of 1e-7 moves a weight by ~1e-7 / tau).
torch::Tensor SymmetricTargets::tile(torch::Tensor& buffer, torch::Tensor& spare, int64_t i0, int64_t ti, int64_t j0,
                                     int64_t tj) const {
  auto w = tile_view(buffer, ti, tj);
  const auto ai = a.narrow(0, i0, ti), aj = a.narrow(0, j0, tj);
  switch (weights.map) {
    case WeightMap::Kernel: {  // exp((cos - 1) / tau): one product, one exp
      const double inv_tau = 1.0 / weights.kernel_tau;
      scaled_cosines(w, ai, aj, -inv_tau, inv_tau);
      return w.exp_();
    }
    case WeightMap::Power: {  // ((cos + 1) / 2)^gamma: one product, an integer gamma by squaring
      scaled_cosines(w, ai, aj, 0.5, 0.5);
      const double g = weights.gamma;
      const auto k = static_cast<int64_t>(g);
      if (static_cast<double>(k) == g && k >= 1 && k <= 1024) {
        auto result = tile_view(spare, ti, tj);
        integer_power_(w, result, k);
      } else {
        w.clamp_min_(0.0).pow_(g);
      }
      return w;
    }
    default:  // Relu: max(0, cos)
      scaled_cosines(w, ai, aj, 0.0, 1.0);
      return w.clamp_min_(0.0);
  }
}

torch::Tensor symmetric_lse_pass(const Side& p, const Side& q, double s, int64_t tile, torch::Tensor lse_pq,
                          torch::Tensor lse_qp, SymmetricTargets& t) {
  const int64_t n = p.size();
  const auto opts = p.x.options();
  const double neg_inf = -std::numeric_limits<double>::infinity();
  // Running log-sum-exps and weighted logit sums per p->q row (index 0) and q->p row (1).
  torch::Tensor max[2] = {torch::full({n}, neg_inf, opts), torch::full({n}, neg_inf, opts)};
  torch::Tensor sum[2] = {torch::zeros({n}, opts), torch::zeros({n}, opts)};
  torch::Tensor v[2] = {torch::zeros({n}, opts), torch::zeros({n}, opts)};
  const bool weighted[2] = {t.pq, t.qp};
  auto r = torch::zeros({n}, opts);
  auto logits = torch::empty({tile * tile}, opts), scratch = torch::empty({tile * tile}, opts);
  auto wbuf = torch::empty({tile * tile}, opts), spare = torch::empty({tile * tile}, opts);
  auto logit_tile = [&](const Orientation& o, int64_t i0, int64_t ti, int64_t j0, int64_t tj, const torch::Tensor& w) {
    const int rk = o.rows_are_p ? 0 : 1, ck = 1 - rk;
    auto l = tile_logits(logits, o.rows->unit(i0, ti), o.cols->unit(j0, tj), s);
    merge_tile_lse(l, max[rk].narrow(0, i0, ti), sum[rk].narrow(0, i0, ti), max[ck].narrow(0, j0, tj),
                   sum[ck].narrow(0, j0, tj), scratch);
    if (!weighted[rk] && !weighted[ck]) return;
    auto wl = tile_view(scratch, ti, tj);
    torch::mul_out(wl, l, w);
    if (weighted[rk]) v[rk].narrow(0, i0, ti).add_(wl.sum(1));
    if (weighted[ck]) v[ck].narrow(0, j0, tj).add_(wl.sum(0));
  };
  for_each_tile_pair(n, tile, [&](int64_t i0, int64_t ti, int64_t j0, int64_t tj) {
    const auto w = t.tile(wbuf, spare, i0, ti, j0, tj);
    r.narrow(0, i0, ti).add_(w.sum(1));
    logit_tile({&p, &q, true}, i0, ti, j0, tj, w);
    if (j0 == i0) return;
    r.narrow(0, j0, tj).add_(w.sum(0));
    logit_tile({&q, &p, false}, i0, ti, j0, tj, w);
  });
  TORCH_CHECK(r.min().item<double>() > 0, "contrastive_loss: a row of the weights sums to zero (",
              name_of(t.weights.map), " map); every row needs a positive weight");
  t.inv_row_sums = r.reciprocal();
  lse_pq.copy_(max[0] + sum[0].log());
  lse_qp.copy_(max[1] + sum[1].log());
  return as_double(v[0].dot(t.inv_row_sums) + v[1].dot(t.inv_row_sums));
}

torch::Tensor symmetric_logit_gradients(const Side& p, const Side& q, const torch::Tensor& lse_pq, const torch::Tensor& lse_qp,
                                 const SymmetricTargets& t, double s, double c, bool need_s, int64_t tile,
                                 torch::Tensor& dp, torch::Tensor& dq) {
  const int64_t n = p.size();
  const auto opts = p.x.options();
  auto logits = torch::empty({tile * tile}, opts), grad = torch::empty({tile * tile}, opts),
       scratch = torch::empty({tile * tile}, opts), wbuf = torch::empty({tile * tile}, opts),
       spare = torch::empty({tile * tile}, opts);
  const auto none = torch::zeros({std::min(tile, n)}, opts);
  const torch::Tensor lse[2] = {lse_pq, lse_qp};
  const bool weighted[2] = {t.pq, t.qp};
  torch::Tensor* grads[2] = {&dp, &dq};
  auto ds = device_sum(opts);
  // One logit tile: its row and column softmaxes less the targets
  // w (1 / r_row [weighted rows] + 1 / r_col [weighted columns]), into both gradients.
  auto logit_tile = [&](const Orientation& o, int64_t i0, int64_t ti, int64_t j0, int64_t tj, const torch::Tensor& w) {
    const int rk = o.rows_are_p ? 0 : 1, ck = 1 - rk;
    auto xr = o.rows->unit(i0, ti), yc = o.cols->unit(j0, tj);
    auto l = tile_logits(logits, xr, yc, s);
    auto g = tile_view(grad, ti, tj);
    softmax_grad_tile(l, lse[rk].narrow(0, i0, ti), lse[ck].narrow(0, j0, tj), 1.0, 1.0, g, scratch);
    if (need_s) ds += as_double(g.view(-1).dot(l.view(-1))) * c / s;
    if (weighted[rk] || weighted[ck]) {
      auto scale = tile_view(scratch, ti, tj);
      torch::add_out(scale, (weighted[rk] ? t.inv_row_sums.narrow(0, i0, ti) : none.narrow(0, 0, ti)).unsqueeze(1),
                     (weighted[ck] ? t.inv_row_sums.narrow(0, j0, tj) : none.narrow(0, 0, tj)).unsqueeze(0));
      g.addcmul_(w, scale, -1.0);
    }
    if (grads[rk]->defined()) grads[rk]->narrow(0, i0, ti).addmm_(g, yc, 1.0, c * s);
    if (grads[ck]->defined()) grads[ck]->narrow(0, j0, tj).addmm_(g.t(), xr, 1.0, c * s);
  };
  for_each_tile_pair(n, tile, [&](int64_t i0, int64_t ti, int64_t j0, int64_t tj) {
    const auto w = t.tile(wbuf, spare, i0, ti, j0, tj);
    logit_tile({&p, &q, true}, i0, ti, j0, tj, w);
    if (j0 != i0) logit_tile({&q, &p, false}, i0, ti, j0, tj, w);
  });
  return ds;
}

}  // namespace cwcl::detail
