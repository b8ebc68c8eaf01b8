// cwcl features and cwcl bench steps: the speech data path end to end.
#include "commands.h"

#include <cwcl/data/speech.h>
#include <cwcl/loss.h>
#include <cwcl/towers/speech_encoder.h>
#include <cwcl/io/store.h>

#include <chrono>
#include <iostream>

#include <unistd.h>

namespace cwcl::app {

int run_features(const FeaturesOptions& o) {
  auto manifest = read_speech_manifest(o.manifest);
  for (const auto& p : manifest.problems) std::cerr << "features: skipped " << p << "\n";
  const bool tty = ::isatty(STDERR_FILENO);
  auto report = FeatureCache::build(
      manifest.examples, o.out, LogMelOptions{}, o.threads,
      [&](int64_t d, int64_t n) {
        if (tty && (d % 256 == 0 || d == n)) std::cerr << "\rfeatures: " << d << "/" << n << std::flush;
      },
      o.front_end);
  if (tty) std::cerr << "\n";
  for (const auto& p : report.problems) std::cerr << "features: skipped " << p << "\n";
  std::cout << "features: " << report.examples << " utterances (" << manifest.skipped + report.skipped
            << " skipped), " << report.audio_seconds << " s of audio in " << report.seconds << " s ("
            << report.audio_seconds / report.seconds << " s of audio per s) -> " << o.out << "\n";
  return 0;
}

int run_bench_steps(const BenchStepsOptions& o) {
  auto cache = FeatureCache::open(o.cache);
  auto store = EmbeddingStore::read(o.store);
  auto encoder_options = SpeechEncoderOptions::preset(o.size);
  encoder_options.out_dim = store.dim();  // into the frozen tower's space
  SpeechEncoder encoder(encoder_options);
  encoder->train();
  ContrastiveLoss criterion(LossOptions{});  // CWCL, affine weights, learned temperature
  auto params = encoder->parameters();
  for (auto& p : criterion->parameters()) params.push_back(p);
  torch::optim::AdamW optimizer(params, torch::optim::AdamWOptions(1e-3));
  LoaderOptions lo;
  lo.batch_size = o.batch_size;
  lo.spec_augment = SpecAugmentOptions{};
  lo.drop_last = true;
  {
    // The loader alone (memory-mapped features, SpecAugment, padding), 50 batches.
    SpeechLoader alone(cache, lo, /*epoch=*/1);
    const auto t0 = std::chrono::steady_clock::now();
    int64_t utterances = 0;
    for (int b = 0; b < 50; ++b) {
      auto batch = alone.next();
      if (!batch) break;
      utterances += batch->mel.size(0);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << "loader: " << utterances << " utterances in " << s << " s (" << utterances / s
              << " utterances/s)\n";
  }
  SpeechLoader loader(cache, lo);
  const auto start = std::chrono::steady_clock::now();
  int64_t steps = 0;
  while (steps < o.steps) {
    auto batch = loader.next();
    if (!batch) break;
    std::vector<std::string> ids;
    for (auto i : batch->indices) ids.push_back(cache.id(i));
    auto p = store.lookup_ids(ids);
    optimizer.zero_grad();
    auto loss = criterion(p, encoder->forward(batch->mel, batch->lengths));
    loss.backward();
    optimizer.step();
    ++steps;
    std::cout << "step " << steps << " loss " << loss.item<double>() << " frames " << batch->mel.size(1) << "\n";
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "steps: " << steps << " in " << seconds << " s (" << steps / seconds << " steps/s, "
            << steps * o.batch_size / seconds << " utterances/s)\n";
  return 0;
}

}  // namespace cwcl::app
