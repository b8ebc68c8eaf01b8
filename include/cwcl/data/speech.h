// Speech data: manifests, a memory-mapped cache of log-mel features, and a
// prefetching loader with length bucketing.
#pragma once

#include <cwcl/audio/audio.h>
#include <cwcl/data/shard.h>
#include <cwcl/names.h>
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace cwcl {

struct SpeechExample {
  std::string id, audio, text;  ///< audio: absolute, or relative to the manifest's folder
};

struct SpeechManifest {
  std::vector<SpeechExample> examples;
  int64_t skipped = 0;                ///< lines without id/audio/text or not JSON
  std::vector<std::string> problems;  ///< "<file>:<line>: <why>", first few
};

/// Reads a JSONL manifest ({"id", "audio", "text", ...}, as `cwcl synth`
/// writes). Bad lines (not JSON, a field missing, an empty id or text, an id
/// seen before) are skipped and counted, never fatal; a missing file
/// throws DataError naming it.
SpeechManifest read_speech_manifest(const std::string& path);

/// Log-mel features of every example, computed once and stored as float16 in
/// one safetensors file ("features" [total_frames, n_mels], metadata: ids,
/// offsets, frame counts, options), then memory-mapped: epochs after the
/// first do no signal processing.

/// Augmented copies of every clip, cached beside the clean one (the
/// waveform is augmented before its features are computed).
struct AugmentedCopies {
  int64_t count = 0;  ///< copies per clip besides the clean one
  WaveAugmentOptions options;
  WarpAugmentOptions warp;  ///< vocal-tract-length perturbation by the front end, after `options`
  uint64_t seed = 0;  ///< copy k of example i draws from derive_seed(seed, WaveAugment, i, k)
};
/// The cache id of copy `copy` (1..count) of example `id`; the clean clip
/// (copy 0) keeps its own id.
std::string copy_id(const std::string& id, int64_t copy);
/// Which copy (0: the clean clip) each of `examples` reads in epoch
/// `epoch`, drawn uniformly from the `versions` (copies + 1) per example and
/// epoch: a run shorter than one epoch still trains on every version, an
/// epoch keeps its size, and a batch never holds two versions of one clip.
/// [examples] int64, deterministic given seed and epoch.
torch::Tensor pick_copies(int64_t examples, int64_t versions, uint64_t seed, int64_t epoch);

/// Where the feature cache of a manifest lives, beside it:
/// <manifest>.<front end>[.first<limit>][.copies<k>[-<hash>]][.trimmed].features.safetensors
/// (limit: only the first `limit` examples; copies: augmented copies, with
/// a hash of their options and seed when those are not the defaults, so
/// that each choice keeps its own cache; trimmed: leading and trailing
/// silence cut, SilenceTrimOptions). Training and evaluation share this
/// one rule.
std::string feature_cache_path(const std::string& manifest, FrontEnd front_end, int64_t limit = 0,
                               const AugmentedCopies& copies = {}, bool trimmed = false);

/// data.trim_silence's trimming: the default options, or none.
inline std::optional<SilenceTrimOptions> silence_trim(bool trim_silence) {
  return trim_silence ? std::optional<SilenceTrimOptions>(SilenceTrimOptions{}) : std::nullopt;
}

class FeatureCache {
 public:
  struct BuildReport {
    int64_t examples = 0, skipped = 0;  ///< unreadable audio files are skipped and counted
    std::vector<std::string> problems;
    double seconds = 0, audio_seconds = 0;
  };
  static BuildReport build(const std::vector<SpeechExample>& examples, const std::string& path,
                           const LogMelOptions& options = {}, int threads = 2,
                           const std::function<void(int64_t, int64_t)>& progress = {},
                           FrontEnd front_end = FrontEnd::LogMel, const AugmentedCopies& copies = {},
                           const std::optional<SilenceTrimOptions>& trim = std::nullopt);

  /// Maps a cache file; throws FormatError naming it when it is not one.
  static FeatureCache open(const std::string& path);
  /// The cache at `path`, built first from `examples` when the file is
  /// missing (unreadable clips are left out; `log` hears of progress and of
  /// each one). Throws DataError naming the file when it holds another
  /// front end, other augmented copies or other trimming, or when a clip's
  /// audio file is no longer the one it was built from.
  static FeatureCache open_or_build(const std::string& path, const std::vector<SpeechExample>& examples,
                                    FrontEnd front_end, const AugmentedCopies& copies = {},
                                    const std::function<void(const std::string&)>& log = {},
                                    const std::optional<SilenceTrimOptions>& trim = std::nullopt);

  int64_t size() const { return static_cast<int64_t>(ids_.size()); }
  const std::string& id(int64_t i) const { return ids_[static_cast<size_t>(i)]; }
  int64_t frames(int64_t i) const { return frames_[static_cast<size_t>(i)]; }
  /// Features of example i as float32 [frames, n_mels].
  torch::Tensor features(int64_t i) const;
  int64_t index_of(const std::string& id) const;
  FrontEnd front_end() const { return front_end_; }
  /// How the augmented copies were made ("" for a cache without copies);
  /// equal strings mean equal copies.
  const std::string& copies() const { return copies_; }
  static std::string describe(const AugmentedCopies& copies);
  /// How silence was trimmed before the features ("" for untrimmed clips:
  /// also every cache written before trimming existed).
  const std::string& trim() const { return trim_; }
  static std::string describe_trim(const std::optional<SilenceTrimOptions>& trim);
  /// The examples whose audio file is missing or differs in size from the
  /// file the cache was built from: a clip spoken again since. A cache
  /// written before sizes were recorded can name none.
  std::vector<const SpeechExample*> changed_audio(const std::vector<SpeechExample>& examples) const;

 private:
  FrontEnd front_end_ = FrontEnd::LogMel;
  std::string copies_, trim_;
  std::shared_ptr<void> mapping_;  // keeps the mapped file alive
  torch::Tensor all_;              // float16 view into the mapping
  std::vector<std::string> ids_;
  std::vector<int64_t> offsets_, frames_;
  std::unordered_map<std::string, int64_t> audio_bytes_;  // example id -> its file's size at build
};

struct SpeechBatch {
  torch::Tensor mel;      ///< [B, T, n_mels], zero past each item's end
  torch::Tensor lengths;  ///< [B] frames
  std::vector<int64_t> indices;  ///< cache rows, for looking up the frozen side
};

struct LoaderOptions {
  int64_t batch_size = 64;
  uint64_t seed = 0;
  /// Sort by length and cut into batches of similar lengths (shuffled as
  /// batches each epoch); without it, plain shuffled batches.
  bool bucket_by_length = true;
  int workers = 2;   ///< threads assembling batches
  int prefetch = 4;  ///< batches ready ahead
  bool drop_last = false;
  std::optional<SpecAugmentOptions> spec_augment;  ///< training only
  std::vector<int64_t> rows;  ///< cache rows to iterate over (empty: all)
  int64_t first_batch = 0;    ///< start the epoch at this batch (resuming); earlier ones are not built
  /// Each batch is cut from the global order as usual; this rank assembles
  /// only its shard of it (with the augmentation that rows would get anyway).
  Shard shard;
};

/// Iterates over one epoch of a cache in batches, assembled ahead of time by
/// worker threads. Deterministic given the seed and epoch.
class SpeechLoader {
 public:
  SpeechLoader(const FeatureCache& cache, LoaderOptions options, int64_t epoch = 0);
  ~SpeechLoader();
  SpeechLoader(const SpeechLoader&) = delete;
  SpeechLoader& operator=(const SpeechLoader&) = delete;

  /// The next batch, or nullopt at the end of the epoch.
  std::optional<SpeechBatch> next();
  int64_t num_batches() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace cwcl
