// A downstream program using the installed cwcl package.
#include <cwcl/loss.h>
#include <cwcl/runtime.h>
#include <cwcl/version.h>

#include <iostream>

int main() {
  cwcl::set_num_threads(0);
  auto p = torch::eye(4);
  auto q = torch::eye(4);
  cwcl::LossOptions opt;
  opt.kind = cwcl::LossKind::CWCL;
  double loss = cwcl::contrastive_loss(p, q, opt).item<double>();
  std::cout << "cwcl " << CWCL_VERSION << " loss " << loss << "\n";
  return std::isfinite(loss) && loss > 0 ? 0 : 1;
}
