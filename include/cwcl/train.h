// The trainer: a tower for the new modality learns to land in a frozen text
// tower's space (docs/PAPER.md), and the model it leaves in its run directory.
//
// A run directory holds config.toml (the resolved configuration),
// metrics.jsonl, checkpoints/step-<N>.pt and, at the end, model.pt.
#pragma once

#include <cwcl/config.h>
#include <cwcl/data.h>
#include <cwcl/image.h>
#include <cwcl/loss.h>
#include <cwcl/speech_encoder.h>
#include <cwcl/text_tower.h>
#include <cwcl/whisper.h>
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cwcl {

/// The trained tower of any modality, plus the loss module (its learned
/// temperature), as one module so that one archive holds both.
struct TowerImpl : torch::nn::Module {
  /// Builds the tower the configuration names. `pretrained`: load Whisper's
  /// published weights (training); otherwise its weights come from a checkpoint.
  TowerImpl(const TrainConfig& config, int64_t out_dim, bool pretrained);
  /// speech: log-mel [B, T, 80] (the tower's front end) and frame counts [B];
  /// image: normalised [B, 1, 28, 28] (lengths undefined). -> [B, out_dim].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& lengths = {});
  /// Whisper towers whose encoder is frozen: the head alone on pooled encoder outputs.
  torch::Tensor head(const torch::Tensor& pooled);
  /// True when the encoder does not train (frozen Whisper with mean pooling):
  /// training then runs on pooled encoder outputs computed once.
  bool trains_on_pooled() const;
  FrontEnd front_end() const;

  TrainConfig config;
  SpeechEncoder scratch{nullptr};
  WhisperTower whisper{nullptr};
  ImageEncoder image{nullptr};
  ContrastiveLoss criterion{nullptr};
};
TORCH_MODULE(Tower);

/// Mean-pooled encoder outputs [N, D] of a frozen Whisper encoder for the
/// rows of a feature cache (Whisper front end), cached in `store_path`
/// (an embedding store keyed by the encoder's fingerprint and the ids):
/// a second call with the same encoder reads them back.
torch::Tensor whisper_pooled_features(WhisperTowerImpl& tower, const std::string& encoder_fingerprint,
                                      const FeatureCache& cache, const std::string& store_path,
                                      const std::function<void(int64_t, int64_t)>& progress = {});

struct TrainProgress {
  int64_t step = 0, steps = 0;
  double loss = 0, logit_scale = 0, lr = 0, samples_per_second = 0, eta_seconds = 0;
};

struct TrainOptions {
  bool resume = false;  ///< continue from the newest checkpoint in the run directory
  std::function<void(const TrainProgress&)> progress;  ///< after every step
  std::function<void(const std::string&)> log;         ///< one-line messages (data preparation, checkpoints)
};

struct TrainSummary {
  std::string run_dir;
  int64_t steps = 0, start_step = 0;
  double seconds = 0, final_loss = 0;
  int64_t skipped = 0;  ///< training examples skipped (unreadable audio, bad manifest lines)
};

/// Trains as `config` says (config.validate() first). Throws ConfigError for a
/// bad configuration, std::invalid_argument for unusable data.
TrainSummary train(const TrainConfig& config, const TrainOptions& options = {});

/// A model left by train(): the run directory's model.pt or a checkpoint.
class TrainedModel {
 public:
  /// A run directory (its model.pt, else its newest checkpoint) or a .pt
  /// file. Throws naming the file when it is not a cwcl model or its weights
  /// do not fit the architecture its configuration describes.
  static TrainedModel load(const std::string& path);

  const TrainConfig& config() const { return tower_->config; }
  bool is_speech() const { return tower_->config.is_speech(); }
  int64_t step() const { return step_; }
  const std::string& source() const { return source_; }
  Tower& tower() { return tower_; }
  /// A hash of every weight and buffer (names, shapes, bytes): equal digests
  /// mean equal models whatever the run directory or file.
  std::string weights_digest() const;
  /// The frozen text tower the model was trained against.
  TextTower text_tower() const;

  /// Audio files (any format libsndfile reads, any sample rate) -> [N, D]
  /// L2-normalised. Unreadable files throw naming the file.
  torch::Tensor embed_audio_files(const std::vector<std::string>& paths);
  /// Waveforms at 16 kHz -> [N, D].
  torch::Tensor embed_waveforms(const std::vector<torch::Tensor>& waveforms);
  /// Features of a cache built with this model's front end -> [N, D]; frozen
  /// Whisper towers reuse pooled outputs cached beside it (`pooled_store`).
  torch::Tensor embed_cache(const FeatureCache& cache, const std::string& pooled_store = "");
  /// uint8 [N, 28, 28] images -> [N, D].
  torch::Tensor embed_images(const torch::Tensor& images);
  /// Image files -> [N, D].
  torch::Tensor embed_image_files(const std::vector<std::string>& paths);

 private:
  Tower tower_{nullptr};
  int64_t step_ = 0;
  std::string source_;
};

/// Fingerprint of the Whisper checkpoint a config names (keys pooled caches).
std::string whisper_fingerprint(const TrainConfig& config);
/// The Whisper model folder a config names (the models cache when empty).
std::string whisper_folder(const TrainConfig& config);

/// Image captions for training: every template with every name or synonym of
/// a class (classes.tsv: label<TAB>name<TAB>synonyms separated by commas).
struct CaptionSet {
  std::vector<std::string> names;                     ///< per label 0..9
  std::vector<std::vector<std::string>> synonyms;     ///< per label, the name first
  static CaptionSet read(const std::string& classes_tsv);
  /// Captions of one class under these templates.
  std::vector<std::string> captions(int64_t label, const std::vector<std::string>& templates) const;
};

/// The image training set of a config (its seen classes) split by a seeded
/// permutation into training rows and the held-out validation rows.
struct ImageSplit {
  ImageSet train, valid;
};
ImageSplit image_split(const TrainConfig& config);

/// "0,1,2" -> {0, 1, 2}; throws ConfigError naming `key`.
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& key);

}  // namespace cwcl
