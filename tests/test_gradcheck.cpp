// Gradient check in double precision, as torch.autograd.gradcheck does: the
// analytic gradient of every input (p, q, logit scale, logit bias) against
// central finite differences of the loss.
#include <gtest/gtest.h>

#include "cuda.h"

#include <cwcl/loss.h>

namespace {

using cwcl::LossKind;
using cwcl::LossOptions;
using cwcl::WeightMap;

const auto kDouble = torch::TensorOptions().dtype(torch::kDouble);

// Returns the largest |analytic - numeric| / (atol + rtol * |numeric|) over
// all elements of all inputs; <= 1 passes (gradcheck's defaults: atol 1e-5,
// rtol 1e-3).
double gradcheck(const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& f,
                 std::vector<torch::Tensor> inputs, double eps = 1e-6, double atol = 1e-5,
                 double rtol = 1e-3) {
  for (auto& x : inputs) x = x.detach().clone().requires_grad_(true);
  auto analytic = torch::autograd::grad({f(inputs)}, inputs);
  double worst = 0;
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < inputs.size(); ++k) {
    auto flat = inputs[k].view(-1);
    auto grad = analytic[k].reshape(-1);
    for (int64_t i = 0; i < flat.numel(); ++i) {
      double saved = flat[i].item<double>();
      flat[i] = saved + eps;
      double up = f(inputs).item<double>();
      flat[i] = saved - eps;
      double down = f(inputs).item<double>();
      flat[i] = saved;
      double numeric = (up - down) / (2 * eps);
      worst = std::max(worst, std::abs(grad[i].item<double>() - numeric) /
                                  (atol + rtol * std::abs(numeric)));
    }
  }
  return worst;
}

struct Case {
  std::string name;
  LossOptions options;
};

std::vector<Case> cases() {
  std::vector<Case> all;
  auto add = [&](std::string name, LossKind kind, WeightMap map = WeightMap::Affine) {
    LossOptions o;
    o.kind = kind;
    o.weights.map = map;
    all.push_back({std::move(name), o});
  };
  add("cl", LossKind::CL);
  add("supcon", LossKind::SupCon);
  add("siglip", LossKind::SigLIP);
  for (auto map : {WeightMap::Affine, WeightMap::Relu, WeightMap::Power, WeightMap::Kernel,
                   WeightMap::RowMinMax, WeightMap::Labels, WeightMap::Identity}) {
    add("cwcl_" + std::string(cwcl::name_of(map)), LossKind::CWCL, map);
    add("cwsiglip_" + std::string(cwcl::name_of(map)), LossKind::CWSigLIP, map);
  }
  LossOptions one_way;
  one_way.directions = cwcl::WeightedDirections::FrozenToTrained;
  all.push_back({"cwcl_frozen_to_trained", one_way});
  LossOptions centred;
  centred.weights.center = torch::full({5}, 0.1, kDouble);
  all.push_back({"cwcl_centred", centred});
  return all;
}

// The cosine term: alone (no scale involved) and added to CL with a weight.
TEST(LossGradcheck, CosineTermInDouble) {
  torch::manual_seed(43);
  auto p = torch::randn({6, 5}, kDouble);
  auto q = 0.5 * p + torch::randn({6, 5}, kDouble);
  LossOptions cosine;
  cosine.kind = LossKind::Cosine;
  EXPECT_LE(gradcheck([&](const auto& in) { return cwcl::contrastive_loss(in[0], in[1], cosine); }, {p, q}), 1.0);
  LossOptions cl;
  cl.kind = LossKind::CL;
  cl.cosine_weight = 0.7;
  auto scale = torch::tensor(std::log(1 / 0.2), kDouble);
  EXPECT_LE(gradcheck(
                [&](const auto& in) {
                  LossOptions o = cl;
                  o.logit_scale = in[2];
                  return cwcl::contrastive_loss(in[0], in[1], o);
                },
                {p, q, scale}),
            1.0);
}

void check_every_kind(const torch::Device& device) {
  torch::manual_seed(42);
  const int64_t n = 7, d = 5;
  const auto on = kDouble.device(device);
  auto p = torch::randn({n, d}, kDouble).to(device);
  auto q = 0.5 * p + torch::randn({n, d}, kDouble).to(device);
  auto labels = torch::tensor({0, 1, 0, 2, 1, 0, 2}, torch::kLong).to(device);
  auto scale = torch::tensor(std::log(1 / 0.2), on);
  auto bias = torch::tensor(-1.5, on);
  for (auto c : cases()) {
    SCOPED_TRACE(c.name);
    if (c.options.weights.center.defined()) c.options.weights.center = c.options.weights.center.to(device);
    const bool sigmoid = cwcl::is_sigmoid_kind(c.options.kind);
    const bool weights_from_p = c.options.kind != LossKind::CL &&
                                c.options.kind != LossKind::SupCon &&
                                c.options.kind != LossKind::SigLIP &&
                                c.options.weights.map != WeightMap::Labels &&
                                c.options.weights.map != WeightMap::Identity;
    // inputs: p, q, logit scale [, logit bias]
    auto f_all = [&](const LossOptions& base, const std::vector<torch::Tensor>& in) {
      LossOptions o = base;
      o.labels = labels;
      o.logit_scale = in[2];
      if (sigmoid) o.logit_bias = in[3];
      return cwcl::contrastive_loss(in[0], in[1], o);
    };
    std::vector<torch::Tensor> inputs{p, q, scale};
    if (sigmoid) inputs.push_back(bias);
    if (!weights_from_p) {
      EXPECT_LE(gradcheck([&](const auto& in) { return f_all(c.options, in); }, inputs), 1.0);
      continue;
    }
    // The weights are a constant (detached) function of p, so a finite
    // difference in p would also move them. Check the map's own path with p
    // held fixed, and the p gradient with the same weights frozen as custom.
    std::vector<torch::Tensor> without_p(inputs.begin() + 1, inputs.end());
    EXPECT_LE(gradcheck(
                  [&](const std::vector<torch::Tensor>& in) {
                    std::vector<torch::Tensor> all{p};
                    all.insert(all.end(), in.begin(), in.end());
                    return f_all(c.options, all);
                  },
                  without_p),
              1.0);
    LossOptions frozen = c.options;
    frozen.weights.custom = cwcl::contrastive_weights(p, c.options.weights, labels);
    frozen.weights.map = WeightMap::Custom;
    EXPECT_LE(gradcheck([&](const auto& in) { return f_all(frozen, in); }, inputs), 1.0);
  }
}

TEST(LossGradcheck, EveryKindInDouble) { check_every_kind(torch::kCPU); }

TEST(LossGradcheck, EveryKindInDoubleOnCuda) {
  CWCL_SKIP_WITHOUT_CUDA();
  check_every_kind(torch::kCUDA);
}

}  // namespace
