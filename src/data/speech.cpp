#include <cwcl/error.h>
#include <cwcl/data/speech.h>
#include <cwcl/seeds.h>
#include <cwcl/threads.h>

#include <cwcl/io/safetensors.h>
#include <cwcl/io/store.h>

#include "jsonl.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>
#include <unordered_set>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cwcl {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kCacheFormat = "cwcl-feature-cache/1";

}  // namespace

SpeechManifest read_speech_manifest(const std::string& path) {
  const fs::path base = fs::path(path).parent_path();
  SpeechManifest m;
  std::unordered_set<std::string> ids;
  const auto skips = detail::read_jsonl(path, [&](const json& j) -> std::string {
    if (!j.is_object()) return "not a JSON object";
    std::string missing;
    for (const char* key : {"id", "audio", "text"})
      if (!j.contains(key) || !j[key].is_string()) missing += missing.empty() ? key : std::string(", ") + key;
    if (!missing.empty()) return "no string field(s) " + missing;
    const auto id = j["id"].get<std::string>(), text = j["text"].get<std::string>();
    if (id.empty() || text.find_first_not_of(" \t\r\n") == std::string::npos) return id.empty() ? "empty id" : "empty text";
    // A repeated id would make two clips one row of every cache and store.
    if (!ids.insert(id).second) return "duplicate id '" + shorten(id) + "' (the first line with it is kept)";
    fs::path audio = j["audio"].get<std::string>();
    if (audio.is_relative()) audio = base / audio;
    m.examples.push_back({id, audio.string(), text});
    return "";
  });
  m.skipped = skips.skipped;
  m.problems = skips.problems;
  return m;
}

std::string copy_id(const std::string& id, int64_t copy) {
  TORCH_CHECK(copy >= 0, "copy_id: copy must be >= 0, got ", copy);
  return copy == 0 ? id : id + "#copy" + std::to_string(copy);
}

torch::Tensor pick_copies(int64_t examples, int64_t versions, uint64_t seed, int64_t epoch) {
  TORCH_CHECK(examples >= 0 && versions >= 1, "pick_copies: need examples >= 0 and versions >= 1");
  if (versions == 1) return torch::zeros({examples}, torch::kLong);
  auto g = make_generator(derive_seed(seed, SeedStream::CopyPick, static_cast<uint64_t>(epoch)));
  return torch::randint(versions, {examples}, g, torch::kLong);
}

std::string feature_cache_path(const std::string& manifest, FrontEnd front_end, int64_t limit,
                               const AugmentedCopies& copies, bool trimmed) {
  const std::string limited = limit > 0 ? ".first" + std::to_string(limit) : "";
  AugmentedCopies defaults;
  defaults.count = copies.count;
  const auto description = FeatureCache::describe(copies);
  // The default options keep the plain name that caches built before the
  // options were configurable have; others get 32 bits of the XXH3 hash of
  // their description (content_key, the stores' stable hash of a text).
  const std::string variant =
      description == FeatureCache::describe(defaults) ? "" : "-" + content_key("copies", description).substr(0, 8);
  const std::string copied = copies.count > 0 ? ".copies" + std::to_string(copies.count) + variant : "";
  return manifest + "." + name_of(front_end) + limited + copied + (trimmed ? ".trimmed" : "") +
         ".features.safetensors";
}

FeatureCache FeatureCache::open_or_build(const std::string& path, const std::vector<SpeechExample>& examples,
                                         FrontEnd front, const AugmentedCopies& copies,
                                         const std::function<void(const std::string&)>& log,
                                         const std::optional<SilenceTrimOptions>& trim) {
  auto say = [&](const std::string& m) {
    if (log) log(m);
  };
  if (!std::filesystem::exists(path)) {
    say("features: computing " + std::string(name_of(front)) + " features of " + std::to_string(examples.size()) +
        " utterances" + (trim ? ", silence trimmed," : "") +
        (copies.count > 0 ? " and " + std::to_string(copies.count) + " augmented copies of each" : "") +
        " into " + path);
    int64_t last = -1;
    auto report = build(
        examples, path, LogMelOptions{}, 2,
        [&](int64_t done, int64_t total) {
          const int64_t percent = 100 * done / total;
          if (percent / 10 != last / 10) say("features: " + std::to_string(done) + "/" + std::to_string(total));
          last = percent;
        },
        front, copies, trim);
    for (const auto& p : report.problems) say("skipped " + p);
    say("features: " + std::to_string(report.examples) + " clips in " + std::to_string(std::lround(report.seconds)) +
        " s");
  }
  auto cache = open(path);
  if (cache.front_end() != front)
    throw DataError(path + ": holds " + name_of(cache.front_end()) + " features but the tower needs " +
                    name_of(front));
  if (cache.copies() != describe(copies))
    throw DataError(path + ": holds augmented copies '" + cache.copies() + "' but data.audio_copies = " +
                    std::to_string(copies.count) + " needs '" + describe(copies) +
                    "'; remove the file or point data.features elsewhere");
  if (cache.trim() != describe_trim(trim))
    throw DataError(path + ": holds clips " + (cache.trim().empty() ? "untrimmed" : "trimmed '" + cache.trim() + "'") +
                    " but data.trim_silence = " + (trim ? "true needs '" + describe_trim(trim) + "'" : "false") +
                    "; remove the file or point data.features elsewhere");
  const auto changed = cache.changed_audio(examples);
  if (!changed.empty())
    throw DataError(path + ": built from other audio: " + std::to_string(changed.size()) +
                    " clips changed since (first: " + changed.front()->audio +
                    "); remove the file to rebuild it from the clips as they are");
  return cache;
}

std::string FeatureCache::describe_trim(const std::optional<SilenceTrimOptions>& trim) {
  if (!trim) return "";
  return json{{"threshold_db", trim->threshold_db},
              {"margin_seconds", trim->margin_seconds},
              {"frame_seconds", trim->frame_seconds}}
      .dump();
}

std::string FeatureCache::describe(const AugmentedCopies& c) {
  if (c.count == 0) return "";
  const auto& o = c.options;
  auto described = json{{"count", c.count},         {"seed", c.seed},
              {"min_speed", o.min_speed}, {"max_speed", o.max_speed},
              {"reverb_probability", o.reverb_probability},
              {"min_rt60", o.min_rt60}, {"max_rt60", o.max_rt60},
              {"min_drr_db", o.min_drr_db}, {"max_drr_db", o.max_drr_db},
              {"noise_probability", o.noise_probability},
              {"min_snr_db", o.min_snr_db}, {"max_snr_db", o.max_snr_db},
              {"max_gain_db", o.max_gain_db}};
  // Only a warp in use is described, so caches built before it existed keep
  // their description and name.
  if (c.warp.active()) {
    described["min_warp"] = c.warp.min_factor;
    described["max_warp"] = c.warp.max_factor;
  }
  return described.dump();
}

FeatureCache::BuildReport FeatureCache::build(const std::vector<SpeechExample>& examples,
                                              const std::string& path, const LogMelOptions& options,
                                              int threads, const std::function<void(int64_t, int64_t)>& progress,
                                              FrontEnd front_end, const AugmentedCopies& copies,
                                              const std::optional<SilenceTrimOptions>& trim) {
  TORCH_CHECK(threads >= 1, "FeatureCache::build: threads must be >= 1");
  TORCH_CHECK(copies.count >= 0, "FeatureCache::build: copies.count must be >= 0");
  const auto start = std::chrono::steady_clock::now();
  const int64_t n = static_cast<int64_t>(examples.size());
  const int64_t per_example = 1 + copies.count;
  // feats[i * per_example + k]: copy k of example i.
  std::vector<torch::Tensor> feats(examples.size() * static_cast<size_t>(per_example));
  std::vector<std::string> errors(examples.size());
  std::atomic<int64_t> next{0}, done{0};
  std::mutex progress_mutex;
  auto work = [&] {
    ThreadCountScope one_thread(1);  // one clip per thread; see docs/performance.md
    LogMel log_mel(options);
    WhisperLogMel whisper_mel;
    auto features_of = [&](const torch::Tensor& audio, double warp_factor) {
      if (warp_factor == 1.0) return front_end == FrontEnd::Whisper ? whisper_mel(audio) : log_mel(audio);
      // A warped copy gets a front end of its own (new filters only: cheap).
      if (front_end == FrontEnd::Whisper) return WhisperLogMel(warp_factor)(audio);
      auto warped = options;
      warped.warp_factor = warp_factor;
      return LogMel(warped)(audio);
    };
    for (int64_t i; (i = next++) < n;) {
      const auto& example = examples[static_cast<size_t>(i)];
      try {
        const int rate = front_end == FrontEnd::Whisper ? 16000 : options.sample_rate;
        auto audio = load_audio(example.audio, rate);
        if (trim) audio = trim_silence(audio, rate, *trim);
        for (int64_t k = 0; k < per_example; ++k) {
          torch::Tensor f;
          if (k == 0) {
            f = features_of(audio, 1.0);
          } else {
            auto gen = make_generator(derive_seed(copies.seed, SeedStream::WaveAugment, static_cast<uint64_t>(i),
                                                  static_cast<uint64_t>(k)));
            auto augmented = augment_waveform(audio, rate, copies.options, gen);
            f = features_of(augmented, draw_warp_factor(copies.warp, gen));
          }
          if (f.size(0) == 0) throw AudioError(example.audio + ": shorter than one frame");
          feats[static_cast<size_t>(i * per_example + k)] = f.to(torch::kHalf);
        }
      } catch (const std::exception& e) {
        // A non-empty error leaves all of the example's rows out below.
        errors[static_cast<size_t>(i)] = *e.what() ? message_of(e) : example.audio + ": unreadable";
      }
      const int64_t d = ++done;
      if (progress) {
        std::lock_guard<std::mutex> lock(progress_mutex);
        progress(d, n);
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(work);
  for (auto& t : pool) t.join();

  BuildReport report;
  json audio_bytes = json::object();
  std::vector<std::string> ids;
  std::vector<int64_t> offsets, frames;
  std::vector<torch::Tensor> kept;
  int64_t total = 0;
  for (size_t i = 0; i < examples.size(); ++i) {
    if (!errors[i].empty()) {
      ++report.skipped;
      if (report.problems.size() < 10) report.problems.push_back(errors[i]);
      continue;
    }
    ++report.examples;
    std::error_code ignored;  // a file gone since it was read: recorded as -1, so "changed"
    audio_bytes[examples[i].id] = static_cast<int64_t>(std::filesystem::file_size(examples[i].audio, ignored));
    for (int64_t k = 0; k < per_example; ++k) {
      const auto& f = feats[i * static_cast<size_t>(per_example) + static_cast<size_t>(k)];
      ids.push_back(copy_id(examples[i].id, k));
      offsets.push_back(total);
      frames.push_back(f.size(0));
      total += f.size(0);
      kept.push_back(f);
    }
  }
  if (kept.empty())
    throw DataError(path + ": no readable audio among " + std::to_string(n) + " examples" +
                    (report.problems.empty() ? "" : " (first: " + report.problems.front() + ")"));
  json meta_options = {{"sample_rate", options.sample_rate}, {"n_fft", options.n_fft},
                       {"hop_length", options.hop_length}, {"n_mels", options.n_mels}};
  write_safetensors(path, {{"features", torch::cat(kept, 0)}},
                    {{"format", kCacheFormat},
                     {"ids", json(ids).dump()},
                     {"offsets", json(offsets).dump()},
                     {"frames", json(frames).dump()},
                     {"options", meta_options.dump()},
                     {"front_end", name_of(front_end)},
                     {"copies", describe(copies)},
                     {"trim", describe_trim(trim)},
                     {"audio_bytes", audio_bytes.dump()}});
  report.audio_seconds = static_cast<double>(total) * options.hop_length / options.sample_rate;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

FeatureCache FeatureCache::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw FormatError(path + ": cannot open");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size <= 0) {
    ::close(fd);
    throw FormatError(path + ": empty or unreadable");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) throw FormatError(path + ": mmap failed");
  std::shared_ptr<void> mapping(map, [size](void* p) { ::munmap(p, size); });
  const auto* bytes = static_cast<const uint8_t*>(map);
  auto header = parse_safetensors_header(bytes, size, path);
  auto meta = [&](const char* key) {
    auto it = header.metadata.find(key);
    if (it == header.metadata.end()) throw FormatError(path + ": feature cache has no '" + key + "' metadata");
    return json::parse(it->second);
  };
  if (header.metadata.count("format") == 0 || header.metadata.at("format") != kCacheFormat)
    throw FormatError(path + ": not a cwcl feature cache");
  const SafetensorsEntry* entry = nullptr;
  for (const auto& e : header.entries)
    if (e.name == "features") entry = &e;
  if (!entry || entry->dtype != "F16" || entry->shape.size() != 2)
    throw FormatError(path + ": feature cache needs an F16 [frames, n_mels] tensor 'features'");
  FeatureCache c;
  c.mapping_ = mapping;
  if (header.metadata.count("front_end")) {
    try {
      c.front_end_ = parse_name<FrontEnd>(header.metadata.at("front_end"));
    } catch (const UsageError& e) {
      throw FormatError(path + ": " + e.what());
    }
  }
  if (header.metadata.count("copies")) c.copies_ = header.metadata.at("copies");
  if (header.metadata.count("trim")) c.trim_ = header.metadata.at("trim");
  // A view into the mapping: no copy; read-only pages.
  c.all_ = torch::from_blob(const_cast<uint8_t*>(bytes + header.data_offset + entry->begin), entry->shape,
                            torch::TensorOptions().dtype(torch::kHalf));
  try {
    c.ids_ = meta("ids").get<std::vector<std::string>>();
    c.offsets_ = meta("offsets").get<std::vector<int64_t>>();
    c.frames_ = meta("frames").get<std::vector<int64_t>>();
    if (header.metadata.count("audio_bytes"))  // absent from caches written before it
      c.audio_bytes_ = meta("audio_bytes").get<std::unordered_map<std::string, int64_t>>();
  } catch (const json::exception& e) {
    throw FormatError(path + ": bad feature cache index: " + e.what());
  }
  if (c.offsets_.size() != c.ids_.size() || c.frames_.size() != c.ids_.size())
    throw FormatError(path + ": feature cache index lengths disagree");
  for (size_t i = 0; i < c.ids_.size(); ++i)
    if (c.offsets_[i] < 0 || c.frames_[i] <= 0 || c.offsets_[i] + c.frames_[i] > entry->shape[0])
      throw FormatError(path + ": feature cache entry " + std::to_string(i) + " lies outside the features");
  return c;
}

torch::Tensor FeatureCache::features(int64_t i) const {
  TORCH_CHECK(i >= 0 && i < size(), "FeatureCache: index ", i, " out of range");
  return all_.narrow(0, offsets_[static_cast<size_t>(i)], frames_[static_cast<size_t>(i)]).to(torch::kFloat);
}

std::vector<const SpeechExample*> FeatureCache::changed_audio(const std::vector<SpeechExample>& examples) const {
  std::vector<const SpeechExample*> changed;
  for (const auto& example : examples) {
    auto it = audio_bytes_.find(example.id);
    if (it == audio_bytes_.end()) continue;  // left out at build (unreadable), or an older cache
    std::error_code missing;
    const auto now = std::filesystem::file_size(example.audio, missing);
    if (missing || static_cast<int64_t>(now) != it->second) changed.push_back(&example);
  }
  return changed;
}

int64_t FeatureCache::index_of(const std::string& id) const {
  auto it = std::find(ids_.begin(), ids_.end(), id);
  return it == ids_.end() ? -1 : static_cast<int64_t>(it - ids_.begin());
}

// ---------------------------------------------------------------------------

struct SpeechLoader::State {
  const FeatureCache& cache;
  LoaderOptions options;
  int64_t epoch;
  std::vector<std::vector<int64_t>> batches;
  std::map<int64_t, SpeechBatch> ready;  // by batch number
  int64_t next_to_make = 0, next_to_give = 0;
  bool stop = false;
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::thread> workers;

  State(const FeatureCache& c, LoaderOptions o, int64_t e) : cache(c), options(std::move(o)), epoch(e) {}

  SpeechBatch assemble(int64_t b) {
    const auto& global = batches[static_cast<size_t>(b)];
    const auto size = static_cast<int64_t>(global.size());
    const int64_t first = options.shard.first(size);
    const std::vector<int64_t> idx(global.begin() + first, global.begin() + first + options.shard.rows(size));
    int64_t longest = 0;
    for (auto i : idx) longest = std::max(longest, cache.frames(i));
    const int64_t n_mels = cache.features(idx[0]).size(1);
    SpeechBatch out;
    out.mel = torch::zeros({static_cast<int64_t>(idx.size()), longest, n_mels});
    out.lengths = torch::empty({static_cast<int64_t>(idx.size())}, torch::kLong);
    out.indices = idx;
    // A generator per row of the global batch keeps augmentation independent
    // of thread timing and of how the batch is sharded.
    const auto batch_seed = derive_seed(options.seed, SeedStream::SpecAugment, static_cast<uint64_t>(epoch),
                                        static_cast<uint64_t>(b));
    for (size_t r = 0; r < idx.size(); ++r) {
      auto f = cache.features(idx[r]);
      if (options.spec_augment) {
        auto gen = make_generator(derive_seed(batch_seed, SeedStream::SpecAugment, static_cast<uint64_t>(first) + r));
        f = spec_augment(f, *options.spec_augment, gen);
      }
      out.mel[static_cast<int64_t>(r)].narrow(0, 0, f.size(0)).copy_(f);
      out.lengths[static_cast<int64_t>(r)] = f.size(0);
    }
    return out;
  }

  void work() {
    ThreadCountScope one_thread(1);  // batches in parallel, each on one thread
    while (true) {
      int64_t b;
      {
        std::unique_lock<std::mutex> lock(mutex);
        cv.wait(lock, [&] {
          return stop || (next_to_make < static_cast<int64_t>(batches.size()) &&
                          next_to_make - next_to_give < options.prefetch);
        });
        if (stop) return;
        b = next_to_make++;
      }
      auto batch = assemble(b);
      {
        std::lock_guard<std::mutex> lock(mutex);
        ready.emplace(b, std::move(batch));
      }
      cv.notify_all();
    }
  }
};

SpeechLoader::SpeechLoader(const FeatureCache& cache, LoaderOptions o, int64_t epoch)
    : state_(std::make_unique<State>(cache, o, epoch)) {
  TORCH_CHECK(o.batch_size >= 1 && o.workers >= 1 && o.prefetch >= 1, "SpeechLoader: bad options");
  TORCH_CHECK(o.shard.count >= 1 && o.shard.index >= 0 && o.shard.index < o.shard.count &&
                  (!o.drop_last || o.batch_size % o.shard.count == 0),
              "SpeechLoader: shard ", o.shard.index, " of ", o.shard.count, " does not divide batches of ",
              o.batch_size);
  auto& s = *state_;
  std::vector<int64_t> order = o.rows;
  if (order.empty()) {
    order.resize(static_cast<size_t>(cache.size()));
    std::iota(order.begin(), order.end(), 0);
  }
  for (auto r : order) TORCH_CHECK(r >= 0 && r < cache.size(), "SpeechLoader: row ", r, " outside the cache");
  std::mt19937_64 rng(derive_seed(o.seed, SeedStream::EpochOrder, static_cast<uint64_t>(epoch)));
  std::shuffle(order.begin(), order.end(), rng);
  if (o.bucket_by_length)
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return cache.frames(a) < cache.frames(b); });
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(o.batch_size)) {
    const size_t end = std::min(order.size(), start + static_cast<size_t>(o.batch_size));
    if (o.drop_last && end - start < static_cast<size_t>(o.batch_size)) break;
    s.batches.emplace_back(order.begin() + static_cast<long>(start), order.begin() + static_cast<long>(end));
  }
  if (o.bucket_by_length) std::shuffle(s.batches.begin(), s.batches.end(), rng);
  TORCH_CHECK(o.first_batch >= 0, "SpeechLoader: first_batch must be >= 0");
  s.next_to_make = s.next_to_give = std::min<int64_t>(o.first_batch, static_cast<int64_t>(s.batches.size()));
  for (int w = 0; w < o.workers; ++w) s.workers.emplace_back([&s] { s.work(); });
}

SpeechLoader::~SpeechLoader() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stop = true;
  }
  state_->cv.notify_all();
  for (auto& t : state_->workers) t.join();
}

int64_t SpeechLoader::num_batches() const { return static_cast<int64_t>(state_->batches.size()); }

std::optional<SpeechBatch> SpeechLoader::next() {
  auto& s = *state_;
  std::unique_lock<std::mutex> lock(s.mutex);
  if (s.next_to_give >= static_cast<int64_t>(s.batches.size())) return std::nullopt;
  s.cv.wait(lock, [&] { return s.ready.count(s.next_to_give) > 0; });
  auto node = s.ready.extract(s.next_to_give++);
  lock.unlock();
  s.cv.notify_all();
  return std::move(node.mapped());
}

}  // namespace cwcl
