// Colour images from a JSONL manifest (model.tower = "resnet"): files
// checked once, then decoded and augmented in background threads ahead of
// each step; each image is paired per epoch with one of its captions.
#include "sources.h"

#include <cwcl/data/images.h>
#include <cwcl/error.h>
#include <cwcl/io/store.h>
#include <cwcl/model/model.h>  // text_store_path
#include <cwcl/seeds.h>

#include <algorithm>
#include <future>
#include <map>
#include <unordered_map>

namespace cwcl::detail {
namespace {

torch::Tensor long_tensor(const std::vector<int64_t>& v) { return torch::tensor(v, torch::kLong); }

// The examples whose image decodes; the others are counted and the first
// few named. Decoding runs on two threads (the step is not running yet).
std::vector<ImageExample> readable(const std::vector<ImageExample>& examples, int64_t& skipped, const Log& log) {
  const size_t n = examples.size(), half = n / 2;
  auto check = [&](size_t from, size_t to) {
    std::vector<std::string> problems(to - from);
    for (size_t i = from; i < to; ++i) try {
        (void)read_rgb_image(examples[i].image);
      } catch (const Error& e) {
        problems[i - from] = e.what();
      }
    return problems;
  };
  auto second = std::async(std::launch::async, check, half, n);
  auto problems = check(0, half);
  auto rest = second.get();
  problems.insert(problems.end(), rest.begin(), rest.end());
  std::vector<ImageExample> out;
  int64_t named = 0;
  for (size_t i = 0; i < n; ++i) {
    if (problems[i].empty()) {
      out.push_back(examples[i]);
      continue;
    }
    ++skipped;
    if (named++ < 10) log("skipped " + problems[i]);
  }
  log("images: " + std::to_string(out.size()) + " readable of " + std::to_string(n));
  return out;
}

class ImageManifestSource : public DataSource {
 public:
  // captions: [T, D] embeddings of distinct texts; texts_of[i]: example i's rows in it.
  ImageManifestSource(std::vector<ImageExample> examples, torch::Tensor captions,
                      std::vector<std::vector<int64_t>> texts_of, torch::Tensor labels, const TrainConfig& c,
                      int64_t size, Shard shard)
      : examples_(std::move(examples)),
        captions_(std::move(captions)),
        texts_of_(std::move(texts_of)),
        labels_(std::move(labels)),
        config_(c),
        size_(size),
        shard_(shard) {
    std::vector<int64_t> first;
    for (const auto& t : texts_of_) first.push_back(t.front());
    p_ = captions_.index_select(0, long_tensor(first));
  }
  int64_t batches_per_epoch() const override { return static_cast<int64_t>(examples_.size()) / config_.run.batch_size; }
  Batch batch(int64_t epoch, int64_t index) override {
    if (!loader_ || epoch != epoch_ || index != next_index_) start(epoch, index);
    auto decoded = loader_->next();
    if (!decoded) throw InternalError("ImageManifestSource: the loader ended early");
    if (!decoded->failures.empty()) throw DataError(decoded->failures.front() + " (it was readable when training began)");
    next_index_ = index + 1;
    const auto rows = shard_rows(index);
    std::vector<int64_t> caption_rows;
    auto u = pick_.accessor<double, 1>();
    auto r = rows.accessor<int64_t, 1>();
    for (int64_t i = 0; i < rows.size(0); ++i) {
      const auto& t = texts_of_[static_cast<size_t>(r[i])];
      const auto k = std::min<int64_t>(static_cast<int64_t>(t.size()) - 1,
                                       static_cast<int64_t>(u[r[i]] * static_cast<double>(t.size())));
      caption_rows.push_back(t[static_cast<size_t>(k)]);
    }
    auto labels = labels_.defined() ? labels_.index_select(0, rows) : torch::Tensor();
    return {normalise_colour(decoded->images), {}, captions_.index_select(0, long_tensor(caption_rows)), labels};
  }
  const torch::Tensor& frozen() const override { return p_; }

 private:
  // This shard's rows of global batch `index` in the current epoch's order.
  torch::Tensor shard_rows(int64_t index) const {
    const int64_t b = config_.run.batch_size;
    return order_.narrow(0, index * b + shard_.first(b), shard_.rows(b));
  }
  void start(int64_t epoch, int64_t index) {
    loader_.reset();
    const auto seed = static_cast<uint64_t>(config_.run.seed);
    const auto n = static_cast<int64_t>(examples_.size());
    auto g = make_generator(derive_seed(seed, SeedStream::EpochOrder, static_cast<uint64_t>(epoch)));
    order_ = torch::randperm(n, g, torch::kLong);
    auto pick = make_generator(derive_seed(seed, SeedStream::CaptionPick, static_cast<uint64_t>(epoch)));
    pick_ = torch::rand({n}, pick, torch::kDouble);
    epoch_ = epoch;
    ImagePrefetcher::Options o;
    o.size = size_;
    if (config_.data.augment) o.augment = ImageAugmentOptions{};
    // Each image's augmentation is drawn from its place in the global
    // batch, so that it does not depend on the number of ranks.
    auto plan = [this, seed, epoch](int64_t k) {
      ImageBatchRequest request;
      const auto rows = shard_rows(k);
      const auto r = rows.accessor<int64_t, 1>();
      const int64_t first = k * config_.run.batch_size + shard_.first(config_.run.batch_size);
      for (int64_t i = 0; i < rows.size(0); ++i) {
        request.files.push_back(examples_[static_cast<size_t>(r[i])].image);
        request.seeds.push_back(derive_seed(seed, SeedStream::ImageAugment, static_cast<uint64_t>(epoch),
                                            static_cast<uint64_t>(first + i)));
      }
      return request;
    };
    loader_ = std::make_unique<ImagePrefetcher>(o, plan, index, batches_per_epoch());
  }

  std::vector<ImageExample> examples_;
  torch::Tensor captions_;
  std::vector<std::vector<int64_t>> texts_of_;
  torch::Tensor labels_, p_, order_, pick_;
  TrainConfig config_;
  int64_t size_;
  Shard shard_;
  std::unique_ptr<ImagePrefetcher> loader_;
  int64_t epoch_ = -1, next_index_ = -1;
};

// Class indices of the examples' labels (sorted names), or undefined when
// no example has one; all or none must.
torch::Tensor label_indices(const std::vector<ImageExample>& examples, const std::string& manifest) {
  std::map<std::string, int64_t> index;
  for (const auto& e : examples)
    if (!e.label.empty()) index.emplace(e.label, 0);
  if (index.empty()) return {};
  int64_t k = 0;
  for (auto& [name, i] : index) i = k++;
  std::vector<int64_t> out;
  for (const auto& e : examples) {
    if (e.label.empty()) throw DataError(manifest + ": example '" + e.id + "' has no label, others have one");
    out.push_back(index.at(e.label));
  }
  return long_tensor(out);
}

}  // namespace

std::unique_ptr<DataSource> image_manifest_source(const TrainConfig& c, const TextTower& text, const Log& log,
                                                  Shard shard) {
  auto manifest = read_image_manifest(c.data.train, ImageManifestNeeds::Text);
  for (const auto& p : manifest.problems) log("skipped " + p);
  auto examples = manifest.examples;
  if (c.data.limit > 0 && static_cast<int64_t>(examples.size()) > c.data.limit)
    examples.resize(static_cast<size_t>(c.data.limit));
  int64_t skipped = manifest.skipped;
  examples = readable(examples, skipped, log);
  if (static_cast<int64_t>(examples.size()) < c.run.batch_size)
    throw DataError(c.data.train + ": " + std::to_string(examples.size()) + " usable images, fewer than one batch of " +
                    std::to_string(c.run.batch_size));
  std::vector<std::string> texts;
  std::unordered_map<std::string, int64_t> row_of;
  std::vector<std::vector<int64_t>> texts_of;
  for (const auto& e : examples) {
    std::vector<int64_t> rows;
    for (const auto& t : e.texts) {
      auto [it, added] = row_of.emplace(t, static_cast<int64_t>(texts.size()));
      if (added) texts.push_back(t);
      rows.push_back(it->second);
    }
    texts_of.push_back(std::move(rows));
  }
  const auto store = text_store_path(c.data, text.name);
  log("text: " + std::to_string(texts.size()) + " distinct captions through " + text.name + " (store " + store + ")");
  auto captions = embed_with_store(store, text.name, text.fingerprint, texts, texts, text.encode, text_progress(log));
  auto labels = label_indices(examples, c.data.train);
  const auto size = std::get<ResNetTowerSpec>(c.model).image_size;
  auto source = std::make_unique<ImageManifestSource>(std::move(examples), captions, std::move(texts_of),
                                                      std::move(labels), c, size, shard);
  source->skipped = skipped;
  return source;
}

}  // namespace cwcl::detail
