// cwcl bench: measurements of the training path (docs/performance.md).
#include <cwcl/data/images.h>
#include <cwcl/data/speech.h>
#include <cwcl/error.h>
#include <cwcl/io/files.h>
#include <cwcl/io/store.h>
#include <cwcl/model/export.h>
#include <cwcl/model/model.h>
#include <cwcl/runtime.h>
#include <cwcl/towers/text_encoder.h>
#include <cwcl/towers/tower.h>
#include <cwcl/train/bench.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>

namespace cwcl {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Three [N, D] x [D, N] products, in blocks of rows so that N = 65,536 fits:
// the least work any forward + backward of an N x N loss must do.
double time_floor(const torch::Tensor& p, const torch::Tensor& q) {
  const int64_t n = p.size(0), block = 1024;
  auto out = torch::empty({block, n}, p.options());
  auto start = std::chrono::steady_clock::now();
  for (int product = 0; product < 3; ++product)
    for (int64_t i = 0; i < n; i += block) {
      const int64_t rows = std::min(block, n - i);
      auto o = out.narrow(0, 0, rows);
      torch::mm_out(o, p.narrow(0, i, rows), q.t());
    }
  synchronize(p.device());
  return seconds_since(start);
}

// The tower, loss and optimizer of `cwcl bench tower`, and one random batch
// drawn once: lengths from frames/2 to frames, as padded batches of real
// speech are.
struct TowerBench {
  TrainedTower tower;
  ContrastiveLoss criterion{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer;
  torch::Tensor input, lengths, p;  // input: log-mel or images
};

constexpr int64_t kBenchOutDim = 384;  // MiniLM's space

// The tower of `spec` in training mode with a CL loss and AdamW, exported
// first when `export_to` is set (for the Python comparison).
TowerBench make_bench_tower(const TowerSpec& spec, const std::string& export_to, const torch::Device& device) {
  torch::manual_seed(0);
  TowerBench t;
  t.tower = make_tower(spec, kBenchOutDim, TowerWeights::Pretrained);
  if (!export_to.empty()) {
    TrainConfig config;
    config.model = spec;
    auto model = TrainedModel::of_tower(config, t.tower, 0);
    export_model(model, export_to);
  }
  t.tower->to(device);
  t.tower->train();
  LossOptions lo;
  lo.kind = LossKind::CL;
  t.criterion = ContrastiveLoss(lo);
  t.criterion->to(device);
  std::vector<torch::Tensor> params;
  for (const auto& g : t.tower->parameter_groups({1e-3, 1e-4}))
    params.insert(params.end(), g.parameters.begin(), g.parameters.end());
  for (const auto& p : t.criterion->parameters()) params.push_back(p);
  t.optimizer = std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(1e-4));
  return t;
}

TowerBench make_tower_bench(const TowerBenchOptions& b, const torch::Device& device) {
  WhisperTowerSpec spec;
  spec.model = b.model;
  spec.training = b.training;
  spec.top_blocks = b.top_blocks;
  auto t = make_bench_tower(spec, b.export_to, device);
  const int64_t n_mels = t.tower->architecture().at(0);
  t.input = torch::randn({b.batch_size, b.frames, n_mels}).to(device);
  t.lengths = torch::randint(b.frames / 2, b.frames + 1, {b.batch_size}, torch::kLong);
  t.lengths[0] = b.frames;
  t.lengths = t.lengths.to(device);
  t.p = torch::randn({b.batch_size, kBenchOutDim}, torch::TensorOptions().device(device));
  return t;
}

// One training step; returns the loss (reading it waits for the device).
double tower_step(TowerBench& t, Precision precision, const torch::Device& device) {
  t.optimizer->zero_grad();
  torch::Tensor q;
  {
    AutocastScope autocast(precision, device);
    q = t.tower->forward(t.input, t.lengths).to(torch::kFloat);
  }
  auto loss = t.criterion(t.p, q);
  loss.backward();
  t.optimizer->step();
  return loss.item<double>();
}

// The training loader alone on a manifest's images (decoding, random
// resized crops, colour jitter in background threads): images per second.
std::string bench_image_loader(const ImageBenchOptions& b) {
  const auto manifest = read_image_manifest(b.manifest, ImageManifestNeeds::TextOrLabel);
  if (manifest.examples.empty()) throw DataError(b.manifest + ": no usable lines");
  const auto n = static_cast<int64_t>(manifest.examples.size());
  const int64_t batches = std::max<int64_t>(1, std::min<int64_t>(b.loader_batches, n / b.batch_size));
  ImagePrefetcher::Options o;
  o.size = b.image_size;
  o.augment = ImageAugmentOptions{};
  auto plan = [&](int64_t k) {
    ImageBatchRequest r;
    for (int64_t i = 0; i < b.batch_size; ++i) {
      const auto row = (k * b.batch_size + i) % n;
      r.files.push_back(manifest.examples[static_cast<size_t>(row)].image);
      r.seeds.push_back(static_cast<uint64_t>(row));
    }
    return r;
  };
  const auto start = std::chrono::steady_clock::now();
  ImagePrefetcher loader(o, plan, 0, batches);
  int64_t images = 0;
  while (auto batch = loader.next()) images += normalise_colour(batch->images).size(0);
  const double seconds = seconds_since(start);
  return nlohmann::json{{"loader", b.manifest}, {"images", images}, {"seconds", seconds},
                        {"images_per_s", static_cast<double>(images) / seconds}}
      .dump();
}

// Two untimed steps, `before_timing`, then `steps` timed ones: the figures
// every tower bench reports.
nlohmann::json timed_steps(TowerBench& t, Precision precision, const torch::Device& device, int64_t steps,
                           int64_t batch, const std::function<void()>& before_timing = {}) {
  double loss = 0;
  for (int i = 0; i < 2; ++i) loss = tower_step(t, precision, device);
  if (before_timing) before_timing();
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) loss = tower_step(t, precision, device);
  const double seconds = seconds_since(start);
  return {{"impl", "cwcl"},
          {"batch", batch},
          {"device", device.str()},
          {"precision", name_of(precision)},
          {"torch_threads", at::get_num_threads()},
          {"steps", steps},
          {"seconds_per_step", seconds / static_cast<double>(steps)},
          {"samples_per_s", static_cast<double>(steps * batch) / seconds},
          {"loss", loss}};
}

}  // namespace

std::string bench_text(const TextBenchOptions& b) {
  const auto folder = b.model.empty() ? model_folder("all-MiniLM-L6-v2") : b.model;
  SentenceEncoderOptions eo;
  eo.batch_size = b.batch_size;
  auto encoder = SentenceEncoder::from_folder(folder, eo);
  auto lines = read_lines(b.sentences);
  if (lines.empty()) throw DataError(b.sentences + ": no sentences");
  std::vector<std::string> texts;
  for (int64_t i = 0; i < b.count; ++i) texts.push_back(lines[static_cast<size_t>(i) % lines.size()]);
  encoder.encode(std::vector<std::string>(texts.begin(), texts.begin() + std::min<int64_t>(64, b.count)));
  auto start = std::chrono::steady_clock::now();
  int64_t tokens = 0;
  for (const auto& t : texts) tokens += static_cast<int64_t>(encoder.tokenizer().encode(t).size());
  const double tokenize_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();
  encoder.encode(texts);
  const double seconds = seconds_since(start);
  nlohmann::json out = {{"model", folder},
                        {"sentences", b.count},
                        {"batch_size", b.batch_size},
                        {"torch_threads", at::get_num_threads()},
                        {"mean_tokens", static_cast<double>(tokens) / static_cast<double>(b.count)},
                        {"seconds", seconds},
                        {"sentences_per_second", static_cast<double>(b.count) / seconds},
                        {"tokenizer_sentences_per_second", static_cast<double>(b.count) / tokenize_seconds}};
  return out.dump();
}

std::string bench_loss(const LossBenchOptions& b) {
  const auto device = resolve_device(b.device, "--device");
  const auto on = torch::TensorOptions().device(device);
  LossOptions opt;
  opt.kind = b.kind;
  opt.weights.map = b.weights;
  opt.weights.gamma = b.gamma;
  opt.weights.kernel_tau = b.kernel_tau;
  opt.tiling.path = b.path;
  opt.tiling.tile = b.tile;
  opt.logit_scale = torch::tensor(std::log(1 / 0.07), on).requires_grad_(true);
  if (is_sigmoid_kind(opt.kind)) opt.logit_bias = torch::tensor(-10.0, on).requires_grad_(true);
  const int repeats = b.repeats > 0 ? b.repeats : (b.n < 32768 ? 3 : 1);

  torch::manual_seed(b.seed);
  auto p = torch::randn({b.n, b.dim}).to(device);
  auto q = torch::randn({b.n, b.dim}).to(device).requires_grad_(true);
  // auto: the measured choice, timed as the path it picked.
  if (opt.tiling.path == LossPath::Auto) opt.tiling.path = measure_loss_path(p, q, opt);
  q.mutable_grad() = torch::zeros_like(q);  // gradient buffer counts as input memory

  auto step = [&] {
    auto loss = contrastive_loss(p, q, opt);
    loss.backward();
    return loss.item<double>();
  };
  // One-time runtime set-up (thread pools, BLAS buffers) is not the loss's.
  {
    auto small_p = torch::randn({256, b.dim}, on), small_q = torch::randn({256, b.dim}, on);
    auto warm = opt;
    warm.logit_scale = opt.logit_scale.detach();
    warm.logit_bias = opt.logit_bias.defined() ? opt.logit_bias.detach() : torch::Tensor();
    contrastive_loss(small_p, small_q.requires_grad_(true), warm).backward();
    torch::mm(p.narrow(0, 0, std::min<int64_t>(1024, b.n)), q.detach().t());
  }
  // jemalloc retains freed pages, so the peak is read over the first run
  // (which doubles as the warm-up at sizes where a warm-up is cheap).
  const int64_t rss_before = resident_bytes();
  const bool peak_ok = reset_peak_resident_bytes();
  auto start = std::chrono::steady_clock::now();
  double loss = step();
  const double first = seconds_since(start);
  const int64_t peak = peak_resident_bytes();
  std::vector<double> times;
  if (b.n >= 32768) times.push_back(first);
  while (static_cast<int>(times.size()) < repeats) {
    start = std::chrono::steady_clock::now();
    loss = step();
    times.push_back(seconds_since(start));
  }

  nlohmann::json out = {{"impl", "cwcl"},
                        {"kind", name_of(b.kind)},
                        {"weights", name_of(b.weights)},
                        {"path", name_of(b.path)},
                        {"path_taken", name_of(opt.tiling.path)},
                        {"gamma", b.gamma},
                        {"kernel_tau", b.kernel_tau},
                        {"n", b.n},
                        {"d", b.dim},
                        {"tile", b.tile},
                        {"torch_threads", at::get_num_threads()},
                        {"device", device.str()},
                        {"repeats", repeats},
                        {"seconds", median(times)},
                        {"loss", loss},
                        // host memory: on a GPU it says what stays off the device
                        {"extra_mib", peak_ok ? (peak - rss_before) / 1048576.0 : -1.0}};
  if (b.floor) {
    time_floor(p, q.detach());  // warm-up
    double floor = time_floor(p, q.detach());
    out["floor_seconds"] = floor;
    out["ratio_to_floor"] = median(times) / floor;
  }
  return out.dump();
}

std::string bench_tower(const TowerBenchOptions& b) {
  const auto device = resolve_device(b.device, "--device");
  auto t = make_tower_bench(b, device);
  int64_t rss_before = 0;
  bool peak_ok = false;
  auto out = timed_steps(t, b.precision, device, b.steps, b.batch_size, [&] {
    rss_before = resident_bytes();
    peak_ok = reset_peak_resident_bytes();
  });
  out.update({{"tower", "whisper"},
              {"model", b.model.empty() ? "tiny.en" : b.model},
              {"training", name_of(b.training)},
              {"top_blocks", b.top_blocks},
              {"frames", b.frames},
              {"extra_mib", peak_ok ? (peak_resident_bytes() - rss_before) / 1048576.0 : -1.0}});
  return out.dump();
}

std::string bench_image(const ImageBenchOptions& b) {
  const auto device = resolve_device(b.device, "--device");
  ResNetTowerSpec spec;
  spec.width = b.width;
  spec.blocks = b.blocks;
  spec.image_size = b.image_size;
  auto t = make_bench_tower(spec, b.export_to, device);
  torch::manual_seed(1);  // scripts/bench_image_python.py draws the same batch
  t.input = torch::randn({b.batch_size, 3, b.image_size, b.image_size}).to(device);
  t.p = torch::randn({b.batch_size, kBenchOutDim}, torch::TensorOptions().device(device));
  auto out = timed_steps(t, b.precision, device, b.steps, b.batch_size);
  out.update({{"tower", "resnet"}, {"width", b.width}, {"blocks", b.blocks}, {"image_size", b.image_size}});
  std::ostringstream report;
  report << out.dump() << "\n";
  if (!b.manifest.empty()) report << bench_image_loader(b) << "\n";
  return report.str();
}

std::string bench_steps(const StepsBenchOptions& o) {
  std::ostringstream report;
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
    report << nlohmann::json{{"loader_utterances", utterances}, {"seconds", s}, {"utterances_per_s", utterances / s}}.dump()
           << "\n";
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
    report << nlohmann::json{{"step", steps}, {"loss", loss.item<double>()}, {"frames", batch->mel.size(1)}}.dump()
           << "\n";
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report << nlohmann::json{{"steps", steps}, {"seconds", seconds}, {"steps_per_s", steps / seconds},
                           {"utterances_per_s", static_cast<double>(steps * o.batch_size) / seconds}}.dump()
         << "\n";
  return report.str();
}

}  // namespace cwcl
