// TrainConfig's range and combination checks: every message names the key.
#include <cwcl/model/config.h>

#include <algorithm>
#include <limits>
#include <set>

namespace cwcl {
namespace {

void check(bool ok, const std::string& key, const std::string& why) {
  if (!ok) throw ConfigError("config key '" + key + "': " + why);
}

void validate_tower(const TowerSpec& spec) {
  if (const auto* w = std::get_if<WhisperTowerSpec>(&spec)) {
    check(w->top_blocks >= 1, "model.top_blocks", "must be >= 1");
    check(w->layer_decay > 0 && w->layer_decay <= 1, "model.layer_decay", "must be in (0, 1]");
    check(w->head_hidden >= 0, "model.head_hidden", "must be >= 0");
  } else if (const auto* i = std::get_if<ImageTowerSpec>(&spec)) {
    check(i->width >= 1, "model.image_width", "must be >= 1");
  } else if (const auto* r = std::get_if<ResNetTowerSpec>(&spec)) {
    check(r->width >= 1 && r->width <= 512, "model.resnet_width", "must be in [1, 512]");
    check(r->blocks >= 1 && r->blocks <= 16, "model.resnet_blocks", "must be in [1, 16]");
    check(r->image_size >= 16 && r->image_size <= 1024, "model.image_size", "must be in [16, 1024] pixels");
  }
}

void check_copy_augment(const WaveAugmentOptions& o) {
  const std::string k = "data.copy_augment.";
  // A factor past 2 (or under 0.5) leaves an octave's pitch shift, not a voice.
  check(o.min_speed >= 0.5 && o.min_speed <= 2, k + "min_speed", "must be in [0.5, 2]");
  check(o.max_speed >= o.min_speed && o.max_speed <= 2, k + "max_speed", "must be in [min_speed, 2]");
  check(o.reverb_probability >= 0 && o.reverb_probability <= 1, k + "reverb_probability", "must be in [0, 1]");
  check(o.min_rt60 > 0 && o.min_rt60 <= 10, k + "min_rt60", "must be in (0, 10] seconds");
  check(o.max_rt60 >= o.min_rt60 && o.max_rt60 <= 10, k + "max_rt60", "must be in [min_rt60, 10] seconds");
  check(o.max_drr_db >= o.min_drr_db, k + "max_drr_db", "must be >= min_drr_db");
  check(o.max_gain_db >= 0, k + "max_gain_db", "must be >= 0");
  check(o.noise_probability >= 0 && o.noise_probability <= 1, k + "noise_probability", "must be in [0, 1]");
  check(o.max_snr_db >= o.min_snr_db, k + "max_snr_db", "must be >= min_snr_db");
}

void check_copy_warp(const WarpAugmentOptions& o) {
  const std::string k = "data.copy_augment.";
  check(o.min_factor >= 0.5 && o.min_factor <= 2, k + "min_warp", "must be in [0.5, 2]");
  check(o.max_factor >= o.min_factor && o.max_factor <= 2, k + "max_warp", "must be in [min_warp, 2]");
}

}  // namespace

void TrainConfig::validate_split(int64_t ranks) const {
  check(run.batch_size % (ranks * run.accum_steps) == 0, "run.batch_size",
        "the global batch (" + std::to_string(run.batch_size) + ") must be divisible by " + std::to_string(ranks) +
            " ranks x " + std::to_string(run.accum_steps) + " run.accum_steps");
}

void TrainConfig::validate() const {
  check(!run.out.empty(), "run.out", "must not be empty");
  check(run.out.size() < 4096, "run.out", "is " + std::to_string(run.out.size()) + " characters, longer than a path can be");
  check(run.steps >= 1, "run.steps", "must be >= 1");
  check(run.batch_size >= 2, "run.batch_size", "must be >= 2 (a contrastive batch)");
  check(run.threads >= 1, "run.threads", "must be >= 1");
  check(run.accum_steps >= 1, "run.accum_steps", "must be >= 1");
  check(run.batch_size % run.accum_steps == 0, "run.accum_steps",
        "must divide run.batch_size = " + std::to_string(run.batch_size));
  check(run.dist_timeout > 0, "run.dist_timeout", "must be > 0 seconds");
  check(run.eval_every >= 0, "run.eval_every", "must be >= 0 (0: no validation)");
  check(run.eval_every == 0 || (modality() == Modality::Image && !image_manifests()) || !eval.manifest.empty(),
        "eval.manifest", "must name a labelled manifest when run.eval_every > 0");
  check(run.checkpoint_every >= 1, "run.checkpoint_every", "must be >= 1");
  check(run.keep_checkpoints >= 1, "run.keep_checkpoints", "must be >= 1");
  check(run.log_every >= 1, "run.log_every", "must be >= 1");
  validate_tower(model);
  check(text.tower != TextTowerKind::Store || !text.model.empty(), "text.model",
        "text.tower = \"store\" needs the store (.safetensors) whose ids are the texts");
  check(!data.train.empty(), "data.train", "must name the training data");
  check(data.limit >= 0, "data.limit", "must be >= 0");
  check(data.audio_copies >= 0 && data.audio_copies <= 16, "data.audio_copies", "must be in [0, 16]");
  check_copy_augment(data.copy_augment);
  check_copy_warp(data.copy_warp);
  check(!data.classes.empty(), "data.classes", "must name at least one class");
  check(std::set<int64_t>(data.classes.begin(), data.classes.end()).size() == data.classes.size(), "data.classes",
        "names a class twice");
  check(*std::min_element(data.classes.begin(), data.classes.end()) >= 0, "data.classes", "classes are >= 0");
  check(data.valid_fraction >= 0 && data.valid_fraction < 1, "data.valid_fraction", "must be in [0, 1)");
  check(loss.weights != WeightMap::Custom, "loss.weights", "custom weights need the library API, not a config");
  check(loss.gamma > 0, "loss.gamma", "must be > 0");
  check(loss.kernel_tau > 0, "loss.kernel_tau", "must be > 0");
  check(loss.calibrate >= 0, "loss.calibrate", "must be >= 0");
  check(loss.calibrate == 0 || loss.weights == WeightMap::Kernel || loss.weights == WeightMap::Power,
        "loss.calibrate", "needs loss.weights = kernel or power");
  check(loss.calibrate == 0 || loss.calibrate < static_cast<double>(run.batch_size), "loss.calibrate",
        "asks for more effective positives per row than a batch of run.batch_size = " + std::to_string(run.batch_size) +
            " rows has");
  check(loss.temperature > 0, "loss.temperature", "must be > 0");
  check(loss.cosine_weight >= 0, "loss.cosine_weight", "must be >= 0");
  check(loss.kind != LossKind::Cosine || loss.cosine_weight == 0, "loss.cosine_weight",
        "adds the cosine term to another loss.kind; with kind \"cosine\" leave it 0");
  const bool needs_labels = loss.kind == LossKind::SupCon || loss.weights == WeightMap::Labels;
  check(!needs_labels || modality() == Modality::Image, "loss.weights",
        "labels are needed (loss.kind supcon or loss.weights labels), but speech training data has none");
  // The optimizer updates float32 weights: a rate past float32's range can
  // only make them infinite.
  const double most = std::numeric_limits<float>::max();
  check(optim.lr > 0 && optim.lr <= most, "optim.lr", "must be > 0 and at most 3.4e38 (float32)");
  check(optim.encoder_lr <= most, "optim.encoder_lr", "must be at most 3.4e38 (float32)");
  check(optim.weight_decay >= 0, "optim.weight_decay", "must be >= 0");
  check(optim.warmup >= 0, "optim.warmup", "must be >= 0");
  check(optim.min_lr >= 0 && optim.min_lr <= optim.lr, "optim.min_lr", "must be in [0, optim.lr]");
  check(optim.clip >= 0, "optim.clip", "must be >= 0");
  check(optim.encoder_lr > 0, "optim.encoder_lr", "must be > 0");
}

}  // namespace cwcl
