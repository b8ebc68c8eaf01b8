// A model left by the trainer: its tower, rebuilt from a model file or
// checkpoint, and what embeds inputs of its modality with it.
#pragma once

#include <cwcl/data/speech.h>
#include <cwcl/device.h>
#include <cwcl/towers/text_tower.h>
#include <cwcl/towers/tower.h>
#include <cwcl/model/config.h>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace cwcl {

class TrainedModel {
 public:
  /// A run directory (its model.pt, else its newest checkpoint) or a .pt
  /// file. Throws DataError naming the file when it is not a cwcl model of
  /// this format or its weights do not fit its configuration.
  static TrainedModel load(const std::string& path);
  /// The tower a training run holds now (shared, not copied), at `step`.
  static TrainedModel of_tower(const TrainConfig& config, TrainedTower tower, int64_t step);

  const TrainConfig& config() const { return config_; }
  Modality modality() const { return tower_->modality(); }
  int64_t step() const { return step_; }
  const std::string& source() const { return source_; }
  TrainedTowerImpl& tower() { return *tower_; }
  /// Moves the tower to `device`; the embed functions take inputs and give
  /// results on the CPU whatever the device.
  TrainedModel& to(const torch::Device& device);
  /// The precision the embed functions run the tower in: Bf16 runs its
  /// forward pass under bfloat16 autocast (as run.precision does in
  /// training), Fp32 (the default) in float32, Auto as resolve_precision
  /// picks for the device the tower is on now (call it after to()).
  /// Embeddings come back as float32 either way.
  TrainedModel& set_precision(Precision precision);
  Precision precision() const { return precision_; }
  /// Whether audio loses its leading and trailing silence before the tower
  /// reads it (data.trim_silence of the model's config, which training
  /// recorded; models from before the key existed trim too).
  TrainedModel& set_trim_silence(bool trim) {
    config_.data.trim_silence = trim;
    return *this;
  }
  /// A hash of every weight and buffer of the tower (names, shapes, bytes):
  /// equal digests mean equal models whatever the run directory or file.
  std::string weights_digest() const;
  /// The frozen text tower the model was trained against.
  TextTower text_tower() const;

  /// Audio files (any format libsndfile reads, any sample rate) -> [N, D]
  /// L2-normalised. An input longer than the tower takes is embedded in
  /// half-overlapping windows of its length, their directions averaged, so
  /// memory stays bounded; files longer than kMaxAudioSeconds, unreadable
  /// ones and clips shorter than the tower needs throw DataError naming the
  /// file (and the limit).
  torch::Tensor embed_audio_files(const std::vector<std::string>& paths);
  /// Waveforms at 16 kHz -> [N, D], as embed_audio_files; `names` name
  /// the inputs in errors.
  torch::Tensor embed_waveforms(const std::vector<torch::Tensor>& waveforms, const std::vector<std::string>& names = {});
  /// Features of a cache built with this model's front end -> [N, D]; towers
  /// that cache pooled outputs reuse those stored in `pooled_store`.
  torch::Tensor embed_cache(const FeatureCache& cache, const std::string& pooled_store = "");
  /// Images as the tower reads them -> [N, D]: uint8 [N, 28, 28] for the
  /// small gray tower, uint8 [N, 3, S, S] (fit_image) for the colour one.
  torch::Tensor embed_images(const torch::Tensor& images);
  /// One image file as embed_images reads it (a row of its input); throws
  /// DataError naming the file when it cannot be read.
  torch::Tensor read_image(const std::string& path) const;
  /// Image files of any size -> [N, D], through the tower's own
  /// preprocessing (colour: fit_image to its size; gray: 28 x 28).
  torch::Tensor embed_image_files(const std::vector<std::string>& paths);
  /// Files of the model's modality (audio or images) -> [N, D].
  torch::Tensor embed_files(const std::vector<std::string>& paths);

 private:
  TrainConfig config_;
  TrainedTower tower_;
  int64_t step_ = 0;
  std::string source_;
  Precision precision_ = Precision::Fp32;

  /// The tower's forward pass in the model's precision, as float32.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& lengths = {});
};

/// How far apart two models' tower weights are (parameters and buffers).
struct WeightsDifference {
  int64_t tensors = 0;
  double max_abs = 0;  ///< largest |a - b| over every element
  double max_rel = 0;  ///< largest |a - b| / max(|b|, 1e-8) over every element
  std::string worst;   ///< the tensor holding max_abs
};

/// Compares two models of the same architecture; throws DataError naming
/// the first tensor whose name or shape differs.
WeightsDifference compare_weights(TrainedModel& a, TrainedModel& b);

/// Where the frozen-side embeddings of a run's training data are kept:
/// data.text_store, or when it is empty beside data.train, named by the
/// text tower (`<train>.<text tower>.store.safetensors`).
std::string text_store_path(const TrainConfig::Data& data, const std::string& text_tower);

/// Where the pooled outputs of the pre-trained weights with `fingerprint`
/// are kept: `stem` (e.g. <features>.pooled.safetensors) with the
/// fingerprint's first 12 characters before the extension, so that each
/// pre-trained model (tiny.en, base) keeps its own store beside one feature
/// cache.
std::string pooled_store_path(const std::string& stem, const std::string& fingerprint);

/// Pooled outputs [N, D] of a tower that caches_pooled() for the rows of a
/// feature cache, kept in the embedding store pooled_store_path(stem,
/// fingerprint) keyed by the fingerprint (of the pre-trained weights) and the
/// ids: a second call reads them back.
torch::Tensor cached_pooled_outputs(TrainedTowerImpl& tower, const std::string& fingerprint,
                                    const FeatureCache& cache, const std::string& stem,
                                    const std::function<void(int64_t, int64_t)>& progress = {});

/// Applies `fn` (mel, lengths) -> [B, D] to the rows of a feature cache the
/// tower accepts (TrainedTowerImpl::accepts) in batches of similar length,
/// on `device`; rows in cache order, on the CPU, zero for the rows left out.
/// Throws DataError when the tower accepts none.
torch::Tensor map_feature_batches(const FeatureCache& cache, const TrainedTowerImpl& tower, const torch::Device& device,
                                  const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& fn,
                                  const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace cwcl
