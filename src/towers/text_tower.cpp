// Frozen text towers by kind.
#include <cwcl/error.h>
#include <cwcl/io/files.h>
#include <cwcl/io/store.h>
#include <cwcl/runtime.h>
#include <cwcl/towers/glove.h>
#include <cwcl/towers/script_tower.h>
#include <cwcl/towers/text_encoder.h>
#include <cwcl/towers/text_tower.h>

#include <filesystem>
#include <memory>

namespace cwcl {
namespace {

// The default folder in the models cache, or the one given; a missing
// default says how to fetch it.
std::string model_or_default(const std::string& given, const std::string& cached, const std::string& fetch_name) {
  if (!given.empty()) return given;
  const auto folder = model_folder(cached);
  if (!std::filesystem::exists(folder))
    throw DataError(folder + ": not found; fetch it with scripts/fetch_models.sh " + fetch_name);
  return folder;
}

template <class Encoder>
TextTower wrap(const std::string& name, std::shared_ptr<Encoder> encoder) {
  TextTower t{name, encoder->fingerprint(), [encoder](const std::vector<std::string>& x) { return encoder->encode(x); }};
  t.dim = t.encode({"a"}).size(1);
  return t;
}

// Precomputed embeddings looked up by text.
TextTower store_tower(const std::string& name, const std::string& path) {
  if (path.empty()) throw UsageError("text tower store needs a model: the store (.safetensors) whose ids are the texts");
  auto store = std::make_shared<EmbeddingStore>(EmbeddingStore::read(path));
  TextTower t{name, fingerprint_files({path}), [store, path](const std::vector<std::string>& texts) {
                try {
                  return store->lookup_ids(texts);
                } catch (const DataError& e) {
                  throw DataError(path + ": no embedding of a text the run needs (" + e.what() + ")");
                }
              }};
  t.dim = store->dim();
  return t;
}

}  // namespace

TextTower load_text_tower(const TextTowerOptions& o) {
  const std::string name = name_of(o.kind);
  switch (o.kind) {
    case TextTowerKind::MiniLM: {
      SentenceEncoderOptions eo;
      eo.batch_size = o.batch_size;
      const auto folder = model_or_default(o.model, "all-MiniLM-L6-v2", "minilm");
      return wrap(name, std::make_shared<SentenceEncoder>(SentenceEncoder::from_folder(folder, eo)));
    }
    case TextTowerKind::GloveMean:
    case TextTowerKind::GloveSif: {
      GloveOptions go;
      go.pooling = o.kind == TextTowerKind::GloveSif ? GlovePooling::SIF : GlovePooling::Mean;
      const auto folder = model_or_default(o.model, "glove-6B-100d", "glove");
      auto encoder = std::make_shared<GloveEncoder>(GloveEncoder::from_folder(folder, go));
      if (go.pooling == GlovePooling::SIF)
        encoder->fit_sif(read_lines(o.sif_reference.empty() ? data_file("slurp/lm.txt") : o.sif_reference));
      return wrap(name, encoder);
    }
    case TextTowerKind::Script:
      if (o.model.empty()) throw UsageError("text tower script needs a model (<module.pt>)");
      return wrap(name, std::make_shared<ScriptTextTower>(ScriptTextTower::load(o.model)));
    case TextTowerKind::Store:
      return store_tower(name, o.model);
  }
  throw UsageError("unknown text tower");
}

}  // namespace cwcl
