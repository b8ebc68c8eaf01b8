// Training steps per second of the speech towers on 2 cores, CL loss against
// 384-d targets, AdamW step:
// - Whisper tiny.en (frozen, top 2 blocks, or all trained) + masked mean +
//   linear head; batch of 16 utterances of 2 s (200 log-mel frames);
// - the from-scratch encoder (tiny, small); batch of 64 utterances of 2 s.
//
//   scripts/fetch_models.sh whisper && build/release/benchmarks/cwcl_bench_speech
#include <benchmark/benchmark.h>

#include <cwcl/loss.h>
#include <cwcl/runtime.h>
#include <cwcl/towers/speech_encoder.h>
#include <cwcl/towers/whisper.h>

#include <cstdlib>
#include <iostream>

namespace {

void BM_WhisperTrainStep(benchmark::State& state) {
  const auto mode = static_cast<cwcl::WhisperTraining>(state.range(0));
  const int64_t batch = 16, frames = 200;
  auto encoder = cwcl::load_whisper_encoder(cwcl::model_folder("whisper-tiny.en-ct2"));
  encoder->train();
  cwcl::WhisperTrainingOptions o;
  o.mode = mode;
  auto groups = cwcl::whisper_parameter_groups(encoder, o);
  cwcl::WhisperTower tower(encoder, 384);
  std::vector<torch::Tensor> top_params = tower->head->parameters();
  groups.emplace_back(top_params, std::make_unique<torch::optim::AdamWOptions>(1e-3));
  torch::optim::AdamW optimizer(groups);
  torch::manual_seed(0);
  auto mel = torch::randn({batch, frames, 80}) * 0.3;
  auto lengths = torch::full({batch}, frames, torch::kLong);
  auto targets = torch::randn({batch, 384});
  cwcl::LossOptions loss_options;
  loss_options.kind = cwcl::LossKind::CL;
  for (auto _ : state) {
    optimizer.zero_grad();
    auto q = tower(mel, lengths);
    auto loss = cwcl::contrastive_loss(targets, q, loss_options);
    loss.backward();
    optimizer.step();
    benchmark::DoNotOptimize(loss.item<float>());
  }
  state.counters["utterances_per_s"] =
      benchmark::Counter(static_cast<double>(batch * state.iterations()), benchmark::Counter::kIsRate);
}

void BM_ScratchTrainStep(benchmark::State& state) {
  const int64_t batch = 64, frames = 200;
  torch::manual_seed(0);
  cwcl::SpeechEncoder encoder(cwcl::SpeechEncoderOptions::preset(state.range(0) == 0 ? cwcl::ScratchSize::Tiny : cwcl::ScratchSize::Small));
  encoder->train();
  torch::optim::AdamW optimizer(encoder->parameters(), torch::optim::AdamWOptions(1e-3));
  auto mel = torch::randn({batch, frames, 80}) * 0.3;
  auto targets = torch::randn({batch, 384});
  cwcl::LossOptions loss_options;
  loss_options.kind = cwcl::LossKind::CL;
  for (auto _ : state) {
    optimizer.zero_grad();
    auto loss = cwcl::contrastive_loss(targets, encoder->forward(mel), loss_options);
    loss.backward();
    optimizer.step();
    benchmark::DoNotOptimize(loss.item<float>());
  }
  state.counters["utterances_per_s"] =
      benchmark::Counter(static_cast<double>(batch * state.iterations()), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_ScratchTrainStep)->ArgName("small")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK(BM_WhisperTrainStep)
    ->ArgName("mode")  // 0 frozen, 1 top 2 blocks, 2 full
    ->Arg(0)->Arg(1)->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
