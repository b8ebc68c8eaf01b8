#include "sources.h"

#include <cwcl/data/fashion_mnist.h>
#include <cwcl/data/speech.h>
#include <cwcl/error.h>
#include <cwcl/eval/eval.h>  // read_templates
#include <cwcl/io/store.h>
#include <cwcl/seeds.h>
#include <cwcl/model/model.h>  // cached_pooled_outputs, text_store_path

#include <cmath>
#include <filesystem>
#include <unordered_map>

namespace cwcl::detail {
namespace {

namespace fs = std::filesystem;

torch::Tensor long_tensor(const std::vector<int64_t>& v) { return torch::tensor(v, torch::kLong); }

// rows_by_copy [versions, examples]: the cache row of each version of each
// example. The rows epoch `epoch` reads, one version per example (pick_copies).
torch::Tensor epoch_rows(const torch::Tensor& rows_by_copy, uint64_t seed, int64_t epoch) {
  const int64_t examples = rows_by_copy.size(1);
  const auto copy = pick_copies(examples, rows_by_copy.size(0), seed, epoch);
  return rows_by_copy.index({copy, torch::arange(examples, torch::kLong)}).contiguous();
}

// Rows of a table of precomputed inputs (pooled encoder outputs, one row per
// cache row), shuffled per epoch; each example reads the version that
// epoch_rows draws for it.
class TableSource : public DataSource {
 public:
  TableSource(torch::Tensor inputs, torch::Tensor rows_by_copy, torch::Tensor p, int64_t batch_size, uint64_t seed,
              Shard shard)
      : inputs_(std::move(inputs)),
        rows_by_copy_(std::move(rows_by_copy)),
        p_(std::move(p)),
        batch_size_(batch_size),
        seed_(seed),
        shard_(shard) {}
  int64_t batches_per_epoch() const override { return p_.size(0) / batch_size_; }
  Batch batch(int64_t epoch, int64_t index) override {
    if (epoch != epoch_) {
      auto g = make_generator(derive_seed(seed_, SeedStream::EpochOrder, static_cast<uint64_t>(epoch)));
      order_ = torch::randperm(p_.size(0), g, torch::kLong);
      epoch_rows_ = epoch_rows(rows_by_copy_, seed_, epoch);
      epoch_ = epoch;
    }
    auto rows = order_.narrow(0, index * batch_size_ + shard_.first(batch_size_), shard_.rows(batch_size_));
    return {inputs_.index_select(0, epoch_rows_.index_select(0, rows)), {}, p_.index_select(0, rows), {}};
  }
  const torch::Tensor& frozen() const override { return p_; }
  bool pooled() const override { return true; }

 private:
  torch::Tensor inputs_, rows_by_copy_, p_, order_, epoch_rows_;
  int64_t batch_size_;
  uint64_t seed_;
  Shard shard_;
  int64_t epoch_ = -1;
};

// Log-mel features through the prefetching loader (SpecAugment on the fly).
// rows_by_copy[k][i]: the cache row of copy k of example i (p row i); each
// epoch reads the version of each example that epoch_rows draws.
class SpeechSource : public DataSource {
 public:
  SpeechSource(std::shared_ptr<FeatureCache> cache, torch::Tensor rows_by_copy, torch::Tensor p, const TrainConfig& c,
               Shard shard)
      : cache_(std::move(cache)), rows_by_copy_(std::move(rows_by_copy)), p_(std::move(p)), config_(c), shard_(shard) {
    p_row_.assign(static_cast<size_t>(cache_->size()), -1);
    const auto rows = rows_by_copy_.accessor<int64_t, 2>();
    for (int64_t k = 0; k < rows.size(0); ++k)
      for (int64_t i = 0; i < rows.size(1); ++i) p_row_[static_cast<size_t>(rows[k][i])] = i;
  }
  int64_t batches_per_epoch() const override { return p_.size(0) / config_.run.batch_size; }
  Batch batch(int64_t epoch, int64_t index) override {
    if (!loader_ || epoch != epoch_ || index != next_index_) start_loader(epoch, index);
    auto b = loader_->next();
    if (!b) throw InternalError("SpeechSource: the loader ended early");
    next_index_ = index + 1;
    std::vector<int64_t> prow;
    for (auto r : b->indices) prow.push_back(p_row_[static_cast<size_t>(r)]);
    return {b->mel, b->lengths, p_.index_select(0, long_tensor(prow)), {}};
  }
  const torch::Tensor& frozen() const override { return p_; }

 private:
  void start_loader(int64_t epoch, int64_t index) {
    LoaderOptions o;
    o.batch_size = config_.run.batch_size;
    o.seed = static_cast<uint64_t>(config_.run.seed);
    o.drop_last = true;
    const auto rows = epoch_rows(rows_by_copy_, o.seed, epoch);
    o.rows.assign(rows.data_ptr<int64_t>(), rows.data_ptr<int64_t>() + rows.numel());
    o.first_batch = index;
    o.shard = shard_;
    if (config_.data.augment) o.spec_augment = SpecAugmentOptions{};
    loader_.reset();
    loader_ = std::make_unique<SpeechLoader>(*cache_, o, epoch);
    epoch_ = epoch;
  }

  std::shared_ptr<FeatureCache> cache_;
  torch::Tensor rows_by_copy_;
  std::vector<int64_t> p_row_;
  torch::Tensor p_;
  TrainConfig config_;
  Shard shard_;
  std::unique_ptr<SpeechLoader> loader_;
  int64_t epoch_ = -1, next_index_ = -1;
};

// Images of the seen classes, each paired per epoch with one caption of its class.
class ImageSource : public DataSource {
 public:
  // captions: [all captions, D]; spans[k] = (first row, count) of class k's captions.
  ImageSource(ImageSet images, torch::Tensor captions, std::vector<std::pair<int64_t, int64_t>> spans,
              const TrainConfig& c, Shard shard)
      : images_(std::move(images)),
        captions_(std::move(captions)),
        spans_(std::move(spans)),
        config_(c),
        shard_(shard) {
    std::vector<int64_t> first;
    auto l = images_.labels.accessor<int64_t, 1>();
    for (int64_t i = 0; i < images_.size(); ++i) first.push_back(spans_.at(static_cast<size_t>(l[i])).first);
    p_ = captions_.index_select(0, long_tensor(first));
  }
  int64_t batches_per_epoch() const override { return images_.size() / config_.run.batch_size; }
  Batch batch(int64_t epoch, int64_t index) override {
    const int64_t b = config_.run.batch_size;
    const auto seed = static_cast<uint64_t>(config_.run.seed);
    if (epoch != epoch_) {
      auto g = make_generator(derive_seed(seed, SeedStream::EpochOrder, static_cast<uint64_t>(epoch)));
      order_ = torch::randperm(images_.size(), g, torch::kLong);
      auto pick = make_generator(derive_seed(seed, SeedStream::CaptionPick, static_cast<uint64_t>(epoch)));
      pick_ = torch::rand({images_.size()}, pick, torch::kDouble);
      epoch_ = epoch;
    }
    auto rows = order_.narrow(0, index * b, b);
    auto labels = images_.labels.index_select(0, rows);
    auto raw = images_.images.index_select(0, rows);
    if (config_.data.augment) {
      auto g = make_generator(derive_seed(seed, SeedStream::ImageAugment, static_cast<uint64_t>(epoch),
                                          static_cast<uint64_t>(index)));
      raw = augment_images(raw, 2, g);
    }
    // The whole global batch is drawn (it is small), then cut: augmentation
    // does not depend on the number of ranks.
    auto p = captions_.index_select(0, caption_rows(labels, pick_.index_select(0, rows)));
    const int64_t first = shard_.first(b), n = shard_.rows(b);
    return {normalise_images(raw.narrow(0, first, n)), {}, p.narrow(0, first, n), labels.narrow(0, first, n)};
  }
  const torch::Tensor& frozen() const override { return p_; }

 private:
  // One caption of each image's class, picked by a uniform draw u in [0, 1).
  torch::Tensor caption_rows(const torch::Tensor& labels, const torch::Tensor& u) const {
    std::vector<int64_t> out;
    auto la = labels.accessor<int64_t, 1>();
    auto ua = u.accessor<double, 1>();
    for (int64_t i = 0; i < labels.size(0); ++i) {
      const auto [first, count] = spans_[static_cast<size_t>(la[i])];
      out.push_back(first + std::min<int64_t>(count - 1, static_cast<int64_t>(ua[i] * static_cast<double>(count))));
    }
    return long_tensor(out);
  }

  ImageSet images_;
  torch::Tensor captions_, p_, order_, pick_;
  std::vector<std::pair<int64_t, int64_t>> spans_;
  TrainConfig config_;
  Shard shard_;
  int64_t epoch_ = -1;
};

std::vector<SpeechExample> training_examples(const TrainConfig& c, int64_t& skipped, const Log& log) {
  auto manifest = read_speech_manifest(c.data.train);
  auto examples = manifest.examples;
  if (examples.empty()) throw DataError(c.data.train + ": no usable lines");
  if (c.data.limit > 0 && static_cast<int64_t>(examples.size()) > c.data.limit)
    examples.resize(static_cast<size_t>(c.data.limit));
  for (const auto& p : manifest.problems) log("skipped " + p);
  skipped = manifest.skipped;
  return examples;
}

// The augmented copies a run's feature cache holds (a property of the data,
// so their seed is fixed rather than the run's).
AugmentedCopies audio_copies(const TrainConfig& c) {
  AugmentedCopies copies;
  copies.count = c.data.audio_copies;
  copies.options = c.data.copy_augment;
  copies.warp = c.data.copy_warp;
  return copies;
}

// The feature cache of a front end: data.features, or beside the manifest.
std::string features_path(const TrainConfig& c, FrontEnd front) {
  return c.data.features.empty()
             ? feature_cache_path(c.data.train, front, c.data.limit, audio_copies(c), c.data.trim_silence)
             : c.data.features;
}

std::unique_ptr<DataSource> speech_source(const TrainConfig& c, TrainedTowerImpl& tower, const TextTower& text,
                                          const Log& log, Shard shard) {
  int64_t skipped = 0;
  const auto examples = training_examples(c, skipped, log);
  const auto features = features_path(c, tower.front_end());
  const auto copies = audio_copies(c);
  const auto cache =
      std::make_shared<FeatureCache>(FeatureCache::open_or_build(features, examples, tower.front_end(), copies, log,
                                                                silence_trim(c.data.trim_silence)));
  std::unordered_map<std::string, int64_t> row_of;
  for (int64_t i = 0; i < cache->size(); ++i) row_of.emplace(cache->id(i), i);
  std::vector<std::vector<int64_t>> rows(static_cast<size_t>(copies.count + 1));
  std::vector<std::string> ids, texts;
  for (const auto& e : examples) {
    std::vector<int64_t> found;
    for (int64_t k = 0; k <= copies.count; ++k) {
      auto it = row_of.find(copy_id(e.id, k));
      if (it != row_of.end() && tower.accepts(cache->frames(it->second))) found.push_back(it->second);
    }
    if (found.size() != rows.size()) {
      ++skipped;  // unreadable audio (not in the cache), or too short or long for the tower
      continue;
    }
    for (size_t k = 0; k < rows.size(); ++k) rows[k].push_back(found[k]);
    ids.push_back(e.id);
    texts.push_back(e.text);
  }
  if (static_cast<int64_t>(ids.size()) < c.run.batch_size)
    throw DataError(c.data.train + ": " + std::to_string(ids.size()) + " usable examples, fewer than one batch of " +
                    std::to_string(c.run.batch_size));
  const auto store = text_store_path(c.data, text.name);
  log("text: " + std::to_string(texts.size()) + " texts through " + text.name + " (store " + store + ")");
  auto p = embed_with_store(store, text.name, text.fingerprint, ids, texts, text.encode, text_progress(log));
  std::vector<torch::Tensor> version_rows;
  for (const auto& r : rows) version_rows.push_back(long_tensor(r));
  const auto rows_by_copy = torch::stack(version_rows);
  std::unique_ptr<DataSource> source;
  if (tower.caches_pooled()) {
    const std::string pooled_store = features + ".pooled.safetensors";
    const auto fingerprint = whisper_fingerprint(std::get<WhisperTowerSpec>(c.model));
    log("tower: pooled outputs of the frozen encoder from " + pooled_store_path(pooled_store, fingerprint));
    auto all = cached_pooled_outputs(tower, fingerprint, *cache, pooled_store, [&](int64_t done, int64_t total) {
                                       if (done % 4096 < 32 || done == total)
                                         log("tower: " + std::to_string(done) + "/" + std::to_string(total));
                                     });
    source = std::make_unique<TableSource>(std::move(all), rows_by_copy, p, c.run.batch_size,
                                           static_cast<uint64_t>(c.run.seed), shard);
  } else {
    source = std::make_unique<SpeechSource>(cache, rows_by_copy, p, c, shard);
  }
  source->skipped = skipped;
  return source;
}

std::unique_ptr<DataSource> image_source(const TrainConfig& c, const TextTower& text, const Log& log, Shard shard) {
  const auto names = ClassNames::read(c.class_names_file());
  const auto problem = classes_problem(c.data.classes, names.size());
  if (!problem.empty())
    throw ConfigError("config key 'data.classes': " + problem + " (" + c.class_names_file() + " names " +
                      std::to_string(names.size()) + " classes)");
  auto train = split_training_images(read_fashion_mnist(c.data.train, FashionMnistSplit::Train), c.data.classes,
                                     c.data.valid_fraction, static_cast<uint64_t>(c.run.seed))
                   .train;
  if (c.data.limit > 0 && train.size() > c.data.limit) train = train.rows(torch::arange(c.data.limit));
  if (train.size() < c.run.batch_size) throw DataError(c.data.train + ": fewer training images than one batch");
  const auto templates = read_templates(c.templates_file());
  std::vector<std::string> texts;
  std::vector<std::pair<int64_t, int64_t>> spans(static_cast<size_t>(names.size()), {0, 0});
  for (auto k : c.data.classes) {
    auto captions = names.captions(k, templates);
    spans[static_cast<size_t>(k)] = {static_cast<int64_t>(texts.size()), static_cast<int64_t>(captions.size())};
    texts.insert(texts.end(), captions.begin(), captions.end());
  }
  const std::string store = c.data.text_store.empty() ? (fs::path(c.run.out) / "captions.store.safetensors").string()
                                                      : c.data.text_store;
  log("text: " + std::to_string(texts.size()) + " captions through " + text.name);
  auto p = embed_with_store(store, text.name, text.fingerprint, texts, texts, text.encode, text_progress(log));
  return std::make_unique<ImageSource>(std::move(train), p, std::move(spans), c, shard);
}

}  // namespace

std::unique_ptr<DataSource> make_data_source(const TrainConfig& config, TrainedTowerImpl& tower,
                                             const TextTower& text, const Log& log, Shard shard) {
  TORCH_CHECK(shard.count >= 1 && config.run.batch_size % shard.count == 0, "make_data_source: ", shard.count,
              " shards do not divide run.batch_size = ", config.run.batch_size);
  if (config.modality() == Modality::Speech) return speech_source(config, tower, text, log, shard);
  return config.image_manifests() ? image_manifest_source(config, text, log, shard)
                                  : image_source(config, text, log, shard);
}

}  // namespace cwcl::detail
