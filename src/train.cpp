#include <cwcl/eval.h>
#include <cwcl/runtime.h>
#include <cwcl/store.h>
#include <cwcl/train.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <sstream>
#include <unordered_map>

#include <fcntl.h>
#include <unistd.h>

namespace cwcl {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
constexpr const char* kModelFormat = "cwcl-model-1";

Pooling parse_pooling(const std::string& name) { return name == "attention" ? Pooling::Attention : Pooling::Mean; }

WhisperTraining parse_whisper_training(const std::string& name) {
  if (name == "top") return WhisperTraining::TopBlocks;
  if (name == "full") return WhisperTraining::Full;
  return WhisperTraining::Frozen;
}

void fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// Checkpoint and model files: one torch archive with the resolved config, the
// sizes needed to rebuild the tower, the weights and (checkpoints) the
// optimizer. Written to a temporary file, fsynced, renamed: a crash leaves
// either the old file or the new one.
void write_model_file(const std::string& path, Tower& tower, int64_t out_dim, int64_t step,
                      torch::optim::Optimizer* optimizer) {
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kModelFormat)));
  archive.write("config", c10::IValue(tower->config.to_toml()));
  archive.write("out_dim", c10::IValue(out_dim));
  archive.write("step", c10::IValue(step));
  if (tower->whisper) {
    const auto& w = tower->whisper->encoder->config;
    archive.write("whisper_shape",
                  c10::IValue(std::vector<int64_t>{w.n_mels, w.d_model, w.heads, w.layers, w.max_positions}));
  }
  torch::serialize::OutputArchive model;
  tower->save(model);
  archive.write("model", model);
  if (optimizer) {
    torch::serialize::OutputArchive opt;
    optimizer->save(opt);
    archive.write("optimizer", opt);
  }
  const std::string tmp = path + ".tmp";
  archive.save_to(tmp);
  fsync_path(tmp, O_RDONLY);
  fs::rename(tmp, path);
  fsync_path(fs::path(path).parent_path().string(), O_RDONLY | O_DIRECTORY);
}

struct ModelFile {
  TrainConfig config;
  int64_t out_dim = 0, step = 0;
  std::optional<WhisperEncoderConfig> whisper_shape;
  torch::serialize::InputArchive archive;
};

ModelFile read_model_file(const std::string& path) {
  if (!fs::is_regular_file(path)) throw std::invalid_argument(path + ": no such model file");
  ModelFile m;
  try {
    m.archive.load_from(path);
    c10::IValue v;
    if (!m.archive.try_read("format", v) || !v.isString() || v.toStringRef() != kModelFormat)
      throw std::invalid_argument("no '" + std::string(kModelFormat) + "' format tag");
    m.archive.read("config", v);
    m.config = TrainConfig::from_string(v.toStringRef(), path + " (its config)");
    m.archive.read("out_dim", v);
    m.out_dim = v.toInt();
    m.archive.read("step", v);
    m.step = v.toInt();
    if (m.archive.try_read("whisper_shape", v)) {
      auto s = v.toIntVector();
      if (s.size() != 5) throw std::invalid_argument("bad whisper_shape");
      WhisperEncoderConfig w;
      w.n_mels = s[0], w.d_model = s[1], w.heads = s[2], w.layers = s[3], w.max_positions = s[4];
      m.whisper_shape = w;
    }
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    throw std::invalid_argument(path + ": not a cwcl model or checkpoint (" +
                                std::string(e.what()).substr(0, 200) + ")");
  }
  return m;
}

void load_weights(Tower& tower, ModelFile& file, const std::string& path) {
  const std::string misfit = path + ": its weights do not fit the architecture its configuration describes (";
  // torch's loader replaces tensors of another shape silently: compare shapes after loading.
  std::vector<std::pair<std::string, std::vector<int64_t>>> expected;
  for (const auto& p : tower->named_parameters()) expected.emplace_back(p.key(), p.value().sizes().vec());
  for (const auto& b : tower->named_buffers()) expected.emplace_back(b.key(), b.value().sizes().vec());
  torch::serialize::InputArchive model;
  try {
    if (!file.archive.try_read("model", model)) throw std::invalid_argument(path + ": holds no weights");
    tower->load(model);
  } catch (const c10::Error& e) {
    throw std::invalid_argument(misfit + e.what_without_backtrace() + ")");
  }
  std::unordered_map<std::string, std::vector<int64_t>> loaded;
  for (const auto& p : tower->named_parameters()) loaded[p.key()] = p.value().sizes().vec();
  for (const auto& b : tower->named_buffers()) loaded[b.key()] = b.value().sizes().vec();
  for (const auto& [name, shape] : expected)
    if (loaded[name] != shape)
      throw std::invalid_argument(misfit + name + " is " + c10::str(c10::IntArrayRef(loaded[name])) + ", expected " +
                                  c10::str(c10::IntArrayRef(shape)) + ")");
}

std::string checkpoint_name(int64_t step) {
  std::ostringstream s;
  s << "step-" << std::setw(8) << std::setfill('0') << step << ".pt";
  return s.str();
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::string> out;
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (name.rfind("step-", 0) == 0 && e.path().extension() == ".pt") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());  // zero-padded step numbers sort in order
  return out;
}

// Mean-pooled outputs cached as an embedding store; the tower field keys it.
std::string pooled_key(const std::string& fingerprint) { return "whisper-mean:" + fingerprint; }

// ---------------------------------------------------------------------------
// Training data: every source yields, for step s, the same batch on every run.

struct Batch {
  torch::Tensor x, lengths, p, labels;
};

class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual int64_t batches_per_epoch() const = 0;
  virtual Batch batch(int64_t epoch, int64_t index) = 0;
  /// Frozen-side rows of the training set (centring, calibration).
  virtual const torch::Tensor& frozen() const = 0;
  int64_t skipped = 0;
};

torch::Generator generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

// Rows of a table of precomputed inputs (pooled encoder outputs), shuffled per epoch.
class TableSource : public DataSource {
 public:
  TableSource(torch::Tensor inputs, torch::Tensor p, int64_t batch_size, uint64_t seed)
      : inputs_(std::move(inputs)), p_(std::move(p)), batch_size_(batch_size), seed_(seed) {}
  int64_t batches_per_epoch() const override { return inputs_.size(0) / batch_size_; }
  Batch batch(int64_t epoch, int64_t index) override {
    if (epoch != epoch_) {
      auto g = generator(seed_ * 1000003 + static_cast<uint64_t>(epoch));
      order_ = torch::randperm(inputs_.size(0), g, torch::kLong);
      epoch_ = epoch;
    }
    auto rows = order_.narrow(0, index * batch_size_, batch_size_);
    return {inputs_.index_select(0, rows), {}, p_.index_select(0, rows), {}};
  }
  const torch::Tensor& frozen() const override { return p_; }

 private:
  torch::Tensor inputs_, p_, order_;
  int64_t batch_size_;
  uint64_t seed_;
  int64_t epoch_ = -1;
};

// Log-mel features through the prefetching loader (SpecAugment on the fly).
class SpeechSource : public DataSource {
 public:
  SpeechSource(std::shared_ptr<FeatureCache> cache, std::vector<int64_t> rows, torch::Tensor p,
               const TrainConfig& c)
      : cache_(std::move(cache)), rows_(std::move(rows)), p_(std::move(p)), config_(c) {
    p_row_.assign(static_cast<size_t>(cache_->size()), -1);
    for (size_t i = 0; i < rows_.size(); ++i) p_row_[static_cast<size_t>(rows_[i])] = static_cast<int64_t>(i);
  }
  int64_t batches_per_epoch() const override {
    return static_cast<int64_t>(rows_.size()) / config_.run.batch_size;
  }
  Batch batch(int64_t epoch, int64_t index) override {
    if (!loader_ || epoch != epoch_ || index != next_index_) {
      LoaderOptions o;
      o.batch_size = config_.run.batch_size;
      o.seed = static_cast<uint64_t>(config_.run.seed);
      o.drop_last = true;
      o.rows = rows_;
      o.first_batch = index;
      if (config_.data.augment) o.spec_augment = SpecAugmentOptions{};
      loader_.reset();
      loader_ = std::make_unique<SpeechLoader>(*cache_, o, epoch);
      epoch_ = epoch;
    }
    auto b = loader_->next();
    TORCH_CHECK(b.has_value(), "SpeechSource: the loader ended early");
    next_index_ = index + 1;
    std::vector<int64_t> prow;
    for (auto r : b->indices) prow.push_back(p_row_[static_cast<size_t>(r)]);
    return {b->mel, b->lengths, p_.index_select(0, torch::tensor(prow, torch::kLong)), {}};
  }
  const torch::Tensor& frozen() const override { return p_; }

 private:
  std::shared_ptr<FeatureCache> cache_;
  std::vector<int64_t> rows_, p_row_;
  torch::Tensor p_;
  TrainConfig config_;
  std::unique_ptr<SpeechLoader> loader_;
  int64_t epoch_ = -1, next_index_ = -1;
};

// Fashion-MNIST images of the seen classes, each with a caption drawn per epoch.
class ImageSource : public DataSource {
 public:
  ImageSource(ImageSet images, std::vector<torch::Tensor> class_captions, const TrainConfig& c)
      : images_(std::move(images)), config_(c) {
    // class_captions[k]: [captions of label k, D] (empty for unseen labels).
    for (auto& e : class_captions) {
      offsets_.push_back(all_.empty() ? 0 : offsets_.back() + counts_.back());
      counts_.push_back(e.defined() ? e.size(0) : 0);
      if (e.defined()) all_.push_back(e);
    }
    captions_ = torch::cat(all_, 0);
    p_ = torch::empty({images_.size(), captions_.size(1)});
    auto l = images_.labels.accessor<int64_t, 1>();
    for (int64_t i = 0; i < images_.size(); ++i) {
      TORCH_CHECK(counts_[static_cast<size_t>(l[i])] > 0, "ImageSource: a training image has no captions");
      p_[i] = captions_[offsets_[static_cast<size_t>(l[i])]];
    }
  }
  int64_t batches_per_epoch() const override { return images_.size() / config_.run.batch_size; }
  Batch batch(int64_t epoch, int64_t index) override {
    const int64_t b = config_.run.batch_size;
    const auto seed = static_cast<uint64_t>(config_.run.seed);
    if (epoch != epoch_) {
      auto g = generator(seed * 1000003 + static_cast<uint64_t>(epoch));
      order_ = torch::randperm(images_.size(), g, torch::kLong);
      pick_ = torch::rand({images_.size()}, g, torch::kDouble);  // which caption of its class
      epoch_ = epoch;
    }
    auto rows = order_.narrow(0, index * b, b);
    auto labels = images_.labels.index_select(0, rows);
    auto u = pick_.index_select(0, rows);
    std::vector<int64_t> caption_rows;
    auto la = labels.accessor<int64_t, 1>();
    auto ua = u.accessor<double, 1>();
    for (int64_t i = 0; i < b; ++i) {
      const auto k = static_cast<size_t>(la[i]);
      caption_rows.push_back(offsets_[k] + std::min<int64_t>(counts_[k] - 1, static_cast<int64_t>(ua[i] * counts_[k])));
    }
    auto raw = images_.images.index_select(0, rows);
    if (config_.data.augment) {
      auto g = generator(seed * 7919 + static_cast<uint64_t>(epoch) * 100003 + static_cast<uint64_t>(index));
      raw = augment_images(raw, 2, g);
    }
    return {normalise_images(raw), {}, captions_.index_select(0, torch::tensor(caption_rows, torch::kLong)), labels};
  }
  const torch::Tensor& frozen() const override { return p_; }

 private:
  ImageSet images_;
  TrainConfig config_;
  std::vector<torch::Tensor> all_;
  std::vector<int64_t> offsets_, counts_;
  torch::Tensor captions_, p_, order_, pick_;
  int64_t epoch_ = -1;
};

std::string default_beside(const std::string& data, const std::string& suffix) { return data + "." + suffix; }

using Log = std::function<void(const std::string&)>;

std::unique_ptr<DataSource> speech_source(const TrainConfig& c, Tower& tower, const TextTower& text, const Log& log) {
  auto manifest = read_speech_manifest(c.data.train);
  auto examples = manifest.examples;
  if (examples.empty()) throw std::invalid_argument(c.data.train + ": no usable lines");
  if (c.data.limit > 0 && static_cast<int64_t>(examples.size()) > c.data.limit)
    examples.resize(static_cast<size_t>(c.data.limit));
  for (const auto& p : manifest.problems) log("skipped " + p);
  const auto front = tower->front_end();
  // A limited run caches only the examples it uses.
  const std::string limited = c.data.limit > 0 ? ".first" + std::to_string(c.data.limit) : "";
  const std::string features =
      c.data.features.empty()
          ? default_beside(c.data.train, std::string(to_string(front)) + limited + ".features.safetensors")
          : c.data.features;
  int64_t skipped = manifest.skipped;
  if (!fs::exists(features)) {
    log("features: computing " + std::string(to_string(front)) + " features of " + std::to_string(examples.size()) +
        " utterances into " + features);
    auto report = FeatureCache::build(examples, features, LogMelOptions{}, 2, {}, front);
    for (const auto& p : report.problems) log("skipped " + p);
  }
  auto cache = std::make_shared<FeatureCache>(FeatureCache::open(features));
  if (cache->front_end() != front)
    throw std::invalid_argument(features + ": holds " + to_string(cache->front_end()) + " features but the " +
                                c.model.tower + " tower needs " + to_string(front));
  std::unordered_map<std::string, int64_t> row_of;
  for (int64_t i = 0; i < cache->size(); ++i) row_of.emplace(cache->id(i), i);
  std::vector<int64_t> rows;
  std::vector<std::string> ids, texts;
  for (const auto& e : examples) {
    auto it = row_of.find(e.id);
    if (it == row_of.end()) {
      ++skipped;  // unreadable audio: not in the cache
      continue;
    }
    rows.push_back(it->second);
    ids.push_back(e.id);
    texts.push_back(e.text);
  }
  if (static_cast<int64_t>(rows.size()) < c.run.batch_size)
    throw std::invalid_argument(c.data.train + ": " + std::to_string(rows.size()) +
                                " usable examples, fewer than one batch of " + std::to_string(c.run.batch_size));
  const std::string store = c.data.text_store.empty()
                                ? default_beside(c.data.train, text.name + ".store.safetensors")
                                : c.data.text_store;
  log("text: " + std::to_string(texts.size()) + " texts through " + text.name + " (store " + store + ")");
  auto p = embed_with_store(store, text.name, text.fingerprint, ids, texts, text.encode);
  std::unique_ptr<DataSource> source;
  if (tower->trains_on_pooled()) {
    const std::string pooled_store = features + ".pooled.safetensors";
    log("whisper: mean-pooled encoder outputs (frozen encoder) from " + pooled_store);
    auto all = whisper_pooled_features(*tower->whisper, whisper_fingerprint(c), *cache, pooled_store,
                                       [&](int64_t done, int64_t total) {
                                         if (done % 4096 < 32 || done == total)
                                           log("whisper: " + std::to_string(done) + "/" + std::to_string(total));
                                       });
    source = std::make_unique<TableSource>(all.index_select(0, torch::tensor(rows, torch::kLong)), p,
                                           c.run.batch_size, static_cast<uint64_t>(c.run.seed));
  } else {
    source = std::make_unique<SpeechSource>(cache, rows, p, c);
  }
  source->skipped = skipped;
  return source;
}

std::unique_ptr<DataSource> image_source(const TrainConfig& c, const TextTower& text, const Log& log) {
  const auto classes = parse_int_list(c.data.classes, "data.classes");
  auto train = image_split(c).train;
  if (c.data.limit > 0 && train.size() > c.data.limit)
    train = ImageSet{train.images.narrow(0, 0, c.data.limit), train.labels.narrow(0, 0, c.data.limit)};
  if (train.size() < c.run.batch_size)
    throw std::invalid_argument(c.data.train + ": fewer training images than one batch");
  const auto caption_set = CaptionSet::read(c.data.class_names);
  const auto templates = read_templates(c.data.templates);
  std::vector<std::string> texts, ids;
  std::vector<std::pair<size_t, size_t>> spans(10, {0, 0});
  for (auto k : classes) {
    auto cap = caption_set.captions(k, templates);
    spans[static_cast<size_t>(k)] = {texts.size(), cap.size()};
    for (auto& t : cap) {
      ids.push_back(t);
      texts.push_back(t);
    }
  }
  const std::string store = c.data.text_store.empty() ? (fs::path(c.run.out) / "captions.store.safetensors").string()
                                                      : c.data.text_store;
  log("text: " + std::to_string(texts.size()) + " captions through " + text.name);
  auto p = embed_with_store(store, text.name, text.fingerprint, ids, texts, text.encode);
  std::vector<torch::Tensor> per_class(10);
  for (size_t k = 0; k < 10; ++k)
    if (spans[k].second) per_class[k] = p.narrow(0, static_cast<int64_t>(spans[k].first), static_cast<int64_t>(spans[k].second));
  return std::make_unique<ImageSource>(std::move(train), per_class, c);
}

// AdamW groups: decay on matrices, none on vectors and scalars (biases,
// norms, the logit scale), as CLIP trains.
void add_groups(std::vector<torch::optim::OptimizerParamGroup>& groups, std::vector<double>& base_lr,
                const std::vector<torch::Tensor>& params, double lr, double weight_decay) {
  std::vector<torch::Tensor> decay, plain;
  for (const auto& p : params) {
    if (!p.requires_grad()) continue;
    (p.dim() >= 2 ? decay : plain).push_back(p);
  }
  for (int k = 0; k < 2; ++k) {
    auto& list = k == 0 ? decay : plain;
    if (list.empty()) continue;
    auto o = std::make_unique<torch::optim::AdamWOptions>(lr);
    o->weight_decay(k == 0 ? weight_decay : 0.0);
    groups.emplace_back(list, std::move(o));
    base_lr.push_back(lr);
  }
}

// Linear warmup, then cosine decay to min_lr (Loshchilov & Hutter 2017).
double lr_factor(const TrainConfig& c, int64_t step) {
  const auto& o = c.optim;
  if (step < o.warmup) return static_cast<double>(step + 1) / static_cast<double>(o.warmup);
  const double span = std::max<int64_t>(1, c.run.steps - o.warmup);
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup) / span);
  const double floor = o.min_lr / o.lr;
  return floor + (1 - floor) * 0.5 * (1 + std::cos(M_PI * progress));
}

// Keys a resumed run may change: the length, and values set by calibration.
bool may_differ_on_resume(const std::string& key) {
  return key == "run.steps" || key == "loss.kernel_tau" || key == "loss.gamma";
}

}  // namespace

// ---------------------------------------------------------------------------

TowerImpl::TowerImpl(const TrainConfig& c, int64_t out_dim, bool pretrained) : config(c) {
  const auto pooling = parse_pooling(c.model.pooling);
  if (c.model.tower == "scratch") {
    auto o = SpeechEncoderOptions::preset(c.model.scratch_size);
    o.out_dim = out_dim;
    o.pooling = pooling;
    scratch = register_module("scratch", SpeechEncoder(o));
  } else if (c.model.tower == "whisper") {
    WhisperEncoder encoder = pretrained ? load_whisper_encoder(whisper_folder(c)) : WhisperEncoder(WhisperEncoderConfig{});
    whisper = register_module("whisper", WhisperTower(encoder, out_dim, pooling, c.model.head_hidden));
  } else if (c.model.tower == "image") {
    ImageEncoderOptions o;
    o.width = c.model.image_width;
    o.out_dim = out_dim;
    image = register_module("image", ImageEncoder(o));
  } else {
    throw ConfigError("config key 'model.tower': unknown tower '" + c.model.tower + "'");
  }
  LossOptions lo;
  lo.kind = parse_loss_kind(c.loss.kind);
  lo.temperature = c.loss.temperature;
  lo.weights.map = parse_weight_map(c.loss.weights);
  lo.weights.gamma = c.loss.gamma;
  lo.weights.kernel_tau = c.loss.kernel_tau;
  lo.directions = parse_weighted_directions(c.loss.directions);
  criterion = register_module("criterion", ContrastiveLoss(lo, c.loss.learn_temperature));
}

torch::Tensor TowerImpl::forward(const torch::Tensor& x, const torch::Tensor& lengths) {
  if (scratch) return scratch->forward(x, lengths);
  if (whisper) return whisper->forward(x, lengths);
  return image->forward(x);
}

torch::Tensor TowerImpl::head(const torch::Tensor& pooled) {
  TORCH_CHECK(whisper, "Tower::head: only Whisper towers have a separate head");
  return whisper->head->forward(pooled);
}

bool TowerImpl::trains_on_pooled() const {
  return whisper && config.model.whisper_training == "frozen" && config.model.pooling == "mean";
}

FrontEnd TowerImpl::front_end() const { return whisper ? FrontEnd::Whisper : FrontEnd::LogMel; }

std::string whisper_folder(const TrainConfig& c) {
  const auto folder = c.model.whisper_model.empty() ? model_folder("whisper-tiny.en-ct2") : c.model.whisper_model;
  if (!fs::exists(fs::path(folder) / "model.bin"))
    throw std::invalid_argument(folder + ": no model.bin; fetch it with scripts/fetch_models.sh whisper");
  return folder;
}

std::string whisper_fingerprint(const TrainConfig& c) {
  return fingerprint_files({(fs::path(whisper_folder(c)) / "model.bin").string()});
}

torch::Tensor whisper_pooled_features(WhisperTowerImpl& tower, const std::string& fingerprint,
                                      const FeatureCache& cache, const std::string& store_path,
                                      const std::function<void(int64_t, int64_t)>& progress) {
  TORCH_CHECK(cache.front_end() == FrontEnd::Whisper, "whisper_pooled_features: ", store_path,
              ": the feature cache does not hold Whisper features");
  const auto key = pooled_key(fingerprint);
  if (fs::exists(store_path)) {
    auto store = EmbeddingStore::read(store_path);
    if (store.tower() == key && store.size() == cache.size()) {
      std::vector<std::string> ids;
      for (int64_t i = 0; i < cache.size(); ++i) ids.push_back(cache.id(i));
      try {
        return store.lookup_ids(ids);
      } catch (const std::exception&) {
        // the cache was rebuilt with other ids: compute again
      }
    }
  }
  torch::NoGradGuard no_grad;
  const bool was_training = tower.is_training();
  tower.eval();
  auto out = torch::empty({cache.size(), tower.encoder->config.d_model});
  LoaderOptions o;
  o.batch_size = 32;
  o.workers = 1;
  SpeechLoader loader(cache, o);
  int64_t done = 0;
  while (auto b = loader.next()) {
    auto mel = b->mel;
    auto lengths = b->lengths;
    const int64_t max_frames = 2 * tower.encoder->config.max_positions;
    if (mel.size(1) > max_frames) {  // Whisper sees at most 30 s
      mel = mel.narrow(1, 0, max_frames);
      lengths = lengths.clamp_max(max_frames);
    }
    out.index_copy_(0, torch::tensor(b->indices, torch::kLong), tower.pooled(mel, lengths));
    done += static_cast<int64_t>(b->indices.size());
    if (progress) progress(done, cache.size());
  }
  tower.train(was_training);
  std::vector<std::string> ids;
  for (int64_t i = 0; i < cache.size(); ++i) ids.push_back(cache.id(i));
  EmbeddingStore(out, ids, std::vector<std::string>(ids.size()), key).write(store_path);
  return out;
}

ImageSplit image_split(const TrainConfig& c) {
  auto all = read_fashion_mnist(c.data.train, "train").only(parse_int_list(c.data.classes, "data.classes"));
  auto g = generator(static_cast<uint64_t>(c.run.seed) * 31 + 7);
  auto order = torch::randperm(all.size(), g, torch::kLong);
  const auto n_valid = static_cast<int64_t>(std::floor(c.data.valid_fraction * static_cast<double>(all.size())));
  auto pick = [&](const torch::Tensor& rows) {
    return ImageSet{all.images.index_select(0, rows), all.labels.index_select(0, rows)};
  };
  return {pick(order.narrow(0, n_valid, all.size() - n_valid)), pick(order.narrow(0, 0, n_valid))};
}

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& key) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      size_t used = 0;
      out.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw ConfigError("config key '" + key + "': '" + item + "' is not an integer");
    }
  }
  if (out.empty()) throw ConfigError("config key '" + key + "': empty list");
  for (auto v : out)
    if (v < 0 || v > 9) throw ConfigError("config key '" + key + "': class " + std::to_string(v) + " outside 0..9");
  return out;
}

CaptionSet CaptionSet::read(const std::string& path) {
  const auto lines = read_lines(path);
  CaptionSet s;
  s.names.assign(10, "");
  s.synonyms.assign(10, {});
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& line = lines[i];
    if (line.empty() || line[0] == '#') continue;
    const std::string where = path + ":" + std::to_string(i + 1);
    std::vector<std::string> cols;
    std::stringstream in(line);
    for (std::string col; std::getline(in, col, '\t');) cols.push_back(col);
    if (cols.size() < 2 || cols[1].empty()) throw std::invalid_argument(where + ": expected label<TAB>name[<TAB>synonyms]");
    int64_t label = -1;
    try {
      label = std::stoll(cols[0]);
    } catch (const std::exception&) {
    }
    if (label < 0 || label > 9) throw std::invalid_argument(where + ": label '" + cols[0] + "' is not 0..9");
    if (!s.names[static_cast<size_t>(label)].empty()) throw std::invalid_argument(where + ": label " + cols[0] + " twice");
    s.names[static_cast<size_t>(label)] = cols[1];
    auto& syn = s.synonyms[static_cast<size_t>(label)];
    syn.push_back(cols[1]);
    if (cols.size() > 2) {
      std::stringstream list(cols[2]);
      for (std::string w; std::getline(list, w, ',');)
        if (!w.empty()) syn.push_back(w);
    }
  }
  for (size_t k = 0; k < 10; ++k)
    if (s.names[k].empty()) throw std::invalid_argument(path + ": no line for label " + std::to_string(k));
  return s;
}

std::vector<std::string> CaptionSet::captions(int64_t label, const std::vector<std::string>& templates) const {
  std::vector<std::string> out;
  for (const auto& word : synonyms.at(static_cast<size_t>(label)))
    for (const auto& t : templates) {
      const auto at = t.find("{}");
      out.push_back(t.substr(0, at) + word + t.substr(at + 2));
    }
  return out;
}

// ---------------------------------------------------------------------------

TrainSummary train(const TrainConfig& given, const TrainOptions& options) {
  given.validate();
  TrainConfig c = given;
  const Log log = options.log ? options.log : [](const std::string&) {};
  const fs::path run_dir = c.run.out;
  const auto checkpoints = list_checkpoints(run_dir.string());
  std::optional<ModelFile> resume_from;
  if (options.resume && !checkpoints.empty()) {
    resume_from = read_model_file(checkpoints.back());
    const auto saved = resume_from->config.values(), now = c.values();
    for (size_t i = 0; i < saved.size(); ++i)
      if (saved[i] != now[i] && !may_differ_on_resume(saved[i].first))
        throw ConfigError(checkpoints.back() + ": config key '" + saved[i].first + "' is " + saved[i].second +
                          " in the run being resumed but " + now[i].second + " now");
    c.loss.kernel_tau = resume_from->config.loss.kernel_tau;
    c.loss.gamma = resume_from->config.loss.gamma;
    log("resume: from " + checkpoints.back());
  } else if (!checkpoints.empty()) {
    throw std::invalid_argument(run_dir.string() + ": holds checkpoints of an earlier run; pass --resume to continue it or choose another run.out");
  } else if (options.resume) {
    log("resume: no checkpoint in " + run_dir.string() + ", starting at step 0");
  }
  fs::create_directories(run_dir / "checkpoints");
  const int previous_threads = torch::get_num_threads();
  set_num_threads(static_cast<int>(c.run.threads));
  torch::manual_seed(static_cast<uint64_t>(c.run.seed));

  TextTowerOptions to;
  to.tower = c.text.tower;
  to.model = c.text.model;
  const auto text = load_text_tower(to);
  const int64_t out_dim = text.encode({"a"}).size(1);
  Tower tower(c, out_dim, /*pretrained=*/true);
  auto source = c.is_speech() ? speech_source(c, tower, text, log) : image_source(c, text, log);
  const int64_t per_epoch = source->batches_per_epoch();
  TORCH_CHECK(per_epoch >= 1, "train: no full batch in the training data");

  auto& loss_options = tower->criterion->options;
  namespace F = torch::nn::functional;
  if (c.loss.center) {
    loss_options.weights.center =
        F::normalize(source->frozen(), F::NormalizeFuncOptions().dim(1)).mean(0).detach();
  }
  if (c.loss.calibrate > 0 && !resume_from) {
    // Sharpness from the frozen side's statistics: the median over a few batches.
    std::vector<double> picks;
    for (int64_t b = 0; b < std::min<int64_t>(8, per_epoch); ++b) {
      auto w = calibrate_weights(source->batch(0, b).p, loss_options.weights, c.loss.calibrate);
      picks.push_back(c.loss.weights == "kernel" ? w.kernel_tau : w.gamma);
    }
    std::sort(picks.begin(), picks.end());
    const double pick = picks[picks.size() / 2];
    (c.loss.weights == "kernel" ? c.loss.kernel_tau : c.loss.gamma) = pick;
    (c.loss.weights == "kernel" ? loss_options.weights.kernel_tau : loss_options.weights.gamma) = pick;
    log("calibrate: " + std::string(c.loss.weights == "kernel" ? "kernel_tau" : "gamma") + " = " +
        std::to_string(pick) + " for " + std::to_string(c.loss.calibrate) + " effective positives per row");
  }
  tower->config = c;
  const bool needs_labels = loss_options.kind == LossKind::SupCon || loss_options.weights.map == WeightMap::Labels;
  if (needs_labels && c.is_speech())
    throw ConfigError("config key 'loss.weights'/'loss.kind': labels are needed, but speech training data has none");

  // Optimizer: the head, pooling and temperature at optim.lr; Whisper blocks
  // at encoder_lr with layer-wise decay.
  std::vector<torch::optim::OptimizerParamGroup> groups;
  std::vector<double> base_lr;
  std::vector<torch::Tensor> top;
  for (const auto& item : tower->named_parameters()) {
    if (tower->whisper && item.key().rfind("whisper.encoder.", 0) == 0) continue;
    top.push_back(item.value());
  }
  add_groups(groups, base_lr, top, c.optim.lr, c.optim.weight_decay);
  if (tower->whisper) {
    WhisperTrainingOptions wo;
    wo.mode = parse_whisper_training(c.model.whisper_training);
    wo.top_blocks = c.model.top_blocks;
    wo.learning_rate = c.optim.encoder_lr;
    wo.layer_decay = c.model.layer_decay;
    for (auto& g : whisper_parameter_groups(tower->whisper->encoder, wo))
      add_groups(groups, base_lr, g.params(), g.options().get_lr(), c.optim.weight_decay);
  }
  torch::optim::AdamW optimizer(std::move(groups), torch::optim::AdamWOptions(c.optim.lr));
  std::vector<torch::Tensor> trained;
  for (auto& g : optimizer.param_groups())
    for (auto& p : g.params()) trained.push_back(p);

  int64_t start = 0;
  if (resume_from) {
    load_weights(tower, *resume_from, checkpoints.back());
    torch::serialize::InputArchive opt;
    if (!resume_from->archive.try_read("optimizer", opt))
      throw std::invalid_argument(checkpoints.back() + ": has no optimizer state to resume from");
    optimizer.load(opt);
    start = resume_from->step;
  }
  {
    std::ofstream(run_dir / "config.toml") << c.to_toml();
  }
  // metrics.jsonl: keep the lines up to the step we resume from.
  const auto metrics_path = run_dir / "metrics.jsonl";
  {
    std::vector<std::string> kept;
    if (start > 0 && fs::exists(metrics_path)) {
      for (const auto& line : read_lines(metrics_path.string())) {
        try {
          if (json::parse(line).at("step").get<int64_t>() <= start) kept.push_back(line);
        } catch (const std::exception&) {
        }
      }
    }
    std::ofstream out(metrics_path, std::ios::trunc);
    for (const auto& line : kept) out << line << "\n";
  }
  std::ofstream metrics(metrics_path, std::ios::app);

  TrainSummary summary;
  summary.run_dir = run_dir.string();
  summary.start_step = start;
  summary.skipped = source->skipped;
  tower->train();
  if (tower->whisper && c.model.whisper_training == "frozen") tower->whisper->encoder->eval();
  const auto t0 = std::chrono::steady_clock::now();
  auto window_start = t0;
  int64_t window_samples = 0;
  double last_loss = 0;
  for (int64_t step = start; step < c.run.steps; ++step) {
    const int64_t epoch = step / per_epoch, index = step % per_epoch;
    auto batch = source->batch(epoch, index);
    torch::manual_seed(static_cast<uint64_t>(c.run.seed) * 1000003 + static_cast<uint64_t>(step));  // dropout
    const double factor = lr_factor(c, step);
    for (size_t g = 0; g < optimizer.param_groups().size(); ++g)
      static_cast<torch::optim::AdamWOptions&>(optimizer.param_groups()[g].options()).lr(base_lr[g] * factor);
    optimizer.zero_grad();
    auto q = tower->trains_on_pooled() ? tower->head(batch.x) : tower->forward(batch.x, batch.lengths);
    auto loss = tower->criterion->forward(batch.p, q, needs_labels ? batch.labels : torch::Tensor());
    last_loss = loss.item<double>();
    if (!std::isfinite(last_loss))
      throw std::runtime_error("train: the loss is not finite at step " + std::to_string(step + 1) +
                               " (lower optim.lr?); the last checkpoint is kept");
    loss.backward();
    if (c.optim.clip > 0) torch::nn::utils::clip_grad_norm_(trained, c.optim.clip);
    optimizer.step();
    window_samples += c.run.batch_size;
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - t0).count();
    TrainProgress pr;
    pr.step = step + 1;
    pr.steps = c.run.steps;
    pr.loss = last_loss;
    pr.logit_scale = tower->criterion->logit_scale.defined() ? tower->criterion->logit_scale.exp().item<double>()
                                                             : 1.0 / c.loss.temperature;
    pr.lr = c.optim.lr * factor;
    pr.samples_per_second = static_cast<double>((step + 1 - start) * c.run.batch_size) / std::max(elapsed, 1e-9);
    pr.eta_seconds = static_cast<double>(c.run.steps - step - 1) * elapsed / static_cast<double>(step + 1 - start);
    if ((step + 1) % c.run.log_every == 0 || step + 1 == c.run.steps) {
      const double window = std::chrono::duration<double>(now - window_start).count();
      metrics << json{{"step", step + 1},
                      {"epoch", epoch},
                      {"loss", last_loss},
                      {"logit_scale", pr.logit_scale},
                      {"lr", pr.lr},
                      {"samples_per_s", static_cast<double>(window_samples) / std::max(window, 1e-9)},
                      {"skipped", source->skipped}}
                     .dump()
              << "\n"
              << std::flush;
      window_start = now;
      window_samples = 0;
    }
    if (options.progress) options.progress(pr);
    if ((step + 1) % c.run.checkpoint_every == 0 || step + 1 == c.run.steps) {
      const auto path = (run_dir / "checkpoints" / checkpoint_name(step + 1)).string();
      write_model_file(path, tower, out_dim, step + 1, &optimizer);
      auto all = list_checkpoints(run_dir.string());
      for (size_t i = 0; i + static_cast<size_t>(c.run.keep_checkpoints) < all.size(); ++i) fs::remove(all[i]);
    }
  }
  write_model_file((run_dir / "model.pt").string(), tower, out_dim, c.run.steps, nullptr);
  summary.steps = c.run.steps;
  summary.final_loss = last_loss;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log("model: " + (run_dir / "model.pt").string());
  set_num_threads(previous_threads);
  return summary;
}

// ---------------------------------------------------------------------------

TrainedModel TrainedModel::load(const std::string& path) {
  std::string file = path;
  if (fs::is_directory(path)) {
    file = (fs::path(path) / "model.pt").string();
    if (!fs::exists(file)) {
      auto all = list_checkpoints(path);
      if (all.empty()) throw std::invalid_argument(path + ": no model.pt and no checkpoints (not a run directory?)");
      file = all.back();
    }
  }
  auto m = read_model_file(file);
  TrainedModel out;
  if (m.config.model.tower == "whisper" && !m.whisper_shape)
    throw std::invalid_argument(file + ": a Whisper model without the encoder's shape");
  TrainConfig c = m.config;
  Tower tower(c, m.out_dim, /*pretrained=*/false);
  if (m.whisper_shape) {
    // The encoder's shape comes from the file (the default is tiny.en's).
    tower->whisper = WhisperTower(WhisperEncoder(*m.whisper_shape), m.out_dim, parse_pooling(c.model.pooling),
                                  c.model.head_hidden);
    tower->replace_module("whisper", tower->whisper);
  }
  load_weights(tower, m, file);
  tower->eval();
  out.tower_ = tower;
  out.step_ = m.step;
  out.source_ = file;
  return out;
}

std::string TrainedModel::weights_digest() const {
  std::string bytes;
  auto add = [&](const std::string& name, const torch::Tensor& t) {
    auto c = t.detach().contiguous().cpu();
    bytes += name + c10::str(c.sizes());
    bytes.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  };
  for (const auto& p : tower_->named_parameters()) add(p.key(), p.value());
  for (const auto& b : tower_->named_buffers()) add(b.key(), b.value());
  return content_key("weights", bytes);
}

TextTower TrainedModel::text_tower() const {
  TextTowerOptions o;
  o.tower = tower_->config.text.tower;
  o.model = tower_->config.text.model;
  return load_text_tower(o);
}

torch::Tensor TrainedModel::embed_waveforms(const std::vector<torch::Tensor>& waveforms) {
  TORCH_CHECK(is_speech(), "embed_waveforms: ", source_, " is an image model");
  torch::NoGradGuard no_grad;
  LogMel log_mel;
  WhisperLogMel whisper_mel;
  std::vector<torch::Tensor> feats;
  for (const auto& w : waveforms) {
    auto f = tower_->whisper ? whisper_mel(w) : log_mel(w);
    if (tower_->whisper) f = f.narrow(0, 0, std::min<int64_t>(f.size(0), 2 * tower_->whisper->encoder->config.max_positions));
    feats.push_back(f);
  }
  std::vector<int64_t> order(feats.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return feats[static_cast<size_t>(a)].size(0) < feats[static_cast<size_t>(b)].size(0); });
  auto out = torch::empty({static_cast<int64_t>(feats.size()), 0});
  const size_t batch = 32;
  for (size_t s = 0; s < order.size(); s += batch) {
    const size_t e = std::min(order.size(), s + batch);
    int64_t longest = 0;
    for (size_t i = s; i < e; ++i) longest = std::max(longest, feats[static_cast<size_t>(order[i])].size(0));
    auto mel = torch::zeros({static_cast<int64_t>(e - s), longest, feats[0].size(1)});
    auto lengths = torch::empty({static_cast<int64_t>(e - s)}, torch::kLong);
    std::vector<int64_t> rows;
    for (size_t i = s; i < e; ++i) {
      const auto& f = feats[static_cast<size_t>(order[i])];
      mel[static_cast<int64_t>(i - s)].narrow(0, 0, f.size(0)).copy_(f);
      lengths[static_cast<int64_t>(i - s)] = f.size(0);
      rows.push_back(order[i]);
    }
    auto q = tower_->forward(mel, lengths);
    if (out.size(1) == 0) out = torch::empty({static_cast<int64_t>(feats.size()), q.size(1)});
    out.index_copy_(0, torch::tensor(rows, torch::kLong), q);
  }
  return torch::nn::functional::normalize(out, torch::nn::functional::NormalizeFuncOptions().dim(1));
}

torch::Tensor TrainedModel::embed_audio_files(const std::vector<std::string>& paths) {
  std::vector<torch::Tensor> waves;
  for (const auto& p : paths) waves.push_back(load_audio(p, 16000));
  return embed_waveforms(waves);
}

torch::Tensor TrainedModel::embed_cache(const FeatureCache& cache, const std::string& pooled_store) {
  TORCH_CHECK(is_speech(), "embed_cache: ", source_, " is an image model");
  if (cache.front_end() != tower_->front_end())
    throw std::invalid_argument("embed_cache: the feature cache holds " + std::string(to_string(cache.front_end())) +
                                " features, the model needs " + to_string(tower_->front_end()));
  torch::NoGradGuard no_grad;
  namespace F = torch::nn::functional;
  if (tower_->trains_on_pooled() && !pooled_store.empty()) {
    auto pooled = whisper_pooled_features(*tower_->whisper, whisper_fingerprint(config()), cache, pooled_store);
    return F::normalize(tower_->head(pooled), F::NormalizeFuncOptions().dim(1));
  }
  LoaderOptions o;
  o.batch_size = 32;
  o.workers = 1;
  SpeechLoader loader(cache, o);
  torch::Tensor out;
  while (auto b = loader.next()) {
    auto mel = b->mel;
    auto lengths = b->lengths;
    if (tower_->whisper) {
      const int64_t max_frames = 2 * tower_->whisper->encoder->config.max_positions;
      if (mel.size(1) > max_frames) mel = mel.narrow(1, 0, max_frames), lengths = lengths.clamp_max(max_frames);
    }
    auto q = tower_->forward(mel, lengths);
    if (!out.defined()) out = torch::empty({cache.size(), q.size(1)});
    out.index_copy_(0, torch::tensor(b->indices, torch::kLong), q);
  }
  return F::normalize(out, F::NormalizeFuncOptions().dim(1));
}

torch::Tensor TrainedModel::embed_images(const torch::Tensor& images) {
  TORCH_CHECK(!is_speech(), "embed_images: ", source_, " is a speech model");
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (int64_t s = 0; s < images.size(0); s += 512)
    parts.push_back(tower_->forward(normalise_images(images.narrow(0, s, std::min<int64_t>(512, images.size(0) - s)))));
  namespace F = torch::nn::functional;
  return F::normalize(torch::cat(parts, 0), F::NormalizeFuncOptions().dim(1));
}

torch::Tensor TrainedModel::embed_image_files(const std::vector<std::string>& paths) {
  std::vector<torch::Tensor> images;
  for (const auto& p : paths) images.push_back(load_image(p));
  return embed_images(torch::stack(images));
}

}  // namespace cwcl
