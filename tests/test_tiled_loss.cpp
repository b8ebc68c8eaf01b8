// The tiled loss gives the plain loss's values and gradients for every kind
// and weighting, at sizes that are and are not multiples of the tile.
#include <gtest/gtest.h>

#include "cuda.h"

#include <cwcl/loss.h>

namespace {

using cwcl::LossKind;
using cwcl::LossOptions;
using cwcl::LossPath;
using cwcl::WeightMap;

struct Result {
  torch::Tensor loss, grad_p, grad_q, grad_scale, grad_bias;
};

Result run(const torch::Tensor& p0, const torch::Tensor& q0, LossOptions o, LossPath path) {
  auto p = p0.clone().requires_grad_(true), q = q0.clone().requires_grad_(true);
  auto scale = torch::tensor(std::log(1 / o.temperature), p0.options()).requires_grad_(true);
  auto bias = torch::tensor(-2.5, p0.options()).requires_grad_(true);
  o.logit_scale = scale;
  if (cwcl::is_sigmoid_kind(o.kind)) o.logit_bias = bias;
  o.tiling.path = path;
  auto loss = cwcl::contrastive_loss(p, q, o);
  loss.backward();
  return {loss.detach(), p.grad(), q.grad(), scale.grad(), bias.grad()};
}

// |got - want| <= rel * max(|want|, floor): the floor keeps float32 sums that
// cancel to near zero (the scale's gradient) from demanding more than float
// rounding allows.
::testing::AssertionResult close(const torch::Tensor& got, const torch::Tensor& want, double rel,
                                 double floor) {
  if (!got.defined() && !want.defined()) return ::testing::AssertionSuccess();
  if (got.defined() != want.defined()) return ::testing::AssertionFailure() << "defined mismatch";
  double scale = std::max(want.abs().max().item<double>(), floor);
  double err = (got - want).abs().max().item<double>();
  if (err <= rel * scale) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max abs error " << err << " vs scale " << scale;
}

std::vector<std::pair<std::string, LossOptions>> all_options(int64_t n, int64_t d,
                                                             const torch::TensorOptions& to) {
  std::vector<std::pair<std::string, LossOptions>> all;
  for (auto kind : {LossKind::CL, LossKind::SupCon, LossKind::SigLIP}) {
    LossOptions o;
    o.kind = kind;
    all.push_back({cwcl::name_of(kind), o});
  }
  for (auto kind : {LossKind::CWCL, LossKind::CWSigLIP}) {
    for (auto map : {WeightMap::Affine, WeightMap::Relu, WeightMap::Power, WeightMap::Kernel,
                     WeightMap::RowMinMax, WeightMap::Labels, WeightMap::Identity,
                     WeightMap::Custom}) {
      LossOptions o;
      o.kind = kind;
      o.weights.map = map;
      o.weights.kernel_tau = 0.3;
      o.weights.gamma = 2.5;
      if (map == WeightMap::Custom) o.weights.custom = torch::rand({n, n}, to);
      all.push_back({std::string(cwcl::name_of(kind)) + "/" + cwcl::name_of(map), o});
    }
    LossOptions centred;
    centred.kind = kind;
    centred.weights.center = 0.3 * torch::randn({d}, to);
    all.push_back({std::string(cwcl::name_of(kind)) + "/affine_centred", centred});
    centred.weights.map = WeightMap::Kernel;
    all.push_back({std::string(cwcl::name_of(kind)) + "/kernel_centred", centred});
  }
  // Integer exponents go by squaring on the symmetric tiles (8: three
  // squarings; 3: a running product), others through pow.
  for (double gamma : {8.0, 3.0}) {
    LossOptions o;
    o.weights.map = WeightMap::Power;
    o.weights.gamma = gamma;
    all.push_back({"cwcl/power-" + std::to_string(static_cast<int>(gamma)), o});
  }
  for (auto dir : {cwcl::WeightedDirections::FrozenToTrained,
                   cwcl::WeightedDirections::TrainedToFrozen}) {
    for (auto map : {WeightMap::Affine, WeightMap::Power, WeightMap::Kernel}) {
      LossOptions o;
      o.weights.map = map;
      o.directions = dir;
      all.push_back({"cwcl/" + std::string(cwcl::name_of(map)) + "/" + cwcl::name_of(dir), o});
    }
  }
  return all;
}

void compare_paths(torch::Dtype dtype, double rel, double floor, const torch::Device& device = torch::kCPU) {
  const auto to = torch::TensorOptions().dtype(dtype).device(device);
  for (int64_t n : {2, 7, 16, 23}) {
    for (int64_t tile : {1, 4, 7, 64}) {
      torch::manual_seed(100 * n + tile);
      const int64_t d = 6;
      auto labels = torch::randint(3, {n}, to.dtype(torch::kLong));
      auto p = torch::randn({3, d}, to).index_select(0, labels) + 0.4 * torch::randn({n, d}, to);
      auto q = 0.5 * p + torch::randn({n, d}, to);
      for (auto [name, o] : all_options(n, d, to)) {
        SCOPED_TRACE(name + " n=" + std::to_string(n) + " tile=" + std::to_string(tile));
        o.labels = labels;
        o.tiling.tile = tile;
        auto plain = run(p, q, o, LossPath::Plain);
        auto tiled = run(p, q, o, LossPath::Tiled);
        EXPECT_TRUE(close(tiled.loss, plain.loss, rel, floor)) << "loss";
        EXPECT_TRUE(close(tiled.grad_p, plain.grad_p, rel, floor)) << "grad p";
        EXPECT_TRUE(close(tiled.grad_q, plain.grad_q, rel, floor)) << "grad q";
        EXPECT_TRUE(close(tiled.grad_scale, plain.grad_scale, rel, floor)) << "grad scale";
        EXPECT_TRUE(close(tiled.grad_bias, plain.grad_bias, rel, floor)) << "grad bias";
      }
    }
  }
}

TEST(TiledLoss, EqualsPlainInDouble) { compare_paths(torch::kDouble, 1e-10, 1e-30); }

TEST(TiledLoss, EqualsPlainInFloat) { compare_paths(torch::kFloat, 1e-5, 0.1); }

TEST(TiledLoss, EqualsPlainOnCuda) {
  CWCL_SKIP_WITHOUT_CUDA();
  compare_paths(torch::kDouble, 1e-10, 1e-30, torch::kCUDA);
  compare_paths(torch::kFloat, 1e-5, 0.1, torch::kCUDA);
}

TEST(TiledLoss, GradientOnlyWhereAsked) {
  torch::manual_seed(3);
  auto p = torch::randn({9, 4}), q = torch::randn({9, 4}).requires_grad_(true);
  LossOptions o;
  o.tiling.path = LossPath::Tiled;
  o.tiling.tile = 4;
  cwcl::contrastive_loss(p, q, o).backward();
  EXPECT_FALSE(p.grad().defined());
  EXPECT_TRUE(torch::isfinite(q.grad()).all().item<bool>());
}

TEST(TiledLoss, ExtremeScaleStaysFinite) {
  torch::manual_seed(4);
  auto base = torch::randn({1, 16});
  auto p = (base + 1e-6 * torch::randn({50, 16})).requires_grad_(true);
  auto q = (-base + 1e-6 * torch::randn({50, 16})).requires_grad_(true);  // all logits at -100
  for (auto kind : {LossKind::CL, LossKind::CWCL, LossKind::SigLIP}) {
    LossOptions o;
    o.kind = kind;
    o.temperature = 0.01;
    o.tiling.path = LossPath::Tiled;
    o.tiling.tile = 8;
    auto loss = cwcl::contrastive_loss(p, q, o);
    loss.backward();
    EXPECT_TRUE(std::isfinite(loss.item<double>())) << cwcl::name_of(kind);
    EXPECT_TRUE(torch::isfinite(q.grad()).all().item<bool>()) << cwcl::name_of(kind);
    q.mutable_grad().reset();
    p.mutable_grad().reset();
  }
}

// Logits spread over [-100, 100]: tile and column maxima far apart, so the
// tiled path must leave its one-exponential shortcut for the exact fallback.
TEST(TiledLoss, WidelySpreadLogitsMatchDoublePrecision) {
  torch::manual_seed(6);
  const int64_t n = 40, d = 8;
  // Frozen rows in one narrow cone; half the trained rows point the other way.
  auto p = torch::randn({1, d}, torch::kDouble) + 0.1 * torch::randn({n, d}, torch::kDouble);
  auto sign = torch::ones({n, 1}, torch::kDouble);
  sign.narrow(0, 0, n / 2).fill_(-1);
  auto q = p * sign + 0.05 * torch::randn({n, d}, torch::kDouble);
  for (auto kind : {LossKind::CL, LossKind::CWCL}) {
    LossOptions o;
    o.kind = kind;
    o.temperature = 0.01;
    o.weights.map = WeightMap::Kernel;
    o.tiling.tile = 8;
    auto want = run(p, q, o, LossPath::Plain);
    auto got = run(p.to(torch::kFloat), q.to(torch::kFloat), o, LossPath::Tiled);
    SCOPED_TRACE(cwcl::name_of(kind));
    EXPECT_TRUE(close(got.loss.to(torch::kDouble), want.loss, 1e-5, 1e-30));
    EXPECT_TRUE(close(got.grad_q.to(torch::kDouble), want.grad_q, 1e-4, 1e-30));
    EXPECT_TRUE(close(got.grad_p.to(torch::kDouble), want.grad_p, 1e-4, 1e-30));
  }
}

TEST(TiledLoss, AutoPicksByThreshold) {
  torch::manual_seed(5);
  auto p = torch::randn({12, 4}), q = torch::randn({12, 4});
  LossOptions o;
  o.tiling.auto_threshold = 10;
  o.tiling.tile = 0;  // invalid for the tiled path only
  EXPECT_THROW(cwcl::contrastive_loss(p, q, o), c10::Error);
  o.tiling.auto_threshold = 13;  // 12 rows: the plain path, which ignores the tile
  auto plain = o;
  plain.tiling.path = LossPath::Plain;
  EXPECT_TRUE(torch::allclose(cwcl::contrastive_loss(p, q, o), cwcl::contrastive_loss(p, q, plain)));
  EXPECT_EQ(cwcl::parse_name<cwcl::LossPath>("tiled"), LossPath::Tiled);
}

}  // namespace

namespace {

// The tiled path's per-tile sums moved from host doubles (.item() per tile)
// onto the device as 0-dim doubles: the values must not move. These are the
// losses the host-sum version computed (cwcl bench loss -n 2048 --dim 64
// --tile 512, seed 0, before the change), within 4 ULP: the
// last bit follows the CPU the BLAS kernels run on (cwcl/affine read one
// float off on an AVX-512 machine, every run, while the others matched).
TEST(TiledLoss, DeviceSumsGiveTheValuesTheHostSumsGave) {
  struct Case {
    LossKind kind;
    WeightMap map;
    float loss;
  };
  for (const auto& c : {Case{LossKind::CL, WeightMap::Affine, 9.117015838623047f},
                        Case{LossKind::CWCL, WeightMap::Affine, 9.178383827209473f},
                        Case{LossKind::CWCL, WeightMap::RowMinMax, 9.177081108093262f},
                        Case{LossKind::SigLIP, WeightMap::Affine, 10.379074096679688f},
                        Case{LossKind::CWSigLIP, WeightMap::Kernel, 12.388359069824219f}}) {
    SCOPED_TRACE(std::string(cwcl::name_of(c.kind)) + "/" + cwcl::name_of(c.map));
    torch::manual_seed(0);
    auto p = torch::randn({2048, 64});
    auto q = torch::randn({2048, 64}).requires_grad_(true);
    LossOptions o;
    o.kind = c.kind;
    o.weights.map = c.map;
    o.tiling.path = LossPath::Tiled;
    o.tiling.tile = 512;
    o.logit_scale = torch::tensor(std::log(1 / 0.07)).requires_grad_(true);
    if (cwcl::is_sigmoid_kind(c.kind)) o.logit_bias = torch::tensor(-10.0).requires_grad_(true);
    EXPECT_FLOAT_EQ(cwcl::contrastive_loss(p, q, o).item<float>(), c.loss);
  }
}

}  // namespace
