// Audio front end throughput, in seconds of audio per second of compute.
//
//   build/release/benchmarks/cwcl_bench_audio
#include <benchmark/benchmark.h>

#include <cwcl/audio/audio.h>


namespace {

torch::Tensor two_seconds(int rate) {
  torch::manual_seed(0);
  return 0.1 * torch::randn({2 * rate});
}

void report(benchmark::State& state, double audio_seconds) {
  state.counters["audio_s_per_s"] = benchmark::Counter(
      audio_seconds * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_LogMel(benchmark::State& state) {
  auto x = two_seconds(16000);
  cwcl::LogMel log_mel;
  for (auto _ : state) benchmark::DoNotOptimize(log_mel(x).data_ptr<float>());
  report(state, 2.0);
}

void BM_WhisperLogMel(benchmark::State& state) {
  auto x = two_seconds(16000);
  cwcl::WhisperLogMel log_mel;
  for (auto _ : state) benchmark::DoNotOptimize(log_mel(x).data_ptr<float>());
  report(state, 2.0);
}

void BM_Resample22050To16000(benchmark::State& state) {
  auto x = two_seconds(22050);
  for (auto _ : state) benchmark::DoNotOptimize(cwcl::resample(x, 22050, 16000).data_ptr<float>());
  report(state, 2.0);
}

BENCHMARK(BM_LogMel)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_WhisperLogMel)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Resample22050To16000)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
