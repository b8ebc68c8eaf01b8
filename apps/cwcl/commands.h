// Subcommands of the cwcl command; each returns the process exit code.
#pragma once

#include <cstdint>
#include <string>

namespace cwcl::app {

struct BenchLossOptions {
  std::string kind = "cwcl";     // loss kind name
  std::string weights = "affine";
  std::string path = "tiled";    // plain | tiled | auto
  int64_t n = 8192;
  int64_t dim = 256;
  int64_t tile = 1024;
  int repeats = 0;               // 0: 3 below N = 32768, else 1
  bool floor = true;             // also time three N x D x N products
  uint64_t seed = 0;
};

/// Times forward + backward of one loss configuration and reports its peak
/// extra resident memory, as one JSON line on stdout.
int run_bench_loss(const BenchLossOptions& options);

}  // namespace cwcl::app
