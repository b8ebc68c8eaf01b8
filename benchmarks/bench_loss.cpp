// Loss forward + backward against the matrix-product floor.
//
//   build/release/benchmarks/cwcl_bench_loss --benchmark_repetitions=3
//
// CWCL_THREADS sets torch's thread count (default: all cores); CWCL_TILE the
// tiled path's tile size.
#include <benchmark/benchmark.h>

#include <cwcl/loss.h>
#include <cwcl/runtime.h>

#include <cstdlib>

namespace {

constexpr int64_t kDim = 256;

void set_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops_per_iteration * static_cast<double>(state.iterations()) / 1e9,
      benchmark::Counter::kIsRate);
}

// One [N, D] x [D, N] product: the unit of work of every N x N loss.
void BM_MatmulFloor(benchmark::State& state) {
  const int64_t n = state.range(0);
  torch::manual_seed(0);
  auto a = torch::randn({n, kDim}), b = torch::randn({n, kDim});
  for (auto _ : state) {
    auto c = torch::mm(a, b.t());
    benchmark::DoNotOptimize(c.data_ptr<float>());
  }
  set_flops(state, 2.0 * n * n * kDim);
}

void run_loss(benchmark::State& state, cwcl::LossKind kind) {
  const int64_t n = state.range(0);
  const bool tiled = state.range(1) != 0;
  torch::manual_seed(0);
  auto p = torch::randn({n, kDim});
  auto q = torch::randn({n, kDim}).requires_grad_(true);
  cwcl::LossOptions opt;
  opt.kind = kind;
  opt.logit_scale = torch::tensor(std::log(1 / 0.07)).requires_grad_(true);
  opt.tiling.path = tiled ? cwcl::LossPath::Tiled : cwcl::LossPath::Plain;
  if (const char* tile = std::getenv("CWCL_TILE")) opt.tiling.tile = std::atoi(tile);
  for (auto _ : state) {
    auto loss = cwcl::contrastive_loss(p, q, opt);
    loss.backward();
    benchmark::DoNotOptimize(q.grad().data_ptr<float>());
    q.mutable_grad().reset();
    opt.logit_scale.mutable_grad().reset();
  }
  // Forward + backward need at least three N x D x N products.
  set_flops(state, 3 * 2.0 * n * n * kDim);
}

void BM_LossCL(benchmark::State& state) { run_loss(state, cwcl::LossKind::CL); }
void BM_LossCWCL(benchmark::State& state) { run_loss(state, cwcl::LossKind::CWCL); }
void BM_LossSigLIP(benchmark::State& state) { run_loss(state, cwcl::LossKind::SigLIP); }

BENCHMARK(BM_MatmulFloor)
    ->ArgName("N")->Arg(1024)->Arg(4096)->Arg(8192)->Unit(benchmark::kMillisecond)->UseRealTime();
// Second argument: 0 plain (N x N tensors), 1 tiled.
#define CWCL_LOSS_ARGS                                                         \
  ->ArgsProduct({{1024, 4096, 8192}, {0, 1}})->ArgNames({"N", "tiled"})      \
      ->Unit(benchmark::kMillisecond)->UseRealTime()
BENCHMARK(BM_LossCL) CWCL_LOSS_ARGS;
BENCHMARK(BM_LossCWCL) CWCL_LOSS_ARGS;
BENCHMARK(BM_LossSigLIP) CWCL_LOSS_ARGS;

}  // namespace
