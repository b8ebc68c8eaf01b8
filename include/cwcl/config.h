// Training configuration: every field has a default; read from TOML once, at
// the edge, with unknown keys rejected by name.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace cwcl {

/// A configuration error: names the file (or --set) and the key.
class ConfigError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct TrainConfig {
  struct Run {
    std::string out = "runs/train";  ///< the run directory
    int64_t seed = 0;
    int64_t steps = 1000;
    int64_t batch_size = 64;
    int64_t threads = 1;             ///< torch threads (OpenBLAS runs its own)
    int64_t checkpoint_every = 200;  ///< steps; a checkpoint is also written at the end
    int64_t keep_checkpoints = 2;
    int64_t log_every = 10;          ///< steps between metrics.jsonl lines
  } run;
  struct Model {
    std::string tower = "whisper";            ///< whisper, scratch (speech) or image
    std::string whisper_model;                ///< CTranslate2 folder; empty: the models cache
    std::string whisper_training = "frozen";  ///< frozen, top or full
    int64_t top_blocks = 2;
    double layer_decay = 0.8;
    std::string scratch_size = "small";       ///< tiny or small
    std::string pooling = "mean";             ///< mean or attention
    int64_t head_hidden = 512;                ///< whisper head: 0 linear, else a two-layer MLP
    int64_t image_width = 16;
  } model;
  struct Text {
    std::string tower = "minilm";  ///< the frozen tower: minilm, glove-mean, glove-sif, script
    std::string model;             ///< its folder or file; empty: the models cache
  } text;
  struct Data {
    /// speech: a JSONL manifest (id, audio, text); image: the Fashion-MNIST folder.
    std::string train;
    std::string features;    ///< speech feature cache; empty: <train>.<front end>.features.safetensors
    std::string text_store;  ///< frozen-side embedding store; empty: beside the training data
    int64_t limit = 0;       ///< use the first N training examples (0: all)
    bool augment = true;     ///< SpecAugment (speech) or shifts and flips (image)
    std::string classes = "0,1,2,3,4,5,6";  ///< image: the classes seen in training
    double valid_fraction = 0.1;            ///< image: training images held out for validation
    std::string class_names = "data/fashion-mnist/classes.tsv";  ///< image: names and synonyms
    std::string templates = "data/fashion-mnist/templates.txt";  ///< image: caption templates
  } data;
  struct Loss {
    std::string kind = "cwcl";      ///< cl, cwcl, supcon, siglip, cwsiglip
    std::string weights = "affine"; ///< affine, relu, power, kernel, row_minmax, labels, identity
    double gamma = 4.0;
    double kernel_tau = 0.1;
    bool center = false;            ///< subtract the mean frozen embedding before the weights
    /// > 0: set gamma or kernel_tau so that a batch has this many effective
    /// positives per row (calibrate_weights on the first batches).
    double calibrate = 0.0;
    std::string directions = "both";
    double temperature = 0.07;
    bool learn_temperature = true;
  } loss;
  struct Optim {
    double lr = 1e-3;
    double weight_decay = 0.05;
    int64_t warmup = 100;       ///< linear warmup steps, then cosine decay to min_lr
    double min_lr = 0.0;
    double encoder_lr = 1e-4;   ///< Whisper top/full: the top block's rate (layer_decay below it)
    double clip = 1.0;          ///< global gradient-norm clip; 0: none
  } optim;

  /// Reads a TOML file; unknown keys and wrong types throw ConfigError naming
  /// the file and key. Missing keys keep their defaults.
  static TrainConfig from_file(const std::string& path);
  /// Parses TOML text (`source` names it in errors).
  static TrainConfig from_string(const std::string& text, const std::string& source);
  /// Applies "section.key=value" (value in TOML syntax; a bare word is a string).
  void set(const std::string& assignment);
  /// Checks values (ranges, names); throws ConfigError naming the key.
  void validate() const;
  /// The resolved configuration, every field, as TOML.
  std::string to_toml() const;
  /// Every key, "section.key".
  static std::vector<std::string> keys();
  /// Every key with its value in TOML syntax, in key order.
  std::vector<std::pair<std::string, std::string>> values() const;

  bool is_speech() const { return model.tower != "image"; }
};

}  // namespace cwcl
