// A downstream program using the installed cwcl package (cwcl::cwcl).
#include <cwcl/loss.h>
#include <cwcl/runtime.h>
#include <cwcl/towers/tower.h>
#include <cwcl/model/config.h>
#include <cwcl/version.h>

#include <cstdlib>
#include <iostream>

int main() {
  cwcl::set_num_threads(0);
  // Configuration parsed into typed options, a tower built from its spec.
  auto config = cwcl::TrainConfig::from_string("[model]\ntower = \"image\"\nimage_width = 4\n", "inline");
  auto tower = cwcl::make_tower(config.model, 16, cwcl::TowerWeights::Untrained);
  auto q = tower->forward(torch::randn({4, 1, 28, 28}));
  auto p = torch::randn({4, 16});
  double loss = cwcl::contrastive_loss(p, q, config.loss_options()).item<double>();
  // The bundled data is installed with the package and found without a path.
  const auto classes = cwcl::data_file("fashion-mnist/classes.tsv");
  const char* installed = std::getenv("CWCL_DATA");
  if (installed && classes.rfind(installed, 0) != 0) return 1;
  std::cout << "cwcl " << CWCL_VERSION << " loss " << loss << " data " << classes << "\n";
  return std::isfinite(loss) && loss > 0 ? 0 : 1;
}
