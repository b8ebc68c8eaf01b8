// Helpers shared by the loss tests: closeness, seeded batches, every loss kind.
#pragma once

#include <gtest/gtest.h>

#include <cwcl/loss.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

namespace cwcl::testing {

using cwcl::LossKind;
using cwcl::LossOptions;
using cwcl::WeightMap;

inline const auto kDouble = torch::TensorOptions().dtype(torch::kDouble);

// Relative closeness scaled by the largest magnitude of the expected tensor.
inline ::testing::AssertionResult close(const torch::Tensor& got, const torch::Tensor& want,
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

struct Batch {
  torch::Tensor p, q, labels;
};

inline Batch random_batch(int64_t n, int64_t d, uint64_t seed, int64_t classes = 4) {
  torch::manual_seed(seed);
  auto labels = torch::randint(classes, {n}, torch::kLong);
  auto centres = torch::randn({classes, d}, kDouble);
  auto p = centres.index_select(0, labels) + 0.3 * torch::randn({n, d}, kDouble);
  auto q = 0.5 * p + torch::randn({n, d}, kDouble);
  return {p, q, labels};
}

inline torch::Tensor loss_of(const Batch& b, LossOptions o) {
  o.labels = b.labels;
  return cwcl::contrastive_loss(b.p, b.q, o);
}

inline std::vector<LossOptions> every_kind() {
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

inline std::string describe(const LossOptions& o) {
  return std::string(cwcl::name_of(o.kind)) + "/" + cwcl::name_of(o.weights.map);
}

// Expects f to throw a c10::Error whose message contains needle.
inline void expect_error(const std::function<void()>& f, const std::string& needle) {
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

}  // namespace cwcl::testing
