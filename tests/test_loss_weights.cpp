// The loss library: weight maps and their diagnostics, the cosine term, and
// the distribution hook (local rows against gathered columns).
#include <gtest/gtest.h>

#include <cwcl/loss.h>

#include "loss_helpers.h"

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

namespace {

using namespace cwcl::testing;

// ---- weights and their diagnostics -------------------------------------------

TEST(Weights, MapsAreInUnitIntervalWithUnitDiagonal) {
  auto b = random_batch(20, 8, 12);
  for (auto map : {WeightMap::Affine, WeightMap::Relu, WeightMap::Power, WeightMap::Kernel,
                   WeightMap::RowMinMax, WeightMap::Labels, WeightMap::Identity}) {
    SCOPED_TRACE(cwcl::name_of(map));
    cwcl::WeightOptions o;
    o.map = map;
    auto w = cwcl::contrastive_weights(b.p, o, b.labels);
    EXPECT_GE(w.min().item<double>(), 0.0);
    EXPECT_LE(w.max().item<double>(), 1.0 + 1e-12);
    EXPECT_TRUE(close(w.diagonal(), torch::ones({20}, kDouble), 1e-12));
    EXPECT_FALSE(w.requires_grad());
  }
}

TEST(Weights, StatsSeeFlatAndSharpWeights) {
  auto id = cwcl::weight_stats(torch::eye(5, kDouble));
  EXPECT_DOUBLE_EQ(id.effective_positives_mean, 1.0);
  EXPECT_DOUBLE_EQ(id.offdiag_max, 0.0);
  EXPECT_EQ(id.histogram.at(0), 20);
  auto flat = cwcl::weight_stats(torch::ones({5, 5}, kDouble));
  EXPECT_DOUBLE_EQ(flat.effective_positives_mean, 5.0);
  EXPECT_EQ(flat.histogram.back(), 20);
  ASSERT_EQ(flat.offdiag_quantiles.size(), 5u);
  EXPECT_DOUBLE_EQ(flat.offdiag_quantiles[2], 1.0);
  // Two blocks of three equal rows: three positives per row.
  auto labels = torch::tensor({0, 0, 0, 1, 1, 1}, torch::kLong);
  cwcl::WeightOptions o;
  o.map = WeightMap::Labels;
  auto blocks = cwcl::weight_stats(cwcl::contrastive_weights(torch::randn({6, 3}), o, labels));
  EXPECT_DOUBLE_EQ(blocks.effective_positives_min, 3.0);
  EXPECT_NEAR(blocks.offdiag_mean, 12.0 / 30.0, 1e-12);
  EXPECT_NE(blocks.to_string().find("effective positives"), std::string::npos);
  // The paper's affine map on crowded cosines is nearly flat; the kernel is not.
  // Cosines near 0.96 (as mean-GloVe captions give, docs/method.md "Calibration").
  torch::manual_seed(14);
  auto crowded = torch::randn({1, 16}, kDouble) + 0.2 * torch::randn({32, 16}, kDouble);
  cwcl::WeightOptions affine, kernel;
  kernel.map = WeightMap::Kernel;
  kernel.kernel_tau = 0.005;
  EXPECT_GT(cwcl::weight_stats(cwcl::contrastive_weights(crowded, affine)).effective_positives_mean,
            25.0);
  EXPECT_LT(cwcl::weight_stats(cwcl::contrastive_weights(crowded, kernel)).effective_positives_mean,
            3.0);
}

TEST(Weights, CalibrationHitsTheTargetSharpness) {
  // Crowded cosines, as a mean-GloVe teacher gives (docs/method.md "Calibration").
  torch::manual_seed(15);
  auto p = torch::randn({1, 16}, kDouble) + 0.3 * torch::randn({64, 16}, kDouble);
  for (auto map : {WeightMap::Kernel, WeightMap::Power}) {
    SCOPED_TRACE(cwcl::name_of(map));
    cwcl::WeightOptions o;
    o.map = map;
    for (double target : {2.0, 8.0}) {
      auto calibrated = cwcl::calibrate_weights(p, o, target);
      auto eff = cwcl::weight_stats(cwcl::contrastive_weights(p, calibrated)).effective_positives_mean;
      EXPECT_NEAR(eff, target, 0.01 * target);
    }
    EXPECT_THROW(cwcl::calibrate_weights(p, o, 0.5), c10::Error);
    EXPECT_THROW(cwcl::calibrate_weights(p, o, 64.0), c10::Error);
  }
  cwcl::WeightOptions affine;
  EXPECT_EQ(cwcl::calibrate_weights(p, affine, 4.0).map, WeightMap::Affine);
}

// ---- distribution hook: local rows against gathered columns -------------------

// An in-process all-gather among `world` threads: call k of every rank meets
// at a barrier and receives the concatenation of all ranks' k-th tensors.
class ThreadGather {
 public:
  explicit ThreadGather(int world) : world_(world) {}
  torch::Tensor gather(int rank, int call, const torch::Tensor& local) {
    std::unique_lock<std::mutex> lock(mutex_);
    auto& slot = slots_[call];
    slot.resize(world_);
    slot[rank] = local;
    ++arrived_[call];
    cv_.notify_all();
    cv_.wait(lock, [&] { return arrived_[call] == world_; });
    return torch::cat(slot, 0);
  }

 private:
  int world_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<int, std::vector<torch::Tensor>> slots_;
  std::map<int, int> arrived_;
};

TEST(LossCosine, ExactValuesAndTheAddedTerm) {
  LossOptions cosine;
  cosine.kind = LossKind::Cosine;
  auto p = torch::randn({5, 4}, kDouble);
  // Same directions (any lengths): 0; opposite: 2; orthogonal: 1.
  EXPECT_NEAR(cwcl::contrastive_loss(p, 3.0 * p, cosine).item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(cwcl::contrastive_loss(p, -0.5 * p, cosine).item<double>(), 2.0, 1e-12);
  auto e = torch::eye(4, kDouble);
  EXPECT_NEAR(cwcl::contrastive_loss(e.narrow(0, 0, 2), e.narrow(0, 2, 2), cosine).item<double>(), 1.0, 1e-12);
  // No negatives: one row is a batch.
  EXPECT_NEAR(cwcl::contrastive_loss(p.narrow(0, 0, 1), p.narrow(0, 0, 1), cosine).item<double>(), 0.0, 1e-12);
  // Added to CWCL: the CWCL loss plus the weighted mean cosine distance.
  auto b = random_batch(9, 6, 21);
  LossOptions plain;
  LossOptions with = plain;
  with.cosine_weight = 0.8;
  const double distance = cwcl::contrastive_loss(b.p, b.q, cosine).item<double>();
  EXPECT_NEAR(loss_of(b, with).item<double>(), loss_of(b, plain).item<double>() + 0.8 * distance, 1e-12);
  expect_error([&] { cwcl::contrastive_loss(b.p, b.q, [&] { auto o = cosine; o.cosine_weight = 1; return o; }()); },
               "cosine term alone");
  expect_error([&] { cwcl::contrastive_loss(b.p, b.q, [&] { auto o = plain; o.cosine_weight = -1; return o; }()); },
               "cosine_weight must be >= 0");
}

TEST(LossDistributed, RanksSumToTheGlobalLossAndGradients) {
  const int world = 3;
  const int64_t local = 5;
  auto b = random_batch(world * local, 6, 13);
  // Every kind and map, plus one direction weighted with centring (affine's
  // D x D statistics) and the other with weight tiles.
  auto kinds = every_kind();
  {
    LossOptions cosine;
    cosine.kind = LossKind::Cosine;
    kinds.push_back(cosine);
    LossOptions with_cosine;
    with_cosine.cosine_weight = 0.5;
    kinds.push_back(with_cosine);
  }
  for (auto [map, directions] : {std::pair{WeightMap::Affine, cwcl::WeightedDirections::FrozenToTrained},
                                 std::pair{WeightMap::Kernel, cwcl::WeightedDirections::TrainedToFrozen}}) {
    LossOptions o;
    o.weights.map = map;
    o.directions = directions;
    o.weights.center = torch::full({6}, 0.1, torch::kDouble);
    kinds.push_back(o);
  }
  for (auto path : {cwcl::LossPath::Plain, cwcl::LossPath::Tiled})
  for (auto o : kinds) {
    SCOPED_TRACE(describe(o) + " " + cwcl::name_of(path));
    o.labels = b.labels;
    o.tiling.path = path;
    o.tiling.tile = 4;  // local rows 5, global columns 15: partial tiles
    auto p = b.p.clone().requires_grad_(true), q = b.q.clone().requires_grad_(true);
    auto whole = cwcl::contrastive_loss(p, q, o);
    whole.backward();
    auto want_gp = p.grad().clone(), want_gq = q.grad().clone();
    p.mutable_grad().reset();
    q.mutable_grad().reset();

    ThreadGather hub(world);
    std::vector<torch::Tensor> parts(world);
    std::vector<std::thread> ranks;
    for (int r = 0; r < world; ++r)
      ranks.emplace_back([&, r] {
        torch::AutoGradMode grad_mode(true);
        LossOptions ro = o;
        ro.rank = r;
        ro.labels = b.labels.narrow(0, r * local, local);
        int calls = 0;
        ro.gather = [&hub, r, &calls](const torch::Tensor& t) { return hub.gather(r, calls++, t); };
        parts[r] = cwcl::contrastive_loss(p.narrow(0, r * local, local),
                                          q.narrow(0, r * local, local), ro);
      });
    for (auto& t : ranks) t.join();
    auto total = torch::stack(parts).sum();
    total.backward();
    EXPECT_NEAR(total.item<double>(), whole.item<double>(), 1e-10);
    EXPECT_TRUE(close(p.grad(), want_gp, 1e-9));
    EXPECT_TRUE(close(q.grad(), want_gq, 1e-9));
  }
}

}  // namespace
