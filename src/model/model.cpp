#include <cwcl/audio/audio.h>
#include <cwcl/data/fashion_mnist.h>
#include <cwcl/data/images.h>
#include <cwcl/error.h>
#include <cwcl/io/store.h>
#include <cwcl/model/model_file.h>
#include <cwcl/model/model.h>

#include <torch/version.h>

#include <filesystem>
#include <numeric>
#include <sstream>

namespace cwcl {
namespace {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

torch::Tensor unit_rows(const torch::Tensor& x) { return F::normalize(x, F::NormalizeFuncOptions().dim(1)); }

// Pads features [T_i, n_mels] into batches of similar length and yields them
// as SpeechBatch, so that waveforms and caches share one embedding loop.
class FeatureBatches {
 public:
  explicit FeatureBatches(std::vector<torch::Tensor> features) : features_(std::move(features)) {
    order_.resize(features_.size());
    std::iota(order_.begin(), order_.end(), 0);
    std::sort(order_.begin(), order_.end(),
              [&](int64_t a, int64_t b) { return frames(a) < frames(b); });
  }
  std::optional<SpeechBatch> next() {
    if (at_ >= order_.size()) return std::nullopt;
    const size_t end = std::min(order_.size(), at_ + 32);
    SpeechBatch b;
    b.indices.assign(order_.begin() + static_cast<long>(at_), order_.begin() + static_cast<long>(end));
    int64_t longest = 0;
    for (auto i : b.indices) longest = std::max(longest, frames(i));
    b.mel = torch::zeros({static_cast<int64_t>(b.indices.size()), longest, features_[0].size(1)});
    b.lengths = torch::empty({static_cast<int64_t>(b.indices.size())}, torch::kLong);
    for (size_t r = 0; r < b.indices.size(); ++r) {
      const auto& f = features_[static_cast<size_t>(b.indices[r])];
      b.mel[static_cast<int64_t>(r)].narrow(0, 0, f.size(0)).copy_(f);
      b.lengths[static_cast<int64_t>(r)] = f.size(0);
    }
    at_ = end;
    return b;
  }

 private:
  int64_t frames(int64_t i) const { return features_[static_cast<size_t>(i)].size(0); }
  std::vector<torch::Tensor> features_;
  std::vector<int64_t> order_;
  size_t at_ = 0;
};

using MelFn = std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>;

// The one embedding loop: batches from `next` (whose clips the tower
// accepts), moved to `device`, through fn; rows written back in input order,
// on the CPU. Rows no batch holds stay zero.
template <class Next>
torch::Tensor map_batches(int64_t count, Next&& next, const torch::Device& device, const MelFn& fn,
                          const std::function<void(int64_t, int64_t)>& progress = {}) {
  torch::NoGradGuard no_grad;
  torch::Tensor out;
  int64_t done = 0;
  while (auto b = next()) {
    auto y = fn(b->mel.to(device), b->lengths.to(device)).cpu();
    if (!out.defined()) out = torch::zeros({count, y.size(1)});
    out.index_copy_(0, torch::tensor(b->indices, torch::kLong), y);
    done += static_cast<int64_t>(b->indices.size());
    if (progress) progress(done, count);
  }
  if (!out.defined()) throw DataError("nothing to embed: no clip lies within the tower's length limits");
  return out;
}

// An input's log-mel features cut into windows of the tower's length: the
// whole input when it fits; else windows of max_frames, half overlapping,
// the last one ending with the input. Short inputs are refused naming them.
std::vector<torch::Tensor> windows_of(const torch::Tensor& features, const TrainedTowerImpl& tower,
                                      const std::string& name, double seconds) {
  const int64_t t = features.size(0), max = tower.max_frames();
  if (t < tower.min_frames()) {
    std::ostringstream m;
    m << name << ": " << seconds << " s of audio (" << t << " feature frames), fewer than the " << tower.min_frames()
      << " frames the tower needs";
    throw DataError(m.str());
  }
  if (max == 0 || t <= max) return {features};
  std::vector<torch::Tensor> out;
  const int64_t hop = max / 2;
  for (int64_t start = 0;; start += hop) {
    const int64_t at = std::min(start, t - max);
    out.push_back(features.narrow(0, at, max));
    if (at == t - max) break;
  }
  return out;
}

std::string model_path(const std::string& path) {
  if (!fs::is_directory(path)) return path;
  const auto file = (fs::path(path) / "model.pt").string();
  if (fs::exists(file)) return file;
  auto all = list_checkpoints(path);
  if (all.empty()) throw DataError(path + ": no model.pt and no checkpoints (not a run directory?)");
  return all.back();
}

}  // namespace

torch::Tensor map_feature_batches(const FeatureCache& cache, const TrainedTowerImpl& tower, const torch::Device& device,
                                  const MelFn& fn, const std::function<void(int64_t, int64_t)>& progress) {
  LoaderOptions o;
  o.batch_size = 32;
  o.workers = 1;
  for (int64_t i = 0; i < cache.size(); ++i)
    if (tower.accepts(cache.frames(i))) o.rows.push_back(i);
  if (o.rows.empty()) throw DataError("nothing to embed: no clip of the feature cache lies within the tower's limits");
  SpeechLoader loader(cache, o);
  return map_batches(cache.size(), [&] { return loader.next(); }, device, fn, progress);
}

TrainedModel TrainedModel::load(const std::string& path) {
  const auto file = model_path(path);
  auto m = ModelFile::open(file);
  TrainedModel out;
  out.config_ = m.header().config;
  out.tower_ = make_tower(out.config_.model, m.header().out_dim, TowerWeights::Untrained, m.header().architecture);
  m.load("tower", *out.tower_);
  for (const auto& t : out.tower_->named_parameters())
    if (!torch::isfinite(t.value()).all().item<bool>())
      throw DataError(file + ": weight '" + t.key() + "' is not finite (a diverged run's file?); not used");
  out.tower_->eval();
  out.step_ = m.header().step;
  out.source_ = file;
  return out;
}

TrainedModel& TrainedModel::to(const torch::Device& device) {
  tower_->to(device);
  return *this;
}

TrainedModel& TrainedModel::set_precision(Precision precision) {
  const auto device = device_of(*tower_);
#if TORCH_VERSION_MAJOR < 2
  // libtorch 1.13's TransformerEncoder has no bf16 masked_fill on the CPU:
  // say so here rather than fail inside the first forward pass; Auto keeps
  // float32 there.
  if (std::holds_alternative<ScratchSpeechTowerSpec>(config_.model) && device.is_cpu()) {
    if (precision == Precision::Bf16)
      throw UsageError(source_ + ": the from-scratch speech tower cannot run in bf16 on the CPU with libtorch " +
                       TORCH_VERSION + "; use fp32");
    precision = Precision::Fp32;
  }
#endif
  precision_ = resolve_precision(precision, device);
  return *this;
}

torch::Tensor TrainedModel::forward(const torch::Tensor& x, const torch::Tensor& lengths) {
  AutocastScope autocast(precision_, device_of(*tower_));
  return tower_->forward(x, lengths).to(torch::kFloat);
}

TrainedModel TrainedModel::of_tower(const TrainConfig& config, TrainedTower tower, int64_t step) {
  TrainedModel out;
  out.config_ = config;
  out.tower_ = std::move(tower);
  out.step_ = step;
  out.source_ = config.run.out + " (step " + std::to_string(step) + ", in training)";
  return out;
}

std::string TrainedModel::weights_digest() const {
  std::string bytes;
  auto add = [&](const std::string& name, const torch::Tensor& t) {
    auto c = t.detach().contiguous().cpu();
    bytes += name + c10::str(c.sizes());
    bytes.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  };
  for (const auto& p : tower_->named_parameters()) add(p.key(), p.value());
  for (const auto& b : tower_->named_buffers()) add(b.key(), b.value());
  return content_key("weights", bytes);
}

WeightsDifference compare_weights(TrainedModel& a, TrainedModel& b) {
  auto named = [](TrainedModel& m) {
    auto all = m.tower().named_parameters();
    for (const auto& buffer : m.tower().named_buffers()) all.insert(buffer.key(), buffer.value());
    return all;
  };
  const auto ta = named(a), tb = named(b);
  if (ta.size() != tb.size())
    throw DataError(a.source() + " and " + b.source() + ": " + std::to_string(ta.size()) + " and " +
                    std::to_string(tb.size()) + " tensors; not the same architecture");
  WeightsDifference d;
  for (const auto& item : ta) {
    const auto* other = tb.find(item.key());
    if (other == nullptr || other->sizes() != item.value().sizes())
      throw DataError(b.source() + ": tensor '" + item.key() + "' is missing or shaped differently than in " +
                      a.source());
    auto x = item.value().detach().to(torch::kDouble), y = other->detach().to(torch::kDouble);
    ++d.tensors;
    if (x.numel() == 0) continue;
    const auto diff = (x - y).abs();
    const double abs = diff.max().item<double>();
    d.max_rel = std::max(d.max_rel, (diff / y.abs().clamp_min(1e-8)).max().item<double>());
    if (abs > d.max_abs || d.worst.empty()) {
      d.max_abs = std::max(d.max_abs, abs);
      d.worst = item.key();
    }
  }
  return d;
}

TextTower TrainedModel::text_tower() const { return load_text_tower(config_.text_tower_options()); }

torch::Tensor TrainedModel::embed_waveforms(const std::vector<torch::Tensor>& waveforms,
                                            const std::vector<std::string>& names) {
  if (modality() != Modality::Speech) throw UsageError(source_ + " is an image model: it cannot embed audio");
  LogMel log_mel;
  WhisperLogMel whisper_mel;
  std::vector<torch::Tensor> windows;
  std::vector<int64_t> owner;  // the input each window belongs to
  for (size_t i = 0; i < waveforms.size(); ++i) {
    // The tower reads clips as its training and evaluation caches held them.
    const auto wave = config_.data.trim_silence ? trim_silence(waveforms[i], 16000) : waveforms[i];
    const auto features = tower_->front_end() == FrontEnd::Whisper ? whisper_mel(wave) : log_mel(wave);
    const auto name = i < names.size() ? names[i] : "input " + std::to_string(i + 1);
    for (auto& w : windows_of(features, *tower_, name, static_cast<double>(wave.size(0)) / 16000.0)) {
      windows.push_back(w);
      owner.push_back(static_cast<int64_t>(i));
    }
  }
  FeatureBatches batches(std::move(windows));
  auto fn = [this](const torch::Tensor& mel, const torch::Tensor& lengths) { return forward(mel, lengths); };
  const auto per_window = unit_rows(map_batches(static_cast<int64_t>(owner.size()), [&] { return batches.next(); },
                                                device_of(*tower_), fn));
  // A long input is the mean of its windows' directions.
  auto sums = torch::zeros({static_cast<int64_t>(waveforms.size()), per_window.size(1)});
  sums.index_add_(0, torch::tensor(owner, torch::kLong), per_window);
  return unit_rows(sums);
}

torch::Tensor TrainedModel::embed_audio_files(const std::vector<std::string>& paths) {
  std::vector<torch::Tensor> waves;
  for (const auto& p : paths) waves.push_back(load_audio(p, 16000));
  return embed_waveforms(waves, paths);
}

torch::Tensor TrainedModel::embed_cache(const FeatureCache& cache, const std::string& pooled_store) {
  if (modality() != Modality::Speech) throw UsageError(source_ + " is an image model: it cannot embed audio");
  if (cache.front_end() != tower_->front_end())
    throw UsageError("embed_cache: the feature cache holds " + std::string(name_of(cache.front_end())) +
                     " features, the model needs " + name_of(tower_->front_end()));
  torch::NoGradGuard no_grad;
  if (tower_->caches_pooled() && !pooled_store.empty()) {
    const auto fingerprint = whisper_fingerprint(std::get<WhisperTowerSpec>(config_.model));
    const auto pooled = cached_pooled_outputs(*tower_, fingerprint, cache, pooled_store);
    AutocastScope autocast(precision_, device_of(*tower_));
    return unit_rows(tower_->head(pooled.to(device_of(*tower_))).to(torch::kFloat).cpu());
  }
  return unit_rows(map_feature_batches(cache, *tower_, device_of(*tower_),
                                       [this](const auto& mel, const auto& lengths) { return forward(mel, lengths); }));
}

torch::Tensor TrainedModel::embed_images(const torch::Tensor& images) {
  if (modality() != Modality::Image) throw UsageError(source_ + " is a speech model: it cannot embed images");
  const auto input = tower_->image_input();
  const bool colour = input.channels == 3;
  if (colour ? (images.dim() != 4 || images.size(1) != 3) : images.dim() != 3) {
    std::ostringstream m;
    m << source_ << ": expected uint8 images " << (colour ? "[N, 3, S, S]" : "[N, 28, 28]") << ", got "
      << images.sizes();
    throw UsageError(m.str());
  }
  torch::NoGradGuard no_grad;
  const auto device = device_of(*tower_);
  std::vector<torch::Tensor> parts;
  for (int64_t s = 0; s < images.size(0); s += 256) {
    const auto part = images.narrow(0, s, std::min<int64_t>(256, images.size(0) - s));
    const auto x = colour ? normalise_colour(part) : normalise_images(part);
    parts.push_back(forward(x.to(device)).cpu());
  }
  return unit_rows(torch::cat(parts, 0));
}

torch::Tensor TrainedModel::read_image(const std::string& path) const {
  if (modality() != Modality::Image) throw UsageError(source_ + " is a speech model: it cannot embed images");
  const auto input = tower_->image_input();
  return input.channels == 3 ? fit_image(read_rgb_image(path), input.size) : load_image(path);
}

torch::Tensor TrainedModel::embed_image_files(const std::vector<std::string>& paths) {
  std::vector<torch::Tensor> images;
  for (const auto& p : paths) images.push_back(read_image(p));
  return embed_images(torch::stack(images));
}

torch::Tensor TrainedModel::embed_files(const std::vector<std::string>& paths) {
  return modality() == Modality::Speech ? embed_audio_files(paths) : embed_image_files(paths);
}

std::string text_store_path(const TrainConfig::Data& data, const std::string& text_tower) {
  return data.text_store.empty() ? data.train + "." + text_tower + ".store.safetensors" : data.text_store;
}

std::string pooled_store_path(const std::string& stem, const std::string& fingerprint) {
  const fs::path p(stem);
  return (p.parent_path() / (p.stem().string() + "." + fingerprint.substr(0, 12) + p.extension().string())).string();
}

torch::Tensor cached_pooled_outputs(TrainedTowerImpl& tower, const std::string& fingerprint, const FeatureCache& cache,
                                    const std::string& stem,
                                    const std::function<void(int64_t, int64_t)>& progress) {
  TORCH_CHECK(tower.caches_pooled(), "cached_pooled_outputs: the tower's pooled outputs are not fixed");
  const auto store_path = pooled_store_path(stem, fingerprint);
  if (cache.front_end() != tower.front_end())
    throw UsageError(store_path + ": the feature cache does not hold the tower's front end");
  const auto key = "pooled:" + fingerprint;
  std::vector<std::string> ids;
  for (int64_t i = 0; i < cache.size(); ++i) ids.push_back(cache.id(i));
  if (fs::exists(store_path)) {
    auto store = EmbeddingStore::read(store_path);
    if (store.tower() == key && store.size() == cache.size()) {
      try {
        return store.lookup_ids(ids);
      } catch (const std::exception&) {
        // the cache was rebuilt with other ids: compute again
      }
    }
  }
  const bool was_training = tower.is_training();
  tower.eval();
  auto out = map_feature_batches(
      cache, tower, device_of(tower),
      [&](const torch::Tensor& mel, const torch::Tensor& lengths) { return tower.pooled(mel, lengths); }, progress);
  tower.train(was_training);
  EmbeddingStore(out, ids, std::vector<std::string>(ids.size()), key).write(store_path);
  return out;
}

}  // namespace cwcl
