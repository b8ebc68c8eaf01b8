// The trained tower of any modality behind one interface, built by a factory
// from its spec. The trainer, checkpoints, evaluation and export see only
// this interface; the loss module lives beside the tower, never inside it.
#pragma once

#include <cwcl/audio/audio.h>  // FrontEnd
#include <cwcl/names.h>
#include <cwcl/towers/speech_encoder.h>  // Pooling, ScratchSize
#include <cwcl/towers/whisper.h>         // WhisperTraining
#include <torch/torch.h>

#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace cwcl {

enum class Modality { Speech, Image };

template <>
struct Names<Modality> {
  static constexpr const char* what = "modality";
  static constexpr std::array<std::pair<Modality, const char*>, 2> table{
      {{Modality::Speech, "speech"}, {Modality::Image, "image"}}};
};

/// A pre-trained Whisper encoder, pooling over real frames, an MLP head.
struct WhisperTowerSpec {
  /// "tiny.en" (empty: the default) or "base" from the models cache
  /// (scripts/fetch_models.sh), or a CTranslate2 model folder.
  std::string model;
  WhisperTraining training = WhisperTraining::Frozen;
  int64_t top_blocks = 2;    ///< TopBlocks: how many blocks train
  double layer_decay = 0.8;  ///< learning-rate factor per block below the top one
  Pooling pooling = Pooling::Mean;
  int64_t head_hidden = 512;  ///< 0: a linear head, else Linear-GELU-Linear of this width
};

/// The from-scratch log-mel transformer encoder.
struct ScratchSpeechTowerSpec {
  ScratchSize size = ScratchSize::Small;
  Pooling pooling = Pooling::Mean;
};

/// The small CNN for 28 x 28 images.
struct ImageTowerSpec {
  int64_t width = 16;  ///< channels of the first block
};

/// A ResNet-style colour tower (He et al. 2016, basic blocks) for images of
/// any size, resized and cropped to `image_size` (ResNetOptions).
struct ResNetTowerSpec {
  int64_t width = 32;       ///< channels of the first stage, doubled at each of the three others
  int64_t blocks = 1;       ///< basic blocks per stage
  int64_t image_size = 64;  ///< input side in pixels
  /// Starting weights: a safetensors file with the tower's tensor names (the
  /// export format, `cwcl export`); tensors it lacks keep their
  /// initialisation, a shape mismatch is an error. Empty: from scratch.
  std::string init;
};

using TowerSpec = std::variant<WhisperTowerSpec, ScratchSpeechTowerSpec, ImageTowerSpec, ResNetTowerSpec>;

/// The variant's alternatives by name ("model.tower" in configs).
enum class TowerKind { Whisper, Scratch, Image, ResNet };

template <>
struct Names<TowerKind> {
  static constexpr const char* what = "tower";
  static constexpr std::array<std::pair<TowerKind, const char*>, 4> table{{{TowerKind::Whisper, "whisper"},
                                                                          {TowerKind::Scratch, "scratch"},
                                                                          {TowerKind::Image, "image"},
                                                                          {TowerKind::ResNet, "resnet"}}};
};

/// The pixels an image tower reads: `channels` (1: gray, 3: RGB) at
/// size x size, normalised per channel by its mean and std (of [0, 1]).
struct ImageInput {
  int64_t channels = 1;
  int64_t size = 28;
};

TowerKind tower_kind(const TowerSpec& spec);
/// The spec of a kind with every setting at its default.
TowerSpec default_spec(TowerKind kind);
Modality modality(const TowerSpec& spec);

/// One optimizer group: parameters trained at one base learning rate.
struct ParameterGroup {
  std::string name;
  std::vector<torch::Tensor> parameters;
  double learning_rate = 0;
};

/// Base learning rates a tower splits into its groups.
struct LearningRates {
  double head = 1e-3;     ///< everything newly initialised (heads, pooling, scratch towers)
  double encoder = 1e-4;  ///< the top block of a pre-trained encoder (layer decay below it)
};

class TrainedTowerImpl : public torch::nn::Module {
 public:
  virtual Modality modality() const = 0;
  /// The log-mel front end a speech tower reads; throws UsageError for images.
  virtual FrontEnd front_end() const;
  /// Most input frames the tower embeds whole (0: no limit). Training and
  /// evaluation skip longer clips and count them; zero-shot inference embeds
  /// them in windows of this length (TrainedModel::embed_audio_files).
  virtual int64_t max_frames() const { return 0; }
  /// Fewest input frames the tower can embed (its convolutions' reach);
  /// shorter clips are skipped and counted, or named at inference.
  virtual int64_t min_frames() const { return 1; }
  /// Whether a clip of `frames` frames lies within [min_frames, max_frames].
  bool accepts(int64_t frames) const { return frames >= min_frames() && (max_frames() == 0 || frames <= max_frames()); }
  virtual int64_t output_dim() const = 0;
  /// What an image tower reads; throws UsageError for speech.
  virtual ImageInput image_input() const;
  /// speech: log-mel [B, T, n_mels] and real frame counts [B]; image:
  /// normalised [B, C, S, S] as image_input() says (lengths ignored). -> [B, output_dim].
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& lengths = {}) = 0;
  /// Sets requires_grad as the spec says and returns the groups that train.
  virtual std::vector<ParameterGroup> parameter_groups(const LearningRates& rates) = 0;
  /// Sizes that the spec alone does not fix (read from pre-trained weights),
  /// stored in checkpoints and given back to make_tower.
  virtual std::vector<int64_t> architecture() const { return {}; }

  /// True when the part below the head never trains and has no parameters
  /// in its pooling: its pooled output is a fixed function of the input, so
  /// training may compute it once (pooled) and run only the head.
  virtual bool caches_pooled() const { return false; }
  virtual torch::Tensor pooled(const torch::Tensor& x, const torch::Tensor& lengths = {});
  virtual torch::Tensor head(const torch::Tensor& pooled);
};

using TrainedTower = std::shared_ptr<TrainedTowerImpl>;

enum class TowerWeights {
  Pretrained,  ///< load the pre-trained parts (training from the start)
  Untrained,   ///< shapes only; the weights come from a checkpoint
};

/// Builds the tower a spec describes, with outputs in a space of `out_dim`.
/// `architecture`: what architecture() returned when the checkpoint was
/// written (Untrained only; empty: the spec's defaults).
TrainedTower make_tower(const TowerSpec& spec, int64_t out_dim, TowerWeights weights,
                        const std::vector<int64_t>& architecture = {});

/// Cuts log-mel batches to a tower's max_frames (no-op when 0).
void limit_frames(torch::Tensor& mel, torch::Tensor& lengths, int64_t max_frames);

/// The Whisper model folder of a spec (a name: tiny.en, the default, or base
/// from the models cache; else the folder itself); throws
/// DataError when it has no model.bin.
std::string whisper_folder(const WhisperTowerSpec& spec);
/// Fingerprint of that folder's model.bin (keys cached pooled outputs).
std::string whisper_fingerprint(const WhisperTowerSpec& spec);

}  // namespace cwcl
