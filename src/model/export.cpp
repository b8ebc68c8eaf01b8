#include <cwcl/data/fashion_mnist.h>
#include <cwcl/data/images.h>
#include <cwcl/error.h>
#include <cwcl/io/files.h>
#include <cwcl/io/safetensors.h>
#include <cwcl/seeds.h>
#include <cwcl/towers/image_encoder.h>
#include <cwcl/towers/resnet.h>
#include <cwcl/model/export.h>
#include <cwcl/runtime.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

namespace cwcl {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// The sizes that rebuild each tower (the spec resolved to layer sizes).
json tower_json(const TowerSpec& spec, const std::vector<int64_t>& architecture) {
  if (const auto* w = std::get_if<WhisperTowerSpec>(&spec))
    return {{"pooling", name_of(w->pooling)},
            {"head_hidden", w->head_hidden},
            {"n_mels", architecture.at(0)},
            {"d_model", architecture.at(1)},
            {"heads", architecture.at(2)},
            {"layers", architecture.at(3)},
            {"max_positions", architecture.at(4)}};
  if (const auto* s = std::get_if<ScratchSpeechTowerSpec>(&spec)) {
    const auto o = SpeechEncoderOptions::preset(s->size);
    return {{"pooling", name_of(s->pooling)}, {"n_mels", o.n_mels}, {"channels", o.channels}, {"d_model", o.d_model},
            {"layers", o.layers},             {"heads", o.heads},   {"ff", o.ff}};
  }
  if (const auto* r = std::get_if<ResNetTowerSpec>(&spec))
    return {{"width", r->width}, {"blocks", r->blocks}, {"hidden", ResNetOptions{}.hidden}};
  const auto& i = std::get<ImageTowerSpec>(spec);
  return {{"width", i.width}, {"hidden", ImageEncoderOptions{}.hidden}};
}

json input_json(TrainedTowerImpl& tower) {
  if (tower.modality() == Modality::Image && tower.image_input().channels == 3) {
    const auto size = tower.image_input().size;
    return {{"kind", "colour-image"}, {"height", size},         {"width", size},
            {"channels", "RGB"},      {"mean", kColourMean},    {"std", kColourStd},
            {"resize", "shorter side to the size (area when shrinking), centre crop; alpha on white"}};
  }
  if (tower.modality() == Modality::Image)
    return {{"kind", "image"}, {"height", 28}, {"width", 28}, {"mean", kFashionMnistMean}, {"std", kFashionMnistStd}};
  return {{"kind", "log-mel"}, {"front_end", name_of(tower.front_end())}, {"max_frames", tower.max_frames()}};
}

// A few inputs and cwcl's L2-normalised embeddings of them, in evaluation
// mode (batch norm on its running statistics) as the export is used.
std::map<std::string, torch::Tensor> check_tensors(TrainedModel& model) {
  struct EvalMode {
    torch::nn::Module& m;
    bool was = m.is_training();
    ~EvalMode() { m.train(was); }
  } eval_mode{model.tower()};
  model.tower().eval();
  auto g = make_generator(derive_seed(0, SeedStream::Initialisation));
  torch::NoGradGuard no_grad;
  namespace F = torch::nn::functional;
  if (model.modality() == Modality::Image) {
    const auto input = model.tower().image_input();
    const std::vector<int64_t> shape = input.channels == 3 ? std::vector<int64_t>{4, 3, input.size, input.size}
                                                           : std::vector<int64_t>{4, 28, 28};
    auto images = torch::randint(0, 256, shape, g, torch::kLong).to(torch::kUInt8);
    return {{"images", images}, {"embeddings", model.embed_images(images)}};
  }
  auto& tower = model.tower();
  const int64_t n_mels = tower.front_end() == FrontEnd::Whisper ? WhisperEncoderConfig{}.n_mels : LogMelOptions{}.n_mels;
  auto lengths = torch::tensor({64, 41, 23}, torch::kLong);
  auto mel = torch::randn({3, 64, n_mels}, g) * 0.5;
  for (int64_t i = 0; i < 3; ++i) mel[i].narrow(0, lengths[i].item<int64_t>(), 64 - lengths[i].item<int64_t>()).zero_();
  auto q = F::normalize(tower.forward(mel, lengths), F::NormalizeFuncOptions().dim(1));
  return {{"mel", mel}, {"lengths", lengths}, {"embeddings", q}};
}

}  // namespace

ExportReport export_model(TrainedModel& model, const std::string& folder) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw WriteError(folder + ": cannot create the export folder (" + ec.message() + ")");
  ExportReport report{folder, 0, 0};
  auto& tower = model.tower();
  std::map<std::string, torch::Tensor> weights;
  for (const auto& p : tower.named_parameters()) {
    weights.emplace(p.key(), p.value().detach().contiguous());
    report.parameters += p.value().numel();
  }
  for (const auto& b : tower.named_buffers()) weights.emplace(b.key(), b.value().detach().contiguous());
  report.tensors = static_cast<int64_t>(weights.size());
  const auto& c = model.config();
  write_safetensors((fs::path(folder) / "model.safetensors").string(), weights, {{"format", kExportFormat}});
  write_safetensors((fs::path(folder) / "check.safetensors").string(), check_tensors(model), {{"format", kExportFormat}});
  const json config = {{"format", kExportFormat},
                       {"cwcl_version", version()},
                       {"tower", name_of(tower_kind(c.model))},
                       {"sizes", tower_json(c.model, tower.architecture())},
                       {"out_dim", tower.output_dim()},
                       {"input", input_json(tower)},
                       {"text_tower", {{"kind", name_of(c.text.tower)}, {"model", c.text.model}}},
                       {"loss", {{"kind", name_of(c.loss.kind)}, {"weights", name_of(c.loss.weights)}}},
                       {"step", model.step()},
                       {"source", model.source()}};
  write_text_atomically((fs::path(folder) / "config.json").string(), config.dump(2) + "\n");
  return report;
}

}  // namespace cwcl
