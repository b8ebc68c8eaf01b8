// The four trained towers behind TrainedTowerImpl, and the factory.
#include <cwcl/error.h>
#include <cwcl/io/store.h>
#include <cwcl/runtime.h>
#include <cwcl/io/safetensors.h>
#include <cwcl/towers/image_encoder.h>
#include <cwcl/towers/resnet.h>
#include <cwcl/towers/tower.h>

#include <filesystem>
#include <sstream>

namespace cwcl {
namespace {

std::vector<torch::Tensor> all_trainable(torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (auto& p : m.parameters()) {
    p.set_requires_grad(true);
    out.push_back(p);
  }
  return out;
}

class WhisperTrainedTower : public TrainedTowerImpl {
 public:
  WhisperTrainedTower(const WhisperTowerSpec& spec, WhisperEncoder encoder, int64_t out_dim)
      : spec_(spec), out_dim_(out_dim) {
    tower_ = register_module("whisper", WhisperTower(std::move(encoder), out_dim, spec.pooling, spec.head_hidden));
  }
  Modality modality() const override { return Modality::Speech; }
  FrontEnd front_end() const override { return FrontEnd::Whisper; }
  // Whisper sees at most 30 s: two mel frames per encoder position.
  int64_t max_frames() const override { return 2 * tower_->encoder->config.max_positions; }
  int64_t output_dim() const override { return out_dim_; }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& lengths) override {
    return tower_->forward(x, lengths);
  }
  std::vector<ParameterGroup> parameter_groups(const LearningRates& rates) override {
    std::vector<ParameterGroup> groups{{"head", all_trainable(*tower_->head), rates.head}};
    auto pooling = all_trainable(*tower_->pooling);
    groups[0].parameters.insert(groups[0].parameters.end(), pooling.begin(), pooling.end());
    WhisperTrainingOptions wo;
    wo.mode = spec_.training;
    wo.top_blocks = spec_.top_blocks;
    wo.learning_rate = rates.encoder;
    wo.layer_decay = spec_.layer_decay;
    int depth = 0;
    for (auto& g : whisper_parameter_groups(tower_->encoder, wo))
      groups.push_back({"encoder-" + std::to_string(depth++), g.params(), g.options().get_lr()});
    return groups;
  }
  std::vector<int64_t> architecture() const override {
    const auto& w = tower_->encoder->config;
    return {w.n_mels, w.d_model, w.heads, w.layers, w.max_positions};
  }
  void train(bool on) override {
    torch::nn::Module::train(on);
    if (spec_.training == WhisperTraining::Frozen) tower_->encoder->eval();
  }
  bool caches_pooled() const override {
    return spec_.training == WhisperTraining::Frozen && spec_.pooling == Pooling::Mean;
  }
  torch::Tensor pooled(const torch::Tensor& x, const torch::Tensor& lengths) override {
    return tower_->pooled(x, lengths);
  }
  torch::Tensor head(const torch::Tensor& pooled) override { return tower_->head->forward(pooled); }

 private:
  WhisperTowerSpec spec_;
  int64_t out_dim_;
  WhisperTower tower_{nullptr};
};

class ScratchSpeechTower : public TrainedTowerImpl {
 public:
  ScratchSpeechTower(const ScratchSpeechTowerSpec& spec, int64_t out_dim) {
    auto o = SpeechEncoderOptions::preset(spec.size);
    o.out_dim = out_dim;
    o.pooling = spec.pooling;
    encoder_ = register_module("scratch", SpeechEncoder(o));
  }
  Modality modality() const override { return Modality::Speech; }
  FrontEnd front_end() const override { return FrontEnd::LogMel; }
  // Two unpadded stride-2 convolutions of width 3 need 7 frames for one
  // output frame; attention grows with the square of the length, so inputs
  // stop at 30 s (longer ones are windowed at inference).
  int64_t min_frames() const override { return 7; }
  int64_t max_frames() const override { return 3000; }
  int64_t output_dim() const override { return encoder_->options.out_dim; }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& lengths) override {
    return encoder_->forward(x, lengths);
  }
  std::vector<ParameterGroup> parameter_groups(const LearningRates& rates) override {
    return {{"encoder", all_trainable(*encoder_), rates.head}};
  }

 private:
  SpeechEncoder encoder_{nullptr};
};

class ImageTower : public TrainedTowerImpl {
 public:
  ImageTower(const ImageTowerSpec& spec, int64_t out_dim) {
    ImageEncoderOptions o;
    o.width = spec.width;
    o.out_dim = out_dim;
    encoder_ = register_module("image", ImageEncoder(o));
  }
  Modality modality() const override { return Modality::Image; }
  ImageInput image_input() const override { return {1, 28}; }
  int64_t output_dim() const override { return encoder_->options.out_dim; }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor&) override { return encoder_->forward(x); }
  std::vector<ParameterGroup> parameter_groups(const LearningRates& rates) override {
    return {{"encoder", all_trainable(*encoder_), rates.head}};
  }

 private:
  ImageEncoder encoder_{nullptr};
};

class ResNetTower : public TrainedTowerImpl {
 public:
  ResNetTower(const ResNetTowerSpec& spec, int64_t out_dim) : size_(spec.image_size) {
    ResNetOptions o;
    o.width = spec.width;
    o.blocks = spec.blocks;
    o.out_dim = out_dim;
    net_ = register_module("resnet", ResNet(o));
  }
  Modality modality() const override { return Modality::Image; }
  ImageInput image_input() const override { return {3, size_}; }
  int64_t output_dim() const override { return net_->options.out_dim; }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor&) override { return net_->forward(x); }
  std::vector<ParameterGroup> parameter_groups(const LearningRates& rates) override {
    return {{"encoder", all_trainable(*net_), rates.head}};
  }

 private:
  int64_t size_;
  ResNet net_{nullptr};
};

// Copies the tensors of a safetensors file (the export format's names) into
// the tower's parameters and buffers. A tensor of another shape is an error,
// except in the projection head, which is left fresh (starting weights
// trained against another text tower's dimension). Returns how many were copied.
int64_t load_starting_weights(torch::nn::Module& tower, const std::string& path) {
  const auto file = read_safetensors(path);
  int64_t copied = 0;
  torch::NoGradGuard no_grad;
  auto copy = [&](const std::string& name, torch::Tensor target) {
    const auto it = file.tensors.find(name);
    if (it == file.tensors.end()) return;
    if (it->second.sizes() != target.sizes()) {
      if (name.find(".head.") != std::string::npos) return;
      std::ostringstream m;
      m << path << ": tensor '" << name << "' has shape " << it->second.sizes() << ", the tower's is " << target.sizes();
      throw DataError(m.str());
    }
    target.copy_(it->second);
    ++copied;
  };
  for (const auto& p : tower.named_parameters()) copy(p.key(), p.value());
  for (const auto& b : tower.named_buffers()) copy(b.key(), b.value());
  if (copied == 0) throw DataError(path + ": no tensor with a name of the tower (model.init expects cwcl export's names)");
  return copied;
}

WhisperEncoder whisper_encoder(const WhisperTowerSpec& spec, TowerWeights weights,
                               const std::vector<int64_t>& architecture) {
  if (weights == TowerWeights::Pretrained) return load_whisper_encoder(whisper_folder(spec));
  WhisperEncoderConfig shape;
  if (!architecture.empty()) {
    if (architecture.size() != 5)
      throw DataError("whisper tower: an architecture record of " + std::to_string(architecture.size()) +
                      " sizes, expected 5");
    shape.n_mels = architecture[0], shape.d_model = architecture[1], shape.heads = architecture[2];
    shape.layers = architecture[3], shape.max_positions = architecture[4];
  }
  return WhisperEncoder(shape);
}

}  // namespace

FrontEnd TrainedTowerImpl::front_end() const { throw UsageError("an image tower has no audio front end"); }

ImageInput TrainedTowerImpl::image_input() const { throw UsageError("a speech tower reads no images"); }

torch::Tensor TrainedTowerImpl::pooled(const torch::Tensor&, const torch::Tensor&) {
  throw InternalError("this tower has no separately cached pooling (caches_pooled() is false)");
}

torch::Tensor TrainedTowerImpl::head(const torch::Tensor&) {
  throw InternalError("this tower has no separate head (caches_pooled() is false)");
}

TowerKind tower_kind(const TowerSpec& spec) { return static_cast<TowerKind>(spec.index()); }

TowerSpec default_spec(TowerKind kind) {
  switch (kind) {
    case TowerKind::Whisper:
      return WhisperTowerSpec{};
    case TowerKind::Scratch:
      return ScratchSpeechTowerSpec{};
    case TowerKind::Image:
      return ImageTowerSpec{};
    case TowerKind::ResNet:
      return ResNetTowerSpec{};
  }
  throw InternalError("default_spec: unknown tower kind");
}

Modality modality(const TowerSpec& spec) {
  const bool image = std::holds_alternative<ImageTowerSpec>(spec) || std::holds_alternative<ResNetTowerSpec>(spec);
  return image ? Modality::Image : Modality::Speech;
}

TrainedTower make_tower(const TowerSpec& spec, int64_t out_dim, TowerWeights weights,
                        const std::vector<int64_t>& architecture) {
  TORCH_CHECK(out_dim > 0, "make_tower: out_dim must be positive, got ", out_dim);
  struct Build {
    int64_t out_dim;
    TowerWeights weights;
    const std::vector<int64_t>& architecture;
    TrainedTower operator()(const WhisperTowerSpec& s) const {
      return std::make_shared<WhisperTrainedTower>(s, whisper_encoder(s, weights, architecture), out_dim);
    }
    TrainedTower operator()(const ScratchSpeechTowerSpec& s) const {
      return std::make_shared<ScratchSpeechTower>(s, out_dim);
    }
    TrainedTower operator()(const ImageTowerSpec& s) const { return std::make_shared<ImageTower>(s, out_dim); }
    TrainedTower operator()(const ResNetTowerSpec& s) const {
      auto tower = std::make_shared<ResNetTower>(s, out_dim);
      if (weights == TowerWeights::Pretrained && !s.init.empty()) load_starting_weights(*tower, s.init);
      return tower;
    }
  };
  return std::visit(Build{out_dim, weights, architecture}, spec);
}

void limit_frames(torch::Tensor& mel, torch::Tensor& lengths, int64_t max_frames) {
  if (max_frames <= 0 || mel.size(1) <= max_frames) return;
  mel = mel.narrow(1, 0, max_frames);
  lengths = lengths.clamp_max(max_frames);
}

// The pre-trained Whisper models scripts/fetch_models.sh puts in the models
// cache, by the name model.whisper_model gives them.
struct KnownWhisper {
  const char* name;
  const char* folder;
  const char* fetch;
};
constexpr KnownWhisper kKnownWhispers[] = {{"tiny.en", "whisper-tiny.en-ct2", "whisper"},
                                           {"base", "whisper-base-ct2", "whisper-base"}};

std::string whisper_folder(const WhisperTowerSpec& spec) {
  const auto name = spec.model.empty() ? std::string("tiny.en") : spec.model;
  for (const auto& k : kKnownWhispers)
    if (name == k.name) {
      const auto folder = model_folder(k.folder);
      if (!std::filesystem::exists(std::filesystem::path(folder) / "model.bin"))
        throw DataError(folder + ": no model.bin; fetch it with scripts/fetch_models.sh " + k.fetch);
      return folder;
    }
  if (!std::filesystem::exists(std::filesystem::path(name) / "model.bin"))
    throw DataError(name + ": no model.bin (model.whisper_model: tiny.en, base or a CTranslate2 Whisper folder)");
  return name;
}

std::string whisper_fingerprint(const WhisperTowerSpec& spec) {
  return fingerprint_files({(std::filesystem::path(whisper_folder(spec)) / "model.bin").string()});
}

}  // namespace cwcl
