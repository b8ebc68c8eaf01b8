// Training configuration, typed: enums and a variant of tower specs. Read
// from TOML once, at the edge (unknown keys, wrong types and bad values are
// ConfigErrors naming the file or --set and the key); the library never
// sees the strings.
#pragma once

#include <cwcl/audio/audio.h>
#include <cwcl/device.h>
#include <cwcl/error.h>
#include <cwcl/loss.h>
#include <cwcl/towers/text_tower.h>
#include <cwcl/towers/tower.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace cwcl {

class ConfigOverlay;

struct TrainConfig {
  struct Run {
    std::string out = "runs/train";  ///< the run directory
    int64_t seed = 0;
    int64_t steps = 1000;
    int64_t batch_size = 64;         ///< the global contrastive batch, split over ranks and accum_steps
    /// GradCache (Gao et al. 2021): embed each rank's share of the batch in
    /// this many chunks; the loss stays over the whole global batch.
    int64_t accum_steps = 1;
    double dist_timeout = 300;       ///< seconds a rank waits for its peers before failing (distributed runs)
    int64_t threads = 1;             ///< torch threads during training (OpenBLAS runs its own)
    int64_t checkpoint_every = 200;  ///< steps; a checkpoint is also written at the end
    int64_t keep_checkpoints = 2;
    int64_t log_every = 10;          ///< steps between metrics.jsonl lines
    /// Steps between validations (results.jsonl, best.pt); 0: none. Needs
    /// eval.manifest for speech; images use the held-out training images.
    int64_t eval_every = 0;
    /// The trained tower, loss, optimizer state and batches (DeviceSpec).
    DeviceSpec device;
    /// bf16: the trained tower's forward pass under bfloat16 autocast; auto:
    /// bf16 where the device computes it fast (resolved when training starts).
    Precision precision = Precision::Fp32;
  } run;
  /// The trained tower ("model.tower" picks the alternative; the other
  /// "model.*" keys belong to one alternative each).
  TowerSpec model = WhisperTowerSpec{};
  struct Text {
    TextTowerKind tower = TextTowerKind::MiniLM;  ///< the frozen tower
    std::string model;                            ///< its folder or file; empty: the models cache
  } text;
  struct Data {
    /// speech: a JSONL manifest (id, audio, text); resnet: a JSONL image
    /// manifest (id, image, text or texts, optional label); image: the
    /// Fashion-MNIST folder.
    std::string train;
    std::string features;    ///< speech feature cache; empty: <train>.<front end>.features.safetensors
    std::string text_store;  ///< frozen-side embedding store; empty: beside the training data
    int64_t limit = 0;       ///< use the first N training examples (0: all)
    bool augment = true;     ///< SpecAugment (speech), shifts and flips (image), random resized crops and colour jitter (resnet)
    /// speech: waveform-augmented copies of each clip in the feature cache;
    /// each epoch draws one version per clip, the clean one included
    /// (pick_copies).
    int64_t audio_copies = 0;
    /// speech: how each copy is augmented ("data.copy_augment.*": speed, a
    /// room, gain, noise). Another choice than the defaults gets a cache of
    /// its own (feature_cache_path).
    WaveAugmentOptions copy_augment;
    /// speech: vocal-tract-length perturbation of each copy
    /// ("data.copy_augment.min_warp", "max_warp"; 1, 1: none).
    WarpAugmentOptions copy_warp;
    /// speech: cut leading and trailing silence from every clip before its
    /// features (SilenceTrimOptions), in training, evaluation and zero-shot
    /// alike; recorded clips carry a second of it, synthesised ones none.
    bool trim_silence = true;
    std::vector<int64_t> classes = {0, 1, 2, 3, 4, 5, 6};  ///< image: the classes seen in training
    double valid_fraction = 0.1;  ///< image: training images held out for validation
    std::string class_names;      ///< image: names and synonyms (empty: fashion-mnist/classes.tsv of cwcl's data)
    std::string templates;        ///< image: caption templates (empty: fashion-mnist/templates.txt of cwcl's data)
  } data;
  /// Validation during training (run.eval_every): a labelled manifest.
  struct Eval {
    std::string manifest;               ///< speech: JSONL with audio and a label field (e.g. SLURP devel); resnet: an image manifest with labels
    std::string label_field = "intent";
    std::string labels;                 ///< TSV class<TAB>text; empty: the class names are the texts
    std::string templates;              ///< optional prompt templates for the label texts
  } eval;
  struct Loss {
    LossKind kind = LossKind::CWCL;
    WeightMap weights = WeightMap::Affine;
    double gamma = 4.0;
    double kernel_tau = 0.1;
    bool center = false;  ///< subtract the mean frozen embedding before the weights
    /// > 0: set gamma or kernel_tau so that a batch has this many effective
    /// positives per row (calibrate_weights on the first batches).
    double calibrate = 0.0;
    WeightedDirections directions = WeightedDirections::Both;
    double cosine_weight = 0.0;  ///< adds this times mean(1 - cos(p_i, q_i)) to the loss (LossOptions)
    double temperature = 0.07;
    bool learn_temperature = true;
    /// The loss's implementation. auto: a single process measures the
    /// plain and the tiled path at the start of a run (measure_loss_path)
    /// and records the faster in the resolved configuration; ranks keep
    /// the batch-size rule.
    LossPath path = LossPath::Auto;
  } loss;
  struct Optim {
    double lr = 1e-3;
    double weight_decay = 0.05;
    int64_t warmup = 100;      ///< linear warmup steps, then cosine decay to min_lr
    double min_lr = 0.0;
    double encoder_lr = 1e-4;  ///< pre-trained encoder blocks: the top block's rate (layer decay below it)
    double clip = 1.0;         ///< global gradient-norm clip; 0: none
  } optim;

  /// Reads a TOML file. Missing keys keep their defaults.
  static TrainConfig from_file(const std::string& path);
  /// Sets the keys an overlay holds (model.tower first), as a file would.
  void apply(const ConfigOverlay& overlay);
  /// Parses TOML text (`source` names it in errors).
  static TrainConfig from_string(const std::string& text, const std::string& source);
  /// Applies "section.key=value" (value in TOML syntax; a bare word is a
  /// string). Setting model.tower resets the tower's other keys to defaults.
  /// A value that is not valid TOML but starts like TOML (a quote, a
  /// bracket, a brace), is empty or holds a line break is refused naming
  /// the key: a typo, not a bare word.
  void set(const std::string& assignment);
  /// Checks ranges and combinations; throws ConfigError naming the key.
  void validate() const;
  /// Checks that `ranks` ranks x run.accum_steps chunks divide the global
  /// batch; throws ConfigError naming run.batch_size.
  void validate_split(int64_t ranks) const;
  /// The resolved configuration, every key of the chosen tower, as TOML.
  std::string to_toml() const;
  /// Every key any configuration accepts, "section.key".
  static std::vector<std::string> keys();
  /// Whether a resumed run may give `key` another value than the run it
  /// resumes (marked in the key table): run.out, run.steps, run.accum_steps,
  /// run.dist_timeout, run.threads, run.checkpoint_every,
  /// run.keep_checkpoints, run.log_every, run.eval_every, run.device, eval.*,
  /// and loss.gamma / loss.kernel_tau (calibrated, restored from the checkpoint).
  static bool may_change_on_resume(const std::string& key);
  /// The keys of this configuration with their values in TOML syntax, in key order.
  std::vector<std::pair<std::string, std::string>> values() const;

  Modality modality() const { return cwcl::modality(model); }
  /// True for the colour tower (model.tower = "resnet"): data.train and
  /// eval.manifest are image manifests (read_image_manifest). The small
  /// image tower reads Fashion-MNIST and validates on its held-out images.
  bool image_manifests() const { return std::holds_alternative<ResNetTowerSpec>(model); }
  /// The loss options these settings describe (no centre, labels or gather).
  LossOptions loss_options() const;
  /// The frozen tower these settings describe.
  TextTowerOptions text_tower_options() const;
  /// data.class_names and data.templates, or cwcl's bundled files when empty.
  std::string class_names_file() const;
  std::string templates_file() const;
};

/// Keys and values to set on a configuration (a TOML table: a preset, a
/// loss variant), parsed once and applied through the same key table as
/// files and --set, so every value lands typed. Cheap to copy.
class ConfigOverlay {
 public:
  /// TOML text (`source` names it in errors); throws ConfigError naming the
  /// source and line when it does not parse.
  static ConfigOverlay parse(const std::string& toml_text, const std::string& source);
  /// A TOML file.
  static ConfigOverlay read(const std::string& path);
  const std::string& source() const { return source_; }
  /// The keys it sets, "section.key", in the order it holds them.
  std::vector<std::string> keys() const;

 private:
  friend struct TrainConfig;
  struct Table;
  std::shared_ptr<const Table> table_;
  std::string source_;
};

}  // namespace cwcl
