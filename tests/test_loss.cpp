// The loss library against independent references and exact special cases.
#include <gtest/gtest.h>

#include "cuda.h"
#include <nlohmann/json.hpp>

#include <cwcl/loss.h>

#include "loss_helpers.h"

#include <fstream>

namespace {

using namespace cwcl::testing;
using json = nlohmann::json;

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

}  // namespace
