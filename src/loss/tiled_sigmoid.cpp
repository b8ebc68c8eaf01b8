// SigLIP and CWSigLIP without any N x N tensor.
#include "tiles.h"

#include <cwcl/threads.h>

namespace cwcl::detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

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
    ThreadCountScope serial(1);
    const double s = scale.item<double>(), b = bias.item<double>();
    const int64_t n = p.size(0), m = q.size(0);
    const auto opts = p.options();
    const bool need_p = p.requires_grad(), need_q = q.requires_grad();
    torch::Tensor dp = need_p ? torch::zeros_like(p) : torch::Tensor();
    torch::Tensor dq = need_q ? torch::zeros_like(q) : torch::Tensor();
    auto loss = device_sum(opts), ds = device_sum(opts), db = device_sum(opts);
    auto cos_buf = torch::empty({tile * tile}, opts), z_buf = torch::empty({tile * tile}, opts);
    for_each_tile(n, m, tile, [&](int64_t i0, int64_t ti, int64_t j0, int64_t tj) {
      auto pi = p.narrow(0, i0, ti), qj = q.narrow(0, j0, tj);
      auto cos = tile_logits(cos_buf, pi, qj, 1.0);
      auto z = tile_view(z_buf, ti, tj);
      z.copy_(cos).mul_(s).add_(b);
      auto t = (*targets)(i0, ti, j0, tj);
      loss += as_double((torch::softplus(z) - t * z).sum());
      auto dz = z.sigmoid_().sub_(t);  // reuses z's buffer
      ds += as_double(dz.view(-1).dot(cos.view(-1)));
      db += as_double(dz.sum());
      if (need_p) dp.narrow(0, i0, ti).addmm_(dz, qj, 1.0, s);
      if (need_q) dq.narrow(0, j0, tj).addmm_(dz.t(), pi, 1.0, s);
    });
    const double inv_n = 1.0 / n_global;
    ctx->saved_data["dp"] = need_p ? dp.mul_(inv_n) : dp;
    ctx->saved_data["dq"] = need_q ? dq.mul_(inv_n) : dq;
    ctx->saved_data["ds"] = (ds * inv_n).to(scale.scalar_type());
    ctx->saved_data["db"] = (db * inv_n).to(bias.scalar_type());
    return (loss * inv_n).to(opts.dtype().toScalarType());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto& g = grad_outputs[0];
    auto scaled = [&](const char* key) {
      auto t = ctx->saved_data[key].toOptional<torch::Tensor>().value_or(torch::Tensor());
      return t.defined() ? t * g : t;
    };
    auto scalar = [&](const char* key) {
      auto t = ctx->saved_data[key].toTensor();
      return t * g.to(t.dtype());
    };
    return {scaled("dp"), scaled("dq"), scalar("ds"), scalar("db"), torch::Tensor(), torch::Tensor(), torch::Tensor()};
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

}  // namespace cwcl::detail
