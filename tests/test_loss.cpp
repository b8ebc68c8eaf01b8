// The loss library against independent references and exact special cases.
#include <gtest/gtest.h>

#include "cuda.h"
#include <nlohmann/json.hpp>

#include <cwcl/loss.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>

namespace {

using cwcl::LossKind;
using cwcl::LossOptions;
using cwcl::WeightMap;
using json = nlohmann::json;

const auto kDouble = torch::TensorOptions().dtype(torch::kDouble);

torch::Tensor tensor_from(const json& j, torch::Dtype dtype = torch::kDouble) {
  if (j.is_number()) return torch::tensor(j.get<double>(), kDouble).to(dtype);
  std::vector<double> flat;
  std::vector<int64_t> shape{static_cast<int64_t>(j.size())};
  if (j.at(0).is_array()) {
    shape.push_back(static_cast<int64_t>(j.at(0).size()));
    for (const auto& row : j)
      for (const auto& v : row) flat.push_back(v.get<double>());
  } else {
    for (const auto& v : j) flat.push_back(v.get<double>());
  }
  return torch::tensor(flat, kDouble).reshape(shape).to(dtype);
}

// Relative closeness scaled by the largest magnitude of the expected tensor.
::testing::AssertionResult close(const torch::Tensor& got, const torch::Tensor& want,
                                 double rel) {
  auto g = got.to(torch::kDouble), w = want.to(torch::kDouble);
  if (g.sizes() != w.sizes())
    return ::testing::AssertionFailure() << "shape " << g.sizes() << " vs " << w.sizes();
  double scale = std::max(w.abs().max().item<double>(), 1e-12);
  double err = (g - w).abs().max().item<double>();
  if (err <= rel * scale) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max abs error " << err << " > " << rel << " * "
                                       << scale;
}

struct Golden {
  json root;
  torch::Tensor p, q, labels, custom, center;
  Golden() {
    std::ifstream in(CWCL_TEST_DATA_DIR "/golden/loss_golden.json");
    EXPECT_TRUE(in.good()) << "missing golden file";
    in >> root;
    const auto& inp = root.at("inputs");
    p = tensor_from(inp.at("p"));
    q = tensor_from(inp.at("q"));
    labels = tensor_from(inp.at("labels")).to(torch::kLong);
    custom = tensor_from(inp.at("custom"));
    center = tensor_from(inp.at("center"));
  }
};

// Options for one golden case; scale/bias are returned as leaves when learned.
LossOptions options_for(const json& c, const Golden& g, torch::Dtype dtype, const torch::Device& device,
                        torch::Tensor* scale, torch::Tensor* bias) {
  const auto to = torch::TensorOptions().dtype(dtype).device(device);
  LossOptions o;
  o.kind = cwcl::parse_name<cwcl::LossKind>(c.at("kind"));
  o.temperature = c.at("temperature");
  o.bias = c.at("bias");
  o.labels = g.labels.to(device);
  if (c.value("learn_scale", false)) {
    *scale = torch::tensor(c.at("scale").get<double>(), kDouble).to(to).requires_grad_(true);
    o.logit_scale = *scale;
  }
  if (c.value("learn_bias", false)) {
    *bias = torch::tensor(c.at("bias_value").get<double>(), kDouble).to(to).requires_grad_(true);
    o.logit_bias = *bias;
  }
  if (c.contains("map")) {
    o.weights.map = cwcl::parse_name<cwcl::WeightMap>(c.at("map"));
    o.weights.gamma = c.value("gamma", o.weights.gamma);
    o.weights.kernel_tau = c.value("kernel_tau", o.weights.kernel_tau);
    if (c.value("center", false)) o.weights.center = g.center.to(to);
    if (o.weights.map == WeightMap::Custom) o.weights.custom = g.custom.to(to);
  }
  if (c.contains("directions")) o.directions = cwcl::parse_name<cwcl::WeightedDirections>(c.at("directions"));
  o.cosine_weight = c.value("cosine_weight", 0.0);
  return o;
}

void check_golden(torch::Dtype dtype, double rel_loss, double rel_grad,
                  cwcl::LossPath path = cwcl::LossPath::Plain, const torch::Device& device = torch::kCPU) {
  Golden g;
  ASSERT_GE(g.root.at("cases").size(), 25u);
  for (const auto& c : g.root.at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    torch::Tensor scale, bias;
    auto o = options_for(c, g, dtype, device, &scale, &bias);
    o.tiling.path = path;
    o.tiling.tile = 5;  // 12 rows: two full tiles and a partial one
    auto p = g.p.to(device, dtype).clone().requires_grad_(true);
    auto q = g.q.to(device, dtype).clone().requires_grad_(true);
    auto loss = cwcl::contrastive_loss(p, q, o);
    loss.backward();
    EXPECT_EQ(p.grad().device(), device);
    EXPECT_TRUE(close(loss.cpu(), torch::tensor(c.at("loss").get<double>()), rel_loss));
    EXPECT_TRUE(close(p.grad().cpu(), tensor_from(c.at("grad_p")), rel_grad)) << "grad p";
    EXPECT_TRUE(close(q.grad().cpu(), tensor_from(c.at("grad_q")), rel_grad)) << "grad q";
    if (scale.defined()) {
      EXPECT_NEAR(scale.grad().item<double>(), c.at("grad_scale").get<double>(),
                  rel_grad * std::max(1.0, std::abs(c.at("grad_scale").get<double>())));
    }
    if (bias.defined()) {
      EXPECT_NEAR(bias.grad().item<double>(), c.at("grad_bias").get<double>(),
                  rel_grad * std::max(1.0, std::abs(c.at("grad_bias").get<double>())));
    }
  }
}

TEST(LossGolden, MatchesPythonReferenceInDouble) { check_golden(torch::kDouble, 1e-5, 1e-5); }

TEST(LossGolden, MatchesPythonReferenceInFloat) { check_golden(torch::kFloat, 1e-5, 1e-4); }

TEST(LossGolden, TiledMatchesPythonReferenceInDouble) {
  check_golden(torch::kDouble, 1e-5, 1e-5, cwcl::LossPath::Tiled);
}

TEST(LossGolden, OnCudaPlainAndTiled) {
  CWCL_SKIP_WITHOUT_CUDA();
  for (auto path : {cwcl::LossPath::Plain, cwcl::LossPath::Tiled}) {
    SCOPED_TRACE(cwcl::name_of(path));
    check_golden(torch::kDouble, 1e-5, 1e-5, path, torch::kCUDA);
    // TF32 matrix products (10-bit mantissa) are off by default in libtorch.
    check_golden(torch::kFloat, 1e-5, 1e-4, path, torch::kCUDA);
  }
}

// ---- exact special cases --------------------------------------------------

struct Batch {
  torch::Tensor p, q, labels;
};

Batch random_batch(int64_t n, int64_t d, uint64_t seed, int64_t classes = 4) {
  torch::manual_seed(seed);
  auto labels = torch::randint(classes, {n}, torch::kLong);
  auto centres = torch::randn({classes, d}, kDouble);
  auto p = centres.index_select(0, labels) + 0.3 * torch::randn({n, d}, kDouble);
  auto q = 0.5 * p + torch::randn({n, d}, kDouble);
  return {p, q, labels};
}

torch::Tensor loss_of(const Batch& b, LossOptions o) {
  o.labels = b.labels;
  return cwcl::contrastive_loss(b.p, b.q, o);
}

TEST(LossSpecialCases, CwclWithIdentityWeightsEqualsCl) {
  auto b = random_batch(16, 8, 1);
  LossOptions cl;
  cl.kind = LossKind::CL;
  LossOptions cw;
  cw.kind = LossKind::CWCL;
  cw.weights.map = WeightMap::Identity;
  for (auto d : {cwcl::WeightedDirections::Both, cwcl::WeightedDirections::FrozenToTrained,
                 cwcl::WeightedDirections::TrainedToFrozen}) {
    cw.directions = d;
    EXPECT_NEAR(loss_of(b, cw).item<double>(), loss_of(b, cl).item<double>(), 1e-12);
  }
}

TEST(LossSpecialCases, CwclWithLabelWeightsEqualsSupCon) {
  auto b = random_batch(16, 8, 2);
  LossOptions sup;
  sup.kind = LossKind::SupCon;
  LossOptions cw;
  cw.weights.map = WeightMap::Labels;
  EXPECT_NEAR(loss_of(b, cw).item<double>(), loss_of(b, sup).item<double>(), 1e-12);
}

TEST(LossSpecialCases, CwSigLipWithIdentityTargetsEqualsSigLip) {
  auto b = random_batch(16, 8, 3);
  LossOptions sig;
  sig.kind = LossKind::SigLIP;
  sig.bias = -4.0;
  LossOptions cw = sig;
  cw.kind = LossKind::CWSigLIP;
  cw.weights.map = WeightMap::Identity;
  EXPECT_NEAR(loss_of(b, cw).item<double>(), loss_of(b, sig).item<double>(), 1e-12);
}

TEST(LossSpecialCases, SupConWithDistinctLabelsEqualsCl) {
  auto b = random_batch(10, 8, 4);
  b.labels = torch::arange(10);
  LossOptions sup;
  sup.kind = LossKind::SupCon;
  LossOptions cl;
  cl.kind = LossKind::CL;
  EXPECT_NEAR(loss_of(b, sup).item<double>(), loss_of(b, cl).item<double>(), 1e-12);
}

// ---- invariances ----------------------------------------------------------

std::vector<LossOptions> every_kind() {
  std::vector<LossOptions> all;
  for (auto kind : {LossKind::CL, LossKind::SupCon, LossKind::SigLIP}) {
    LossOptions o;
    o.kind = kind;
    all.push_back(o);
  }
  for (auto kind : {LossKind::CWCL, LossKind::CWSigLIP})
    for (auto map : {WeightMap::Affine, WeightMap::Relu, WeightMap::Power, WeightMap::Kernel,
                     WeightMap::RowMinMax, WeightMap::Labels, WeightMap::Identity}) {
      LossOptions o;
      o.kind = kind;
      o.weights.map = map;
      all.push_back(o);
    }
  return all;
}

std::string describe(const LossOptions& o) {
  return std::string(cwcl::name_of(o.kind)) + "/" + cwcl::name_of(o.weights.map);
}

TEST(LossInvariance, PermutingTheBatchChangesNothing) {
  auto b = random_batch(13, 6, 5);
  auto perm = torch::randperm(13, torch::kLong);
  Batch shuffled{b.p.index_select(0, perm), b.q.index_select(0, perm),
                 b.labels.index_select(0, perm)};
  for (auto o : every_kind()) {
    SCOPED_TRACE(describe(o));
    EXPECT_NEAR(loss_of(b, o).item<double>(), loss_of(shuffled, o).item<double>(), 1e-10);
  }
  // A custom weight matrix permutes with the batch.
  LossOptions o;
  o.weights.map = WeightMap::Custom;
  o.weights.custom = torch::rand({13, 13}, kDouble);
  auto a = loss_of(b, o).item<double>();
  o.weights.custom = o.weights.custom.index_select(0, perm).index_select(1, perm);
  EXPECT_NEAR(a, loss_of(shuffled, o).item<double>(), 1e-10);
}

TEST(LossInvariance, ScalingRawInputsChangesNothing) {
  auto b = random_batch(11, 6, 6);
  Batch scaled{b.p * 37.5, b.q * 0.002, b.labels};
  for (auto o : every_kind()) {
    SCOPED_TRACE(describe(o));
    EXPECT_NEAR(loss_of(b, o).item<double>(), loss_of(scaled, o).item<double>(), 1e-10);
  }
  LossOptions centred;
  centred.weights.center = torch::randn({6}, kDouble) * 0.1;
  EXPECT_NEAR(loss_of(b, centred).item<double>(), loss_of(scaled, centred).item<double>(), 1e-10);
}

// ---- numerical stability --------------------------------------------------

TEST(LossStability, MaximalScaleWithNearIdenticalRowsIsFinite) {
  torch::manual_seed(7);
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    auto base = torch::randn({1, 32}).to(dtype);
    auto p = (base + 1e-6 * torch::randn({64, 32}).to(dtype)).requires_grad_(true);
    auto q = (base + 1e-6 * torch::randn({64, 32}).to(dtype)).requires_grad_(true);
    auto labels = torch::randint(3, {64}, torch::kLong);
    for (auto o : every_kind()) {
      SCOPED_TRACE(describe(o));
      o.labels = labels;
      o.logit_scale = torch::tensor(10.0, torch::TensorOptions().dtype(dtype)).requires_grad_(true);
      o.logit_bias = torch::tensor(-10.0, torch::TensorOptions().dtype(dtype)).requires_grad_(true);
      auto loss = cwcl::contrastive_loss(p, q, o);
      loss.backward();
      EXPECT_TRUE(std::isfinite(loss.item<double>()));
      EXPECT_TRUE(torch::isfinite(p.grad()).all().item<bool>());
      EXPECT_TRUE(torch::isfinite(q.grad()).all().item<bool>());
      // Clamped at log(100): no gradient pushes the scale further.
      EXPECT_EQ(o.logit_scale.grad().item<double>(), 0.0);
      p.mutable_grad().reset();
      q.mutable_grad().reset();
    }
  }
}

TEST(LossStability, TinyBatches) {
  auto two = random_batch(2, 4, 8, 2);
  for (auto o : every_kind()) {
    SCOPED_TRACE(describe(o));
    EXPECT_TRUE(std::isfinite(loss_of(two, o).item<double>()));
  }
  auto one = random_batch(1, 4, 9, 1);
  for (auto o : every_kind()) {
    SCOPED_TRACE(describe(o));
    if (cwcl::is_sigmoid_kind(o.kind)) {
      EXPECT_TRUE(std::isfinite(loss_of(one, o).item<double>()));
    } else {
      try {
        loss_of(one, o);
        ADD_FAILURE() << "N = 1 accepted";
      } catch (const c10::Error& e) {
        EXPECT_NE(std::string(e.what()).find("N >= 2"), std::string::npos) << e.what();
      }
    }
  }
}

// ---- bad input --------------------------------------------------------------

void expect_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const c10::Error& e) {
    EXPECT_NE(e.what_without_backtrace() ? std::string(e.what_without_backtrace()).find(needle)
                                         : std::string::npos,
              std::string::npos)
        << e.what_without_backtrace();
  }
}

TEST(LossBadInput, ClearErrors) {
  auto b = random_batch(6, 4, 10);
  LossOptions o;
  expect_error([&] { cwcl::contrastive_loss(b.p, b.q.narrow(0, 0, 5), o); }, "shape mismatch");
  expect_error([&] { cwcl::contrastive_loss(b.p.view(-1), b.q.view(-1), o); }, "must be [N, D]");
  expect_error([&] { cwcl::contrastive_loss(b.p, b.q.to(torch::kFloat), o); }, "but q is");
  expect_error([&] { cwcl::contrastive_loss(b.p, b.q.to(torch::kMeta), o); }, "is on");
  auto nan_p = b.p.clone();
  nan_p[2][1] = std::nan("");
  expect_error([&] { cwcl::contrastive_loss(nan_p, b.q, o); }, "p (frozen side) contains NaN");
  auto inf_q = b.q.clone();
  inf_q[0][0] = std::numeric_limits<double>::infinity();
  expect_error([&] { cwcl::contrastive_loss(b.p, inf_q, o); }, "q (trained side) contains NaN");

  LossOptions sup;
  sup.kind = LossKind::SupCon;
  expect_error([&] { cwcl::contrastive_loss(b.p, b.q, sup); }, "needs labels");
  sup.labels = torch::zeros({5}, torch::kLong);
  expect_error([&] { cwcl::contrastive_loss(b.p, b.q, sup); }, "labels must be [6]");
  sup.labels = torch::zeros({6}, kDouble);
  expect_error([&] { cwcl::contrastive_loss(b.p, b.q, sup); }, "labels must be integers");

  LossOptions custom;
  custom.weights.map = WeightMap::Custom;
  expect_error([&] { cwcl::contrastive_loss(b.p, b.q, custom); }, "needs weights.custom");
  custom.weights.custom = torch::ones({6, 5}, kDouble);
  expect_error([&] { cwcl::contrastive_loss(b.p, b.q, custom); }, "must be [6, 6]");
  custom.weights.custom = torch::full({6, 6}, 1.5, kDouble);
  expect_error([&] { cwcl::contrastive_loss(b.p, b.q, custom); }, "must lie in [0, 1]");
  custom.weights.custom = torch::zeros({6, 6}, kDouble);
  expect_error([&] { cwcl::contrastive_loss(b.p, b.q, custom); }, "sums to zero");

  LossOptions bad_temp;
  bad_temp.temperature = 0;
  expect_error([&] { cwcl::contrastive_loss(b.p, b.q, bad_temp); }, "temperature must be > 0");
  LossOptions bad_scale;
  bad_scale.logit_scale = torch::ones({2}, kDouble);
  expect_error([&] { cwcl::contrastive_loss(b.p, b.q, bad_scale); }, "logit_scale must hold");
  LossOptions bad_center;
  bad_center.weights.center = torch::zeros({3}, kDouble);
  expect_error([&] { cwcl::contrastive_loss(b.p, b.q, bad_center); }, "center must be [4]");
  LossOptions bad_gamma;
  bad_gamma.weights.map = WeightMap::Power;
  bad_gamma.weights.gamma = 0;
  expect_error([&] { cwcl::contrastive_loss(b.p, b.q, bad_gamma); }, "gamma > 0");

  EXPECT_THROW(cwcl::parse_name<cwcl::LossKind>("infonce"), cwcl::UsageError);
  EXPECT_THROW(cwcl::parse_name<cwcl::WeightMap>("cosine"), cwcl::UsageError);
}

TEST(LossNames, RoundTrip) {
  for (auto k : {LossKind::CL, LossKind::CWCL, LossKind::SupCon, LossKind::SigLIP,
                 LossKind::CWSigLIP})
    EXPECT_EQ(cwcl::parse_name<cwcl::LossKind>(cwcl::name_of(k)), k);
  for (auto m : {WeightMap::Affine, WeightMap::Relu, WeightMap::Power, WeightMap::Kernel,
                 WeightMap::RowMinMax, WeightMap::Labels, WeightMap::Identity, WeightMap::Custom})
    EXPECT_EQ(cwcl::parse_name<cwcl::WeightMap>(cwcl::name_of(m)), m);
  try {
    cwcl::parse_name<cwcl::WeightMap>("cosine");
    FAIL() << "an unknown map was accepted";
  } catch (const cwcl::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("row_minmax"), std::string::npos) << e.what();
  }
}

// ---- module ------------------------------------------------------------------

TEST(LossModule, HoldsLearnableScaleAndBias) {
  auto b = random_batch(8, 4, 11);
  cwcl::ContrastiveLoss module;
  ASSERT_EQ(module->parameters().size(), 1u);
  EXPECT_NEAR(module->logit_scale.item<double>(), std::log(1 / 0.07), 1e-6);
  auto q = b.q.clone().requires_grad_(true);
  auto loss = module->forward(b.p, q);
  loss.backward();
  EXPECT_TRUE(module->logit_scale.grad().defined());
  LossOptions o;
  o.logit_scale = module->logit_scale.detach();
  EXPECT_NEAR(loss.item<double>(), cwcl::contrastive_loss(b.p, b.q, o).item<double>(), 1e-6);

  LossOptions sig;
  sig.kind = LossKind::SigLIP;
  sig.temperature = 0.1;
  cwcl::ContrastiveLoss sig_module(sig);
  EXPECT_EQ(sig_module->parameters().size(), 2u);
  EXPECT_NEAR(sig_module->logit_bias.item<double>(), -10.0, 1e-12);

  cwcl::ContrastiveLoss fixed(LossOptions{}, /*learn_temperature=*/false);
  EXPECT_TRUE(fixed->parameters().empty());
  EXPECT_NEAR(fixed->forward(b.p, b.q).item<double>(),
              cwcl::contrastive_loss(b.p, b.q).item<double>(), 1e-12);
}

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
