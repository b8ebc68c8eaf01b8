// A downstream program that links cwcl::loss alone (torch is its only dependency).
#include <cwcl/loss.h>

#include <cmath>
#include <iostream>

int main() {
  torch::manual_seed(0);
  auto p = torch::randn({8, 16}), q = torch::randn({8, 16});
  cwcl::LossOptions cl, identity;
  cl.kind = cwcl::LossKind::CL;
  identity.kind = cwcl::LossKind::CWCL;
  identity.weights.map = cwcl::WeightMap::Identity;
  const double a = cwcl::contrastive_loss(p, q, cl).item<double>();
  const double b = cwcl::contrastive_loss(p, q, identity).item<double>();
  std::cout << "cwcl::loss CL " << a << ", CWCL with identity weights " << b << "\n";
  return std::isfinite(a) && std::abs(a - b) < 1e-6 ? 0 : 1;  // CWCL with identity weights is CL
}
