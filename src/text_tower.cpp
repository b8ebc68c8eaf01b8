// Frozen text towers by name.
#include <cwcl/glove.h>
#include <cwcl/runtime.h>
#include <cwcl/script_tower.h>
#include <cwcl/text_encoder.h>
#include <cwcl/text_tower.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace cwcl {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path + ": cannot open");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

TextTower load_text_tower(const TextTowerOptions& o) {
  if (o.tower == "minilm") {
    const auto folder = o.model.empty() ? model_folder("all-MiniLM-L6-v2") : o.model;
    if (o.model.empty() && !std::filesystem::exists(folder))
      throw std::runtime_error(folder + ": not found; fetch it with scripts/fetch_models.sh minilm");
    SentenceEncoderOptions eo;
    eo.batch_size = o.batch_size;
    auto encoder = std::make_shared<SentenceEncoder>(SentenceEncoder::from_folder(folder, eo));
    return {o.tower, encoder->fingerprint(),
            [encoder](const std::vector<std::string>& t) { return encoder->encode(t); }};
  }
  if (o.tower == "glove-mean" || o.tower == "glove-sif") {
    GloveOptions go;
    go.pooling = o.tower == "glove-sif" ? GlovePooling::SIF : GlovePooling::Mean;
    const auto folder = o.model.empty() ? model_folder("glove-6B-100d") : o.model;
    if (o.model.empty() && !std::filesystem::exists(folder))
      throw std::runtime_error(folder + ": not found; fetch it with scripts/fetch_models.sh glove");
    auto encoder = std::make_shared<GloveEncoder>(GloveEncoder::from_folder(folder, go));
    if (go.pooling == GlovePooling::SIF) encoder->fit_sif(read_lines(o.sif_reference));
    return {o.tower, encoder->fingerprint(),
            [encoder](const std::vector<std::string>& t) { return encoder->encode(t); }};
  }
  if (o.tower == "script") {
    if (o.model.empty()) throw std::invalid_argument("text tower script needs a model (<module.pt>)");
    auto tower = std::make_shared<ScriptTextTower>(ScriptTextTower::load(o.model));
    return {o.tower, tower->fingerprint(),
            [tower](const std::vector<std::string>& t) { return tower->encode(t); }};
  }
  throw std::invalid_argument("unknown text tower '" + o.tower +
                              "' (accepted: minilm, glove-mean, glove-sif, script)");
}

}  // namespace cwcl
