// Contrastive losses; formulas from docs/method.md (CWCL: Srinivasa et al.,
// NeurIPS 2023, eq. for L_f->g), CLIP (Radford et al. 2021) and SigLIP
// (Zhai et al. 2023, Algorithm 1).
#include "cwcl/loss.h"

#include "detail.h"

#include <chrono>
#include <cmath>
#include <limits>

namespace cwcl {
namespace {

namespace F = torch::nn::functional;

// CLIP clamps the learnable logit scale at log(100).
const double kMaxLogitScale = std::log(100.0);

void check_scalar_parameter(const torch::Tensor& t, const torch::Tensor& like, const char* name) {
  if (!t.defined()) return;
  TORCH_CHECK(t.numel() == 1, "contrastive_loss: ", name, " must hold one value, got shape ",
              t.sizes());
  TORCH_CHECK(t.is_floating_point(), "contrastive_loss: ", name, " must be floating point");
  TORCH_CHECK(t.device() == like.device(), "contrastive_loss: ", name, " is on ", t.device(),
              " but the embeddings are on ", like.device());
  TORCH_CHECK(torch::isfinite(t).all().item<bool>(), "contrastive_loss: ", name,
              " is not finite");
}

void check_embeddings(const torch::Tensor& p, const torch::Tensor& q) {
  TORCH_CHECK(p.defined() && q.defined(), "contrastive_loss: p and q must be defined");
  TORCH_CHECK(p.dim() == 2 && q.dim() == 2, "contrastive_loss: p and q must be [N, D], got p ",
              p.sizes(), " and q ", q.sizes());
  TORCH_CHECK(p.sizes() == q.sizes(), "contrastive_loss: shape mismatch: p is ", p.sizes(),
              " but q is ", q.sizes());
  TORCH_CHECK(p.device() == q.device(), "contrastive_loss: p is on ", p.device(),
              " but q is on ", q.device());
  TORCH_CHECK(p.scalar_type() == q.scalar_type(), "contrastive_loss: p is ", p.scalar_type(),
              " but q is ", q.scalar_type());
  TORCH_CHECK(p.is_floating_point(), "contrastive_loss: p and q must be floating point, got ",
              p.scalar_type());
  TORCH_CHECK(p.size(0) >= 1 && p.size(1) >= 1, "contrastive_loss: empty batch ", p.sizes());
  TORCH_CHECK(torch::isfinite(p).all().item<bool>(),
              "contrastive_loss: p (frozen side) contains NaN or Inf");
  TORCH_CHECK(torch::isfinite(q).all().item<bool>(),
              "contrastive_loss: q (trained side) contains NaN or Inf");
}

void check_labels(const torch::Tensor& labels, int64_t n, const torch::Tensor& like,
                  const char* why) {
  TORCH_CHECK(labels.defined(), "contrastive_loss: ", why, " needs labels (options.labels)");
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == n, "contrastive_loss: labels must be [", n,
              "], got ", labels.sizes());
  TORCH_CHECK(!labels.is_floating_point() && !labels.is_complex(),
              "contrastive_loss: labels must be integers, got ", labels.scalar_type());
  TORCH_CHECK(labels.device() == like.device(), "contrastive_loss: labels are on ",
              labels.device(), " but the embeddings are on ", like.device());
}

// s = 1 / temperature, or exp(min(logit_scale, log 100)).
torch::Tensor logit_scale_value(const LossOptions& o, const torch::Tensor& like) {
  if (o.logit_scale.defined())
    return o.logit_scale.reshape({}).to(like.scalar_type()).clamp_max(kMaxLogitScale).exp();
  TORCH_CHECK(o.temperature > 0 && std::isfinite(o.temperature),
              "contrastive_loss: temperature must be > 0, got ", o.temperature);
  return torch::full({}, 1.0 / o.temperature, like.options());
}

torch::Tensor logit_bias_value(const LossOptions& o, const torch::Tensor& like) {
  if (o.logit_bias.defined()) return o.logit_bias.reshape({}).to(like.scalar_type());
  TORCH_CHECK(std::isfinite(o.bias), "contrastive_loss: bias must be finite");
  return torch::full({}, o.bias, like.options());
}

// -sum_i log_softmax(logits)_{i, offset + i}: rows with one positive (CL).
torch::Tensor one_hot_row_loss_sum(const torch::Tensor& logits, int64_t offset) {
  auto n = logits.size(0);
  auto target = torch::arange(offset, offset + n, logits.options().dtype(torch::kLong));
  return F::cross_entropy(logits, target, F::CrossEntropyFuncOptions().reduction(torch::kSum));
}

// -sum_i (1 / sum_j w_ij) sum_j w_ij log_softmax(logits)_ij (docs/method.md, "The CWCL loss").
torch::Tensor weighted_row_loss_sum(const torch::Tensor& logits, const torch::Tensor& w) {
  auto targets = w / w.sum(1, /*keepdim=*/true);
  return -(targets * torch::log_softmax(logits, 1)).sum();
}

torch::Tensor identity_weights(int64_t rows, int64_t cols, int64_t offset,
                               const torch::TensorOptions& opts) {
  auto w = torch::zeros({rows, cols}, opts);
  w.narrow(1, offset, rows).fill_diagonal_(1.0);
  return w;
}

}  // namespace

namespace detail {

torch::Tensor normalize_rows(const torch::Tensor& x) {
  return F::normalize(x, F::NormalizeFuncOptions().p(2).dim(1));
}

bool is_similarity_map(WeightMap map) {
  return map == WeightMap::Affine || map == WeightMap::Relu || map == WeightMap::Power ||
         map == WeightMap::Kernel || map == WeightMap::RowMinMax;
}

std::pair<torch::Tensor, torch::Tensor> weight_space(const torch::Tensor& p_rows,
                                                     const torch::Tensor& p_cols,
                                                     const WeightOptions& o) {
  auto a = normalize_rows(p_rows.detach());
  auto b = normalize_rows(p_cols.detach());
  if (!o.center.defined()) return {a, b};
  TORCH_CHECK(o.center.dim() == 1 && o.center.size(0) == p_rows.size(1),
              "contrastive_weights: center must be [", p_rows.size(1), "], got ",
              o.center.sizes());
  auto c = o.center.detach().to(a.options());
  return {normalize_rows(a - c), normalize_rows(b - c)};
}

torch::Tensor map_cosines(const torch::Tensor& cos, const WeightOptions& o,
                          const torch::Tensor& row_lo, const torch::Tensor& row_range) {
  switch (o.map) {
    case WeightMap::Affine:
      return cos * 0.5 + 0.5;
    case WeightMap::Relu:
      return cos.clamp_min(0.0);
    case WeightMap::Power:
      TORCH_CHECK(o.gamma > 0, "contrastive_weights: power map needs gamma > 0, got ", o.gamma);
      return (cos * 0.5 + 0.5).clamp_min(0.0).pow(o.gamma);
    case WeightMap::Kernel:
      TORCH_CHECK(o.kernel_tau > 0, "contrastive_weights: kernel map needs kernel_tau > 0, got ",
                  o.kernel_tau);
      return ((cos - 1.0) / o.kernel_tau).exp();
    case WeightMap::RowMinMax:
      // A row with a single value (N = 1, or identical columns) weighs all equally.
      return torch::where(row_range > 1e-12, (cos - row_lo) / row_range.clamp_min(1e-12),
                          torch::ones_like(cos));
    default:
      TORCH_CHECK(false, "contrastive_weights: ", name_of(o.map), " is not a similarity map");
  }
}

SoftmaxTargets softmax_targets(const LossOptions& o) {
  SoftmaxTargets t;
  t.weights = o.weights;
  if (o.kind == LossKind::SupCon) {
    t.weights = WeightOptions();
    t.weights.map = WeightMap::Labels;
    t.frozen_to_trained = t.trained_to_frozen = true;
  } else if (o.kind == LossKind::CWCL && o.weights.map != WeightMap::Identity) {
    t.frozen_to_trained = o.directions != WeightedDirections::TrainedToFrozen;
    t.trained_to_frozen = o.directions != WeightedDirections::FrozenToTrained;
  }
  return t;
}

void check_custom_weights(const torch::Tensor& w, int64_t rows, int64_t cols,
                          const torch::Tensor& like) {
  TORCH_CHECK(w.defined(), "contrastive_weights: the custom map needs weights.custom");
  TORCH_CHECK(w.dim() == 2 && w.size(0) == rows && w.size(1) == cols,
              "contrastive_weights: custom weights must be [", rows, ", ", cols, "], got ",
              w.sizes());
  TORCH_CHECK(w.device() == like.device(), "contrastive_weights: custom weights are on ",
              w.device(), " but p is on ", like.device());
  TORCH_CHECK(torch::isfinite(w).all().item<bool>() && w.min().item<double>() >= 0.0 &&
                  w.max().item<double>() <= 1.0,
              "contrastive_weights: custom weights must lie in [0, 1], got min ",
              w.min().item<double>(), " max ", w.max().item<double>());
}

}  // namespace detail

bool is_sigmoid_kind(LossKind kind) {
  return kind == LossKind::SigLIP || kind == LossKind::CWSigLIP;
}

torch::Tensor contrastive_weights(const torch::Tensor& p_rows, const torch::Tensor& p_cols,
                                  const WeightOptions& o, const torch::Tensor& labels_rows,
                                  const torch::Tensor& labels_cols, int64_t offset) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(p_rows.dim() == 2 && p_cols.dim() == 2 && p_rows.size(1) == p_cols.size(1),
              "contrastive_weights: p rows ", p_rows.sizes(), " and columns ", p_cols.sizes(),
              " must be [N, D] with the same D");
  const int64_t rows = p_rows.size(0), cols = p_cols.size(0);
  TORCH_CHECK(offset >= 0 && offset + rows <= cols, "contrastive_weights: rows ", rows,
              " at offset ", offset, " do not fit in ", cols, " columns");
  const auto opts = p_rows.options();

  switch (o.map) {
    case WeightMap::Identity:
      return identity_weights(rows, cols, offset, opts);
    case WeightMap::Labels:
      TORCH_CHECK(labels_rows.defined() && labels_cols.defined(),
                  "contrastive_weights: the labels map needs labels (options.labels)");
      return labels_rows.unsqueeze(1).eq(labels_cols.unsqueeze(0)).to(opts);
    case WeightMap::Custom:
      detail::check_custom_weights(o.custom, rows, cols, p_rows);
      return o.custom.detach().to(opts);
    default:
      break;
  }

  auto [a, b] = detail::weight_space(p_rows, p_cols, o);
  // Rounding can put a self-cosine just above 1; keep every map inside [0, 1].
  auto cos = torch::mm(a, b.t()).clamp(-1.0, 1.0);
  torch::Tensor lo, range;
  if (o.map == WeightMap::RowMinMax) {
    lo = std::get<0>(cos.min(1, true));
    range = std::get<0>(cos.max(1, true)) - lo;
  }
  return detail::map_cosines(cos, o, lo, range);
}

torch::Tensor contrastive_weights(const torch::Tensor& p, const WeightOptions& options,
                                  const torch::Tensor& labels) {
  return contrastive_weights(p, p, options, labels, labels, 0);
}

namespace {

// sum_i (1 - cos(p_i, q_i)) over this rank's rows (docs/method.md, "Cosine").
torch::Tensor cosine_distance_sum(const torch::Tensor& p, const torch::Tensor& q) {
  return (1.0 - (detail::normalize_rows(p) * detail::normalize_rows(q)).sum(1)).sum();
}

// The contrastive kinds; `n_global` receives the global batch size.
torch::Tensor contrastive_term(const torch::Tensor& p, const torch::Tensor& q, const LossOptions& o,
                               int64_t& n_global_out) {
  const int64_t n = p.size(0);
  const bool sigmoid = is_sigmoid_kind(o.kind);
  const bool needs_labels = o.kind == LossKind::SupCon ||
                            ((o.kind == LossKind::CWCL || o.kind == LossKind::CWSigLIP) &&
                             o.weights.map == WeightMap::Labels);
  if (needs_labels) check_labels(o.labels, n, p, o.kind == LossKind::SupCon ? "SupCon" : "the labels map");

  auto p_rows = detail::normalize_rows(p);
  auto q_rows = detail::normalize_rows(q);
  torch::Tensor p_cols = p_rows, q_cols = q_rows, labels_cols = o.labels;
  int64_t offset = 0;
  if (o.gather) {
    p_cols = o.gather(p_rows);
    q_cols = o.gather(q_rows);
    if (needs_labels) labels_cols = o.gather(o.labels);
    TORCH_CHECK(p_cols.dim() == 2 && p_cols.size(1) == p.size(1) && p_cols.size(0) % n == 0 &&
                    q_cols.sizes() == p_cols.sizes(),
                "contrastive_loss: gather returned ", p_cols.sizes(), " and ", q_cols.sizes(),
                " for local [", n, ", ", p.size(1), "]; every rank must hold the same N");
    TORCH_CHECK(o.rank >= 0 && (o.rank + 1) * n <= p_cols.size(0), "contrastive_loss: rank ",
                o.rank, " out of range for ", p_cols.size(0) / n, " ranks");
    offset = o.rank * n;
  }
  const int64_t n_global = p_cols.size(0);
  n_global_out = n_global;
  TORCH_CHECK(sigmoid || n_global >= 2, "contrastive_loss: a batch of ", n_global,
              " has no negatives; softmax losses need N >= 2");

  const auto s = logit_scale_value(o, p);
  const bool tiled = o.tiling.path == LossPath::Tiled ||
                     (o.tiling.path == LossPath::Auto &&
                      (n_global >= o.tiling.auto_threshold ||
                       plain_path_bytes(n, n_global, p.options()) > o.tiling.plain_memory_mib * 1048576.0));
  if (tiled) {
    TORCH_CHECK(o.tiling.tile >= 1, "contrastive_loss: tiling.tile must be >= 1, got ",
                o.tiling.tile);
    detail::ScoredBatch batch;
    // One process's softmax loss normalises inside, holding no normalised copy.
    const bool raw = !sigmoid && !o.gather;
    batch.p_rows = raw ? p : p_rows;
    batch.q_rows = raw ? q : q_rows;
    batch.p_cols = raw ? p : p_cols;
    batch.q_cols = raw ? q : q_cols;
    if (needs_labels) {
      batch.labels_rows = o.labels;
      batch.labels_cols = labels_cols;
    }
    batch.scale = s;
    if (sigmoid) batch.bias = logit_bias_value(o, p);
    batch.offset = offset;
    batch.distributed = static_cast<bool>(o.gather);
    return sigmoid ? detail::tiled_sigmoid_loss(batch, o) : detail::tiled_softmax_loss(batch, o);
  }

  // Rows: frozen p_i against all trained q_j.
  auto cos_pq = torch::mm(p_rows, q_cols.t());

  if (sigmoid) {
    // SigLIP: -(1/N) sum_ij log sigmoid(y_ij z_ij), y = +1 on the diagonal,
    // -1 elsewhere; CWSigLIP replaces the 0/1 target by w_ij (soft BCE).
    auto z = s * cos_pq + logit_bias_value(o, p);
    torch::Tensor target =
        o.kind == LossKind::SigLIP
            ? identity_weights(n, n_global, offset, p.options())
            : contrastive_weights(p_rows, p_cols, o.weights, o.labels, labels_cols, offset);
    auto per_pair = target * F::logsigmoid(z) + (1.0 - target) * F::logsigmoid(-z);
    return -per_pair.sum() / static_cast<double>(n_global);
  }

  auto logits_pq = s * cos_pq;
  // Rows: trained q_i against all frozen p_j. Locally this is logits_pq^T.
  auto logits_qp = o.gather ? s * torch::mm(q_rows, p_cols.t()) : logits_pq.t();

  const auto targets = detail::softmax_targets(o);
  torch::Tensor w;
  if (targets.any()) {
    w = contrastive_weights(p_rows, p_cols, targets.weights, o.labels, labels_cols, offset);
    TORCH_CHECK(w.sum(1).min().item<double>() > 0,
                "contrastive_loss: a row of the weights sums to zero (",
                name_of(targets.weights.map), " map); every row needs a positive weight");
  }
  const bool weigh_pq = targets.frozen_to_trained, weigh_qp = targets.trained_to_frozen;
  auto loss_pq = weigh_pq ? weighted_row_loss_sum(logits_pq, w)
                          : one_hot_row_loss_sum(logits_pq, offset);
  auto loss_qp = weigh_qp ? weighted_row_loss_sum(logits_qp, w)
                          : one_hot_row_loss_sum(logits_qp, offset);
  return (loss_pq + loss_qp) / (2.0 * static_cast<double>(n_global));
}

}  // namespace

torch::Tensor contrastive_loss(const torch::Tensor& p, const torch::Tensor& q,
                               const LossOptions& o) {
  check_embeddings(p, q);
  check_scalar_parameter(o.logit_scale, p, "logit_scale");
  check_scalar_parameter(o.logit_bias, p, "logit_bias");
  TORCH_CHECK(std::isfinite(o.cosine_weight) && o.cosine_weight >= 0,
              "contrastive_loss: cosine_weight must be >= 0, got ", o.cosine_weight);
  if (o.kind == LossKind::Cosine) {
    TORCH_CHECK(o.cosine_weight == 0, "contrastive_loss: the cosine kind is the cosine term alone; "
                "cosine_weight adds it to another kind");
    // A rank's share: its rows over the global batch (a one-column gather counts it).
    const int64_t n_global = o.gather ? o.gather(p.detach().narrow(1, 0, 1)).size(0) : p.size(0);
    return cosine_distance_sum(p, q) / static_cast<double>(n_global);
  }
  int64_t n_global = 0;
  auto loss = contrastive_term(p, q, o, n_global);
  if (o.cosine_weight > 0)
    loss = loss + o.cosine_weight * cosine_distance_sum(p, q) / static_cast<double>(n_global);
  return loss;
}

// ---------------------------------------------------------------------------

WeightStats weight_stats(const torch::Tensor& weights, int64_t bins) {
  TORCH_CHECK(weights.dim() == 2 && weights.size(0) == weights.size(1),
              "weight_stats: weights must be square, got ", weights.sizes());
  TORCH_CHECK(bins >= 1, "weight_stats: histogram_bins must be >= 1");
  torch::NoGradGuard no_grad;
  auto w = weights.detach().to(torch::kDouble).cpu();
  const int64_t n = w.size(0);
  WeightStats st;
  st.rows = n;
  auto off = w.masked_select(~torch::eye(n, torch::kBool));
  if (off.numel() > 0) {
    st.offdiag_mean = off.mean().item<double>();
    st.offdiag_std = off.numel() > 1 ? off.std().item<double>() : 0.0;
    st.offdiag_min = off.min().item<double>();
    st.offdiag_max = off.max().item<double>();
    auto qs = torch::quantile(off, torch::tensor({0.1, 0.25, 0.5, 0.75, 0.9}, torch::kDouble));
    st.offdiag_quantiles.assign(qs.data_ptr<double>(), qs.data_ptr<double>() + qs.numel());
    auto h = torch::histc(off, bins, 0.0, 1.0);
    for (int64_t i = 0; i < bins; ++i) st.histogram.push_back(h[i].item<int64_t>());
  }
  auto row_sum = w.sum(1, true).clamp_min(1e-300);
  auto eff = 1.0 / (w / row_sum).pow(2).sum(1);
  st.effective_positives_mean = eff.mean().item<double>();
  st.effective_positives_min = eff.min().item<double>();
  st.effective_positives_max = eff.max().item<double>();
  return st;
}

WeightOptions calibrate_weights(const torch::Tensor& p, WeightOptions o, double target) {
  if (o.map != WeightMap::Kernel && o.map != WeightMap::Power) return o;
  TORCH_CHECK(p.dim() == 2 && p.size(0) >= 2, "calibrate_weights: p must be [N, D] with N >= 2");
  const double n = static_cast<double>(p.size(0));
  TORCH_CHECK(target > 1.0 && target < n, "calibrate_weights: target effective positives must lie in (1, ",
              n, "), got ", target);
  auto effective = [&](double log_sharpness) {
    WeightOptions w = o;
    // Kernel: a smaller tau is sharper; power: a larger gamma is sharper.
    if (o.map == WeightMap::Kernel) w.kernel_tau = std::exp(-log_sharpness);
    else w.gamma = std::exp(log_sharpness);
    return weight_stats(contrastive_weights(p, w)).effective_positives_mean;
  };
  double lo = std::log(1e-3), hi = std::log(1e5);  // flat end, sharp end
  const double flat = effective(lo), sharp = effective(hi);
  TORCH_CHECK(flat >= target && sharp <= target, "calibrate_weights: ", name_of(o.map),
              " weights reach between ", sharp, " and ", flat, " effective positives on this batch, not ",
              target);
  for (int it = 0; it < 60; ++it) {
    const double mid = 0.5 * (lo + hi);
    (effective(mid) > target ? lo : hi) = mid;  // more positives than wanted: sharpen
  }
  const double best = 0.5 * (lo + hi);
  if (o.map == WeightMap::Kernel) o.kernel_tau = std::exp(-best);
  else o.gamma = std::exp(best);
  return o;
}

std::string WeightStats::to_string() const {
  std::ostringstream os;
  os.precision(4);
  os << "weights over " << rows << " rows: off-diagonal mean " << offdiag_mean << " std "
     << offdiag_std << " min " << offdiag_min << " max " << offdiag_max << "\n";
  if (!offdiag_quantiles.empty()) {
    os << "  quantiles 10/25/50/75/90%:";
    for (double v : offdiag_quantiles) os << " " << v;
    os << "\n  histogram over [0, 1]:";
    for (auto c : histogram) os << " " << c;
    os << "\n";
  }
  os << "  effective positives per row: mean " << effective_positives_mean << " min "
     << effective_positives_min << " max " << effective_positives_max << " (CL: 1, uniform: "
     << rows << ")\n";
  return os.str();
}

// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------

double plain_path_bytes(int64_t n, int64_t n_global, const torch::TensorOptions& options) {
  // logits, their softmax and its gradient in each direction, the weights
  // and both targets: about eight n x n_global tensors.
  return 8.0 * static_cast<double>(n) * static_cast<double>(n_global) *
         static_cast<double>(c10::elementSize(c10::typeMetaToScalarType(options.dtype())));
}

LossPath measure_loss_path(const torch::Tensor& p, const torch::Tensor& q, const LossOptions& options) {
  TORCH_CHECK(!options.gather, "measure_loss_path: a distributed loss keeps its rule");
  const int64_t n = p.size(0);
  if (plain_path_bytes(n, n, p.options()) > options.tiling.plain_memory_mib * 1048576.0) return LossPath::Tiled;
  auto time_path = [&](LossPath path) {
    LossOptions o = options;
    o.tiling.path = path;
    if (o.logit_scale.defined()) o.logit_scale = o.logit_scale.detach().clone().requires_grad_(true);
    if (o.logit_bias.defined()) o.logit_bias = o.logit_bias.detach().clone().requires_grad_(true);
    auto pp = p.detach(), qq = q.detach().clone().requires_grad_(true);
    double best = std::numeric_limits<double>::infinity();
    for (int run = 0; run < 2; ++run) {  // the first warms up
      const auto start = std::chrono::steady_clock::now();
      contrastive_loss(pp, qq, o).backward();
      qq.mutable_grad().reset();
      if (p.is_cuda()) torch::cuda::synchronize();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    return best;
  };
  return time_path(LossPath::Plain) <= time_path(LossPath::Tiled) ? LossPath::Plain : LossPath::Tiled;
}

ContrastiveLossImpl::ContrastiveLossImpl(LossOptions options_, bool learn_temperature_)
    : options(std::move(options_)), learn_temperature(learn_temperature_) {
  reset();
}

void ContrastiveLossImpl::reset() {
  TORCH_CHECK(options.temperature > 0, "ContrastiveLoss: temperature must be > 0, got ",
              options.temperature);
  if (learn_temperature) {
    logit_scale = register_parameter(
        "logit_scale", torch::full({}, std::log(1.0 / options.temperature), torch::kFloat));
    if (is_sigmoid_kind(options.kind))
      logit_bias = register_parameter("logit_bias", torch::full({}, options.bias, torch::kFloat));
  }
}

torch::Tensor ContrastiveLossImpl::forward(const torch::Tensor& p, const torch::Tensor& q,
                                           const torch::Tensor& labels) {
  LossOptions o = options;
  if (labels.defined()) o.labels = labels;
  if (logit_scale.defined()) o.logit_scale = logit_scale;
  if (logit_bias.defined()) o.logit_bias = logit_bias;
  return contrastive_loss(p, q, o);
}

}  // namespace cwcl
