// Measurements of the training path (`cwcl bench ...`, docs/performance.md):
// each returns its figures as one JSON object per line.
#pragma once

#include <cwcl/device.h>
#include <cwcl/loss.h>
#include <cwcl/towers/speech_encoder.h>
#include <cwcl/towers/whisper.h>

#include <cstdint>
#include <string>

namespace cwcl {

struct LossBenchOptions {
  LossKind kind = LossKind::CWCL;
  WeightMap weights = WeightMap::Affine;
  double gamma = 8.0;        ///< the power map's exponent
  double kernel_tau = 0.1;   ///< the kernel map's bandwidth
  LossPath path = LossPath::Tiled;  ///< auto: the path measure_loss_path picks (reported)
  int64_t n = 8192;
  int64_t dim = 256;
  int64_t tile = 1024;
  int repeats = 0;    ///< 0: 3 below N = 32768, else 1
  bool floor = true;  ///< also time three N x D x N products
  uint64_t seed = 0;
  DeviceSpec device;
};
/// Forward + backward time (median of the repeats) and peak extra resident
/// memory of one loss configuration on random embeddings.
std::string bench_loss(const LossBenchOptions& options);

struct TowerBenchOptions {
  std::string model;  ///< model.whisper_model: tiny.en (empty), base or a CTranslate2 folder
  WhisperTraining training = WhisperTraining::TopBlocks;  ///< the Whisper tower, as configs/speech.toml trains it
  int64_t top_blocks = 2;
  int64_t batch_size = 32;
  int64_t frames = 200;  ///< log-mel frames per utterance (2 s); lengths vary from half of it
  int64_t steps = 10;    ///< timed, after 2 untimed
  DeviceSpec device;
  Precision precision = Precision::Fp32;
  std::string export_to;  ///< also write the initial tower for scripts/bench_tower_python.py
};
/// Training steps of the Whisper tower (CL loss, AdamW) on random log-mel
/// batches: samples/s.
std::string bench_tower(const TowerBenchOptions& options);

struct ImageBenchOptions {
  int64_t width = 32;  ///< the ResNet tower (model.resnet_width, resnet_blocks, image_size)
  int64_t blocks = 1;
  int64_t image_size = 64;
  int64_t batch_size = 64;
  int64_t steps = 5;  ///< timed, after 2 untimed
  DeviceSpec device;
  Precision precision = Precision::Fp32;
  std::string export_to;  ///< also write the initial tower for scripts/bench_image_python.py
  std::string manifest;   ///< also time the training loader on this image manifest
  int64_t loader_batches = 20;
};
/// Training steps of the ResNet tower (CL loss, AdamW) on random images:
/// images/s; with a manifest, a second line: the loader's images/s.
std::string bench_image(const ImageBenchOptions& options);

struct TextBenchOptions {
  std::string model;      ///< Hugging Face folder; empty: the models cache
  std::string sentences;  ///< one sentence per line
  int64_t count = 2000;   ///< sentences to embed (cycled if the file has fewer)
  int64_t batch_size = 64;
};
/// Sentences per second of the MiniLM sentence encoder.
std::string bench_text(const TextBenchOptions& options);

struct StepsBenchOptions {
  std::string cache;  ///< from cwcl features
  std::string store;  ///< frozen-side embeddings by id (cwcl embed on the same manifest)
  ScratchSize size = ScratchSize::Small;
  int64_t steps = 5;
  int64_t batch_size = 64;
};
/// The speech loader alone (50 batches), then a few training steps of the
/// from-scratch speech encoder through it against the frozen side's
/// embeddings: one JSON line for the loader, one per step, one in total.
std::string bench_steps(const StepsBenchOptions& options);

}  // namespace cwcl
