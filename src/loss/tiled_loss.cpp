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
#include "tiles.h"
#include <cwcl/threads.h>

#include <limits>
#include <optional>

namespace cwcl::detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The affine shortcut (docs/method.md, "The affine shortcut"): with
// w_ij = (<a_i, b_j> + 1) / 2 over m columns, the row sums are
// W_i = (<a_i, sum_j b_j> + m) / 2 and sum_j w_ij c_j = ((B^T C)^T a_i + sum_j c_j) / 2,
// so no N x N tensor is needed.
torch::Tensor affine_row_sums(const torch::Tensor& a, const torch::Tensor& b_sum, double m) {
  return (torch::mv(a, b_sum) + m) * 0.5;
}

// ---------------------------------------------------------------------------
// The softmax kinds in one autograd function, for one process (the columns
// are the rows) and for a rank scoring its rows against gathered columns:
// normalisation, log-sum-exps and targets, with a hand-written backward that
// writes every gradient contribution into one [N, D] buffer per input.
// Beyond the inputs it holds O(N) vectors, D x D statistics and a few tiles
// (docs/method.md, docs/performance.md).

enum class Target { Diagonal, Affine, Tiles };

struct SoftmaxConfig {
  Target pq = Target::Diagonal, qp = Target::Diagonal;  // rows p vs q; rows q vs p
  WeightOptions weights;                  // Tiles: the map; Affine: weights.center
  torch::Tensor labels_rows, labels_cols; // Tiles with the labels map
  int64_t tile = 1024;
  int64_t offset = 0;   // column of row 0's own pair
  bool local = true;    // one process: the columns are the rows

  // Row-normalised weight tiles of the frozen rows against the frozen columns.
  std::optional<WeightTiles> make_tiles(const torch::Tensor& p_rows, const torch::Tensor& p_cols) const {
    if (pq != Target::Tiles && qp != Target::Tiles) return std::nullopt;
    ScoredBatch b;
    b.p_rows = p_rows;
    b.p_cols = p_cols;
    b.labels_rows = labels_rows;
    b.labels_cols = labels_cols;
    b.offset = offset;
    return WeightTiles(weights, b, tile, /*normalise=*/true);
  }

  // The tiles each direction's targets come from (null: not tiled).
  std::pair<const WeightTiles*, const WeightTiles*> tiles_by_direction(const std::optional<WeightTiles>& t) const {
    const WeightTiles* any = t ? &*t : nullptr;
    return {pq == Target::Tiles ? any : nullptr, qp == Target::Tiles ? any : nullptr};
  }
};

torch::Tensor affine_rows(const torch::Tensor& p_hat, const torch::Tensor& center) {
  return center.defined() ? normalize_rows(p_hat - center) : p_hat;
}

// Affine targets through D x D statistics (docs/method.md, "The affine
// shortcut"): a = the frozen rows in weight space, b = the frozen columns,
// W_i = (<a_i, sum_j b_j> + m) / 2, aw_i = a_i / W_i. For the direction with
// rows r and columns c: sum_ij T_ij <r_i, c_j> = (<B^T C, AW^T R> + <sum_i r_i / W_i, sum_j c_j>) / 2.
struct AffineStats {
  torch::Tensor row_sums;            // W [n]
  torch::Tensor bt_qc, bt_pc;        // B^T Q^c, B^T P^c  [D, D]
  torch::Tensor awt_p, awt_q;        // AW^T P^, AW^T Q^  [D, D]
  torch::Tensor p_over_w, q_over_w;  // sum_i p^_i / W_i, sum_i q^_i / W_i  [D]
  torch::Tensor pc_sum, qc_sum;      // sum_j p^c_j, sum_j q^c_j  [D]

  torch::Tensor value_pq() const { return as_double((bt_qc * awt_p).sum() + p_over_w.dot(qc_sum)) * 0.5; }
  torch::Tensor value_qp() const { return as_double((bt_pc * awt_q).sum() + q_over_w.dot(pc_sum)) * 0.5; }
};

AffineStats affine_stats(const Side& pr, const Side& qr, const Side& pc, const Side& qc,
                         const torch::Tensor& center, int64_t block) {
  const int64_t n = pr.size(), m = pc.size(), d = pr.x.size(1);
  const auto opts = pr.x.options();
  AffineStats st;
  auto b_sum = torch::zeros({d}, opts);
  st.bt_qc = torch::zeros({d, d}, opts);
  st.bt_pc = torch::zeros({d, d}, opts);
  st.pc_sum = torch::zeros({d}, opts);
  st.qc_sum = torch::zeros({d}, opts);
  for (int64_t j0 = 0; j0 < m; j0 += block) {
    const int64_t t = std::min(block, m - j0);
    auto ph = pc.unit(j0, t), qh = qc.unit(j0, t);
    auto b = affine_rows(ph, center);
    b_sum += b.sum(0);
    st.bt_qc.addmm_(b.t(), qh);
    st.bt_pc.addmm_(b.t(), ph);
    st.pc_sum += ph.sum(0);
    st.qc_sum += qh.sum(0);
  }
  st.row_sums = torch::empty({n}, opts);
  st.awt_p = torch::zeros({d, d}, opts);
  st.awt_q = torch::zeros({d, d}, opts);
  st.p_over_w = torch::zeros({d}, opts);
  st.q_over_w = torch::zeros({d}, opts);
  for (int64_t i0 = 0; i0 < n; i0 += block) {
    const int64_t t = std::min(block, n - i0);
    auto ph = pr.unit(i0, t), qh = qr.unit(i0, t);
    auto a = affine_rows(ph, center);
    auto w = affine_row_sums(a, b_sum, static_cast<double>(m));
    st.row_sums.narrow(0, i0, t).copy_(w);
    auto inv_w = w.reciprocal().unsqueeze(1);
    auto aw = a * inv_w;
    st.awt_p.addmm_(aw.t(), ph);
    st.awt_q.addmm_(aw.t(), qh);
    st.p_over_w += (ph * inv_w).sum(0);
    st.q_over_w += (qh * inv_w).sum(0);
  }
  return st;
}

// What the backward pass needs, kept whole in one capsule: the autograd
// context holds IValues only, and a field added here reaches the backward
// pass by itself (no field-by-field copies).
struct SoftmaxState : torch::CustomClassHolder {
  SoftmaxConfig config;
  Side pr, qr, pc, qc;               // rows p, q; columns p, q (local: the rows)
  torch::Tensor lse_pq, lse_qp;      // per row: p_i vs all q columns; q_i vs all p columns
  AffineStats affine;                // when a direction uses affine targets
  torch::Tensor inv_row_sums;        // symmetric weight tiles: 1 / row sums of the weights
  torch::Tensor targets_over_s;      // sum of the target terms / s (0-dim double on the device)

  // The symmetric-tile targets of this batch (SymmetricTargets::applies);
  // the weight-space rows are rebuilt, not kept between the passes.
  SymmetricTargets symmetric() const {
    SymmetricTargets t;
    t.weights = config.weights;
    t.a = weight_space(pr.x, pr.x, config.weights).first;
    t.pq = config.pq == Target::Tiles;
    t.qp = config.qp == Target::Tiles;
    t.inv_row_sums = inv_row_sums;
    return t;
  }
  bool uses_symmetric_tiles() const {
    return (config.pq == Target::Tiles || config.qp == Target::Tiles) &&
           SymmetricTargets::applies(config.weights, config.local);
  }

  static c10::intrusive_ptr<SoftmaxState> load(AutogradContext* ctx) {
    return c10::static_intrusive_pointer_cast<SoftmaxState>(ctx->saved_data["state"].toCapsule());
  }
};

// Row log-sum-exps of s X Y^T into row_lse (and, when col_lse is defined,
// column log-sum-exps), with the tiled targets <T, l>: T of rows i vs
// columns j (`rows_tiles`), and T of rows j vs columns i (`col_tiles`, one
// process only, where the columns are the rows). Returns the targets' sum.
torch::Tensor lse_pass(const Side& x, const Side& y, double s, int64_t tile, torch::Tensor row_lse,
                       torch::Tensor col_lse, const WeightTiles* row_tiles, const WeightTiles* col_tiles) {
  const int64_t n = x.size(), m = y.size();
  const auto opts = x.x.options();
  const double neg_inf = -std::numeric_limits<double>::infinity();
  auto row_max = torch::full({n}, neg_inf, opts), row_sum = torch::zeros({n}, opts);
  torch::Tensor col_max, col_sum;
  if (col_lse.defined()) col_max = torch::full({m}, neg_inf, opts), col_sum = torch::zeros({m}, opts);
  auto logits = torch::empty({tile * tile}, opts), scratch = torch::empty({tile * tile}, opts);
  auto targets = device_sum(opts);
  for (int64_t i0 = 0; i0 < n; i0 += tile) {
    const int64_t ti = std::min(tile, n - i0);
    auto xi = x.unit(i0, ti);
    for (int64_t j0 = 0; j0 < m; j0 += tile) {
      const int64_t tj = std::min(tile, m - j0);
      auto l = tile_logits(logits, xi, y.unit(j0, tj), s);
      merge_tile_lse(l, row_max.narrow(0, i0, ti), row_sum.narrow(0, i0, ti),
                     col_lse.defined() ? col_max.narrow(0, j0, tj) : torch::Tensor(),
                     col_lse.defined() ? col_sum.narrow(0, j0, tj) : torch::Tensor(), scratch);
      if (row_tiles) targets += as_double(l.view(-1).dot((*row_tiles)(i0, ti, j0, tj).reshape(-1)));
      // Rows y_j against columns x_i: logit l_ij with target T_ji.
      if (col_tiles) targets += as_double((l * (*col_tiles)(j0, tj, i0, ti).t()).sum());
    }
  }
  row_lse.copy_(row_max + row_sum.log());
  if (col_lse.defined()) col_lse.copy_(col_max + col_sum.log());
  return targets;
}

// Every log-sum-exp and the tiled targets of both directions.
torch::Tensor log_sum_exps(SoftmaxState& st, double s) {
  const auto& cfg = st.config;
  const int64_t n = st.pr.size();
  st.lse_pq = torch::empty({n}, st.pr.x.options());
  st.lse_qp = torch::empty({n}, st.pr.x.options());
  if (st.uses_symmetric_tiles()) {
    auto t = st.symmetric();
    auto targets = symmetric_lse_pass(st.pr, st.qr, s, cfg.tile, st.lse_pq, st.lse_qp, t);
    st.inv_row_sums = t.inv_row_sums;
    return targets;
  }
  const auto tiles = cfg.make_tiles(st.pr.x, st.pc.x);
  const auto [t_pq, t_qp] = cfg.tiles_by_direction(tiles);
  if (cfg.local)  // one pass: the columns of p^ q^T are the rows of the other direction
    return lse_pass(st.pr, st.qr, s, cfg.tile, st.lse_pq, st.lse_qp, t_pq, t_qp);
  return lse_pass(st.pr, st.qc, s, cfg.tile, st.lse_pq, {}, t_pq, nullptr) +
         lse_pass(st.qr, st.pc, s, cfg.tile, st.lse_qp, {}, t_qp, nullptr);
}

// The diagonal and affine targets' sum (affine statistics kept in the state).
torch::Tensor linear_targets(SoftmaxState& st, double s) {
  const auto& cfg = st.config;
  const int64_t n = st.pr.size(), tile = cfg.tile;
  auto targets = device_sum(st.pr.x.options());
  for (int64_t i0 = 0; i0 < n; i0 += tile) {  // sum_i <r_i, c_{offset + i}>
    const int64_t t = std::min(tile, n - i0);
    if (cfg.pq == Target::Diagonal)
      targets += as_double((st.pr.unit(i0, t) * st.qc.unit(cfg.offset + i0, t)).sum()) * s;
    if (cfg.qp == Target::Diagonal)
      targets += as_double((st.qr.unit(i0, t) * st.pc.unit(cfg.offset + i0, t)).sum()) * s;
  }
  if (cfg.pq == Target::Affine || cfg.qp == Target::Affine) {
    st.affine = affine_stats(st.pr, st.qr, st.pc, st.qc, cfg.weights.center, tile);
    if (cfg.pq == Target::Affine) targets += st.affine.value_pq() * s;
    if (cfg.qp == Target::Affine) targets += st.affine.value_qp() * s;
  }
  return targets;
}

// Gradients of the log-sum-exps and tiled targets with respect to the
// normalised rows x^ and columns y^ of one rectangle (two softmaxes when
// col_lse is defined); returns their part of d loss / d s.
torch::Tensor logit_gradients(const Side& x, const Side& y, const torch::Tensor& row_lse, const torch::Tensor& col_lse,
                              const WeightTiles* row_tiles, const WeightTiles* col_tiles, double s, double c,
                              bool need_s, int64_t tile, torch::Tensor& dx, torch::Tensor& dy) {
  const int64_t n = x.size(), m = y.size();
  const auto opts = x.x.options();
  auto ds = device_sum(opts);
  auto logits = torch::empty({tile * tile}, opts), grad = torch::empty({tile * tile}, opts),
       scratch = torch::empty({tile * tile}, opts);
  for (int64_t i0 = 0; i0 < n; i0 += tile) {
    const int64_t ti = std::min(tile, n - i0);
    auto xi = x.unit(i0, ti);
    for (int64_t j0 = 0; j0 < m; j0 += tile) {
      const int64_t tj = std::min(tile, m - j0);
      auto yj = y.unit(j0, tj);
      auto l = tile_logits(logits, xi, yj, s);
      auto g = tile_view(grad, ti, tj);
      softmax_grad_tile(l, row_lse.narrow(0, i0, ti), col_lse.defined() ? col_lse.narrow(0, j0, tj) : torch::Tensor(),
                        1.0, col_lse.defined() ? 1.0 : 0.0, g, scratch);
      if (need_s) ds += as_double(g.view(-1).dot(l.view(-1))) * c / s;
      if (row_tiles) g.sub_((*row_tiles)(i0, ti, j0, tj));
      if (col_tiles) g.sub_((*col_tiles)(j0, tj, i0, ti).t());
      // l = s <x^_i, y^_j>
      if (dx.defined()) dx.narrow(0, i0, ti).addmm_(g, yj, 1.0, c * s);
      if (dy.defined()) dy.narrow(0, j0, tj).addmm_(g.t(), xi, 1.0, c * s);
    }
  }
  return ds;
}

// The gradients of both directions' log-sum-exps and tiled targets.
torch::Tensor all_logit_gradients(const SoftmaxState& st, double s, double c, bool need_s, torch::Tensor& dpr,
                                  torch::Tensor& dqr, torch::Tensor& dpc, torch::Tensor& dqc) {
  const auto& cfg = st.config;
  if (st.uses_symmetric_tiles())
    return symmetric_logit_gradients(st.pr, st.qr, st.lse_pq, st.lse_qp, st.symmetric(), s, c, need_s, cfg.tile, dpr,
                                     dqr);
  // Rebuilt rather than kept from the forward pass: the tiles hold
  // normalised copies of the frozen rows, memory the loss does not keep.
  const auto tiles = cfg.make_tiles(st.pr.x, st.pc.x);
  const auto [t_pq, t_qp] = cfg.tiles_by_direction(tiles);
  if (cfg.local)
    return logit_gradients(st.pr, st.qr, st.lse_pq, st.lse_qp, t_pq, t_qp, s, c, need_s, cfg.tile, dpr, dqr);
  return logit_gradients(st.pr, st.qc, st.lse_pq, {}, t_pq, nullptr, s, c, need_s, cfg.tile, dpr, dqc) +
         logit_gradients(st.qr, st.pc, st.lse_qp, {}, t_qp, nullptr, s, c, need_s, cfg.tile, dqr, dpc);
}

// Adds the diagonal and affine targets' gradients (coefficient k = -c s) of
// rows [i0, i0 + t) and of their own columns.
void row_target_gradients(const SoftmaxState& st, double k, int64_t i0, int64_t t, torch::Tensor& dpr,
                          torch::Tensor& dqr, torch::Tensor& dpc, torch::Tensor& dqc) {
  const auto& cfg = st.config;
  const auto& a_st = st.affine;
  auto pi = st.pr.unit(i0, t), qi = st.qr.unit(i0, t);
  const int64_t own = cfg.offset + i0;
  if (cfg.pq == Target::Diagonal) {  // <p^_i, q^c_own>
    if (dpr.defined()) dpr.narrow(0, i0, t).add_(st.qc.unit(own, t), k);
    if (dqc.defined()) dqc.narrow(0, own, t).add_(pi, k);
  }
  if (cfg.qp == Target::Diagonal) {  // <q^_i, p^c_own>
    if (dqr.defined()) dqr.narrow(0, i0, t).add_(st.pc.unit(own, t), k);
    if (dpc.defined()) dpc.narrow(0, own, t).add_(qi, k);
  }
  if (cfg.pq != Target::Affine && cfg.qp != Target::Affine) return;
  auto inv_w = a_st.row_sums.narrow(0, i0, t).reciprocal().unsqueeze(1);
  auto aw = affine_rows(pi, cfg.weights.center) * inv_w;
  // d/dr_i of (<B^T C, AW^T R> + <sum r / W, sum c>) / 2 = (aw_i B^T C + sum c / W_i) / 2
  if (cfg.pq == Target::Affine && dpr.defined())
    dpr.narrow(0, i0, t).add_(torch::mm(aw, a_st.bt_qc) + inv_w * a_st.qc_sum, 0.5 * k);
  if (cfg.qp == Target::Affine && dqr.defined())
    dqr.narrow(0, i0, t).add_(torch::mm(aw, a_st.bt_pc) + inv_w * a_st.pc_sum, 0.5 * k);
}

// ... and of columns [j0, j0 + t): d/dc_j = (b_j AW^T R + sum_i r_i / W_i) / 2.
void column_target_gradients(const SoftmaxState& st, double k, int64_t j0, int64_t t, torch::Tensor& dpc,
                             torch::Tensor& dqc) {
  const auto& cfg = st.config;
  const auto& a_st = st.affine;
  if (cfg.pq != Target::Affine && cfg.qp != Target::Affine) return;
  auto b = affine_rows(st.pc.unit(j0, t), cfg.weights.center);
  if (cfg.pq == Target::Affine && dqc.defined())
    dqc.narrow(0, j0, t).add_(torch::mm(b, a_st.awt_p) + a_st.p_over_w, 0.5 * k);
  if (cfg.qp == Target::Affine && dpc.defined())
    dpc.narrow(0, j0, t).add_(torch::mm(b, a_st.awt_q) + a_st.q_over_w, 0.5 * k);
}

// Through the normalisation x^ = x / |x|: dx = (dx^ - x^ <x^, dx^>) / |x|.
void through_normalisation(const Side& side, int64_t tile, torch::Tensor& dx) {
  if (!dx.defined()) return;
  for (int64_t i0 = 0; i0 < side.size(); i0 += tile) {
    const int64_t t = std::min(tile, side.size() - i0);
    auto xi = side.unit(i0, t);
    auto di = dx.narrow(0, i0, t);
    di.sub_(xi * (xi * di).sum(1, true)).mul_(side.inv.narrow(0, i0, t).unsqueeze(1));
  }
}

void target_gradients(const SoftmaxState& st, double k, torch::Tensor& dpr, torch::Tensor& dqr, torch::Tensor& dpc,
                      torch::Tensor& dqc) {
  const int64_t tile = st.config.tile;
  for (int64_t i0 = 0; i0 < st.pr.size(); i0 += tile)
    row_target_gradients(st, k, i0, std::min(tile, st.pr.size() - i0), dpr, dqr, dpc, dqc);
  for (int64_t j0 = 0; j0 < st.pc.size(); j0 += tile)
    column_target_gradients(st, k, j0, std::min(tile, st.pc.size() - j0), dpc, dqc);
}

// Inputs: rows p, q of this process and columns p, q (the same tensors in
// one process; every rank's rows, gathered, in distributed training).
struct SoftmaxLoss : public torch::autograd::Function<SoftmaxLoss> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& p_rows, const torch::Tensor& q_rows,
                               const torch::Tensor& p_cols, const torch::Tensor& q_cols, const torch::Tensor& scale,
                               const SoftmaxConfig& config) {
    ThreadCountScope serial(1);
    const double s = scale.item<double>();
    auto st = c10::make_intrusive<SoftmaxState>();
    st->config = config;
    st->pr = {p_rows, inverse_norms(p_rows)};
    st->qr = {q_rows, inverse_norms(q_rows)};
    st->pc = config.local ? st->pr : Side{p_cols, inverse_norms(p_cols)};
    st->qc = config.local ? st->qr : Side{q_cols, inverse_norms(q_cols)};
    const auto targets = log_sum_exps(*st, s) + linear_targets(*st, s);
    const auto lse = as_double(st->lse_pq.sum()) + as_double(st->lse_qp.sum());
    st->targets_over_s = targets / s;
    // The inputs travel as saved variables (autograd checks they are not
    // changed in place before backward); the state keeps everything else.
    ctx->save_for_backward({p_rows, q_rows, p_cols, q_cols, scale});
    st->pr.x = st->qr.x = st->pc.x = st->qc.x = torch::Tensor();
    ctx->saved_data["state"] = c10::IValue::make_capsule(st);
    return ((lse - targets) / (2.0 * static_cast<double>(p_cols.size(0)))).to(p_rows.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& scale = saved[4];
    ThreadCountScope serial(1);
    const auto state = SoftmaxState::load(ctx);
    auto& st = *state;
    st.pr.x = saved[0], st.qr.x = saved[1], st.pc.x = saved[2], st.qc.x = saved[3];
    const bool local = st.config.local;
    const double s = scale.item<double>();
    // d loss / d l_ij = c [softmax - targets], c = g / 2N over the global N columns.
    const double c = grad_outputs[0].item<double>() / (2.0 * static_cast<double>(st.pc.size()));
    const bool need_s = ctx->needs_input_grad(4);
    auto grad_of = [&](const Side& side, bool needed) { return needed ? torch::zeros_like(side.x) : torch::Tensor(); };
    auto dpr = grad_of(st.pr, ctx->needs_input_grad(0)), dqr = grad_of(st.qr, ctx->needs_input_grad(1));
    // One process: the columns are the rows, so their gradients are the rows'.
    auto dpc = local ? dpr : grad_of(st.pc, ctx->needs_input_grad(2));
    auto dqc = local ? dqr : grad_of(st.qc, ctx->needs_input_grad(3));
    auto ds = need_s ? st.targets_over_s * -c : device_sum(scale.options());
    ds += all_logit_gradients(st, s, c, need_s, dpr, dqr, dpc, dqc);
    target_gradients(st, -c * s, dpr, dqr, dpc, dqc);
    through_normalisation(st.pr, st.config.tile, dpr);
    through_normalisation(st.qr, st.config.tile, dqr);
    if (!local) {
      through_normalisation(st.pc, st.config.tile, dpc);
      through_normalisation(st.qc, st.config.tile, dqc);
    }
    torch::Tensor dscale = need_s ? ds.to(scale.scalar_type()) : torch::Tensor();
    if (local) dpc = dqc = torch::Tensor();  // already in dpr, dqr
    return {dpr, dqr, dpc, dqc, dscale, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor tiled_softmax_loss(const ScoredBatch& b, const LossOptions& o) {
  const auto targets = softmax_targets(o);
  SoftmaxConfig cfg;
  cfg.tile = o.tiling.tile;
  cfg.offset = b.offset;
  cfg.local = !b.distributed;
  cfg.weights = targets.weights;
  if (cfg.weights.map == WeightMap::Labels) {
    cfg.labels_rows = b.labels_rows;
    cfg.labels_cols = b.labels_cols;
  }
  const Target weighted = cfg.weights.map == WeightMap::Affine ? Target::Affine : Target::Tiles;
  cfg.pq = targets.frozen_to_trained ? weighted : Target::Diagonal;
  cfg.qp = targets.trained_to_frozen ? weighted : Target::Diagonal;
  if (cfg.weights.center.defined()) {
    // Validated and cast once here (weight_space does the same for the plain path).
    TORCH_CHECK(cfg.weights.center.dim() == 1 && cfg.weights.center.size(0) == b.p_rows.size(1),
                "contrastive_weights: center must be [", b.p_rows.size(1), "], got ", cfg.weights.center.sizes());
    cfg.weights.center = cfg.weights.center.detach().to(b.p_rows.options());
  }
  return SoftmaxLoss::apply(b.p_rows, b.q_rows, b.p_cols, b.q_cols, b.scale, cfg);
}

}  // namespace cwcl::detail
