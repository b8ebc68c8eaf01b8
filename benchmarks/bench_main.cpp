// main() of every benchmark program: CWCL_THREADS sets torch's thread count
// (default: all cores), recorded in the report's context.
#include <benchmark/benchmark.h>

#include <cwcl/runtime.h>

#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  const char* threads = std::getenv("CWCL_THREADS");
  int n = cwcl::set_num_threads(threads ? std::atoi(threads) : 0);
  benchmark::AddCustomContext("torch_threads", std::to_string(n));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
