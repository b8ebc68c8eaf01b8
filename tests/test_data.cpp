#include <gtest/gtest.h>

#include <cwcl/data/speech.h>
#include <cwcl/io/safetensors.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "temp_dir.h"

namespace {

class SpeechData : public cwcl::testing::TempDirTest {
 protected:
  // Tones of different lengths as WAV files, and a manifest with bad lines.
  std::string make_manifest() {
    std::ofstream m(path("manifest.jsonl"));
    for (int i = 0; i < 10; ++i) {
      const int64_t n = 1600 * (i + 2);
      auto t = torch::arange(n, torch::kDouble) / 16000.0;
      cwcl::save_audio(path("u" + std::to_string(i) + ".wav"),
                       (0.2 * torch::sin(2 * M_PI * (200.0 + 50 * i) * t)).to(torch::kFloat), 16000);
      m << R"({"id": "u)" << i << R"(", "audio": "u)" << i << R"(.wav", "text": "utterance )" << i << "\"}\n";
    }
    m << "{not json\n" << R"({"id": "x", "text": "no audio"})" << "\n"
      << R"({"id": "gone", "audio": "missing.wav", "text": "file missing"})" << "\n";
    return path("manifest.jsonl");
  }
};

TEST_F(SpeechData, ManifestCacheAndLoader) {
  auto manifest = cwcl::read_speech_manifest(make_manifest());
  EXPECT_EQ(manifest.examples.size(), 11u);  // 10 good + the one whose file is missing
  EXPECT_EQ(manifest.skipped, 2);
  EXPECT_NE(manifest.problems[0].find("manifest.jsonl:11: not JSON"), std::string::npos) << manifest.problems[0];

  at::set_num_threads(2);
  auto report = cwcl::FeatureCache::build(manifest.examples, path("cache.safetensors"));
  EXPECT_EQ(at::get_num_threads(), 2) << "worker threads must not change the caller's thread count";
  EXPECT_EQ(report.examples, 10);
  EXPECT_EQ(report.skipped, 1);  // missing.wav: skipped and counted, not fatal
  auto cache = cwcl::FeatureCache::open(path("cache.safetensors"));
  ASSERT_EQ(cache.size(), 10);
  // Cached features equal freshly computed ones up to float16 rounding.
  const auto i = cache.index_of("u3");
  auto fresh = cwcl::LogMel()(cwcl::load_audio(path("u3.wav")));
  EXPECT_EQ(cache.features(i).sizes(), fresh.sizes());
  EXPECT_LT((cache.features(i) - fresh).abs().max().item<double>(), 0.02);

  cwcl::LoaderOptions o;
  o.batch_size = 3;
  o.seed = 4;
  std::set<int64_t> seen;
  int64_t padded = 0, real = 0;
  {
    cwcl::SpeechLoader loader(cache, o);
    EXPECT_EQ(loader.num_batches(), 4);
    while (auto b = loader.next()) {
      EXPECT_EQ(b->mel.size(0), b->lengths.size(0));
      for (size_t r = 0; r < b->indices.size(); ++r) {
        EXPECT_TRUE(seen.insert(b->indices[r]).second);
        const auto len = b->lengths[static_cast<int64_t>(r)].item<int64_t>();
        EXPECT_EQ(len, cache.frames(b->indices[r]));
        EXPECT_EQ(b->mel[static_cast<int64_t>(r)].narrow(0, len, b->mel.size(1) - len).abs().sum().item<float>(), 0.0f);
      }
      padded += b->mel.size(0) * b->mel.size(1);
      real += b->lengths.sum().item<int64_t>();
    }
  }
  EXPECT_EQ(seen.size(), 10u);  // every example once per epoch
  EXPECT_LT(static_cast<double>(padded - real) / real, 0.25);  // buckets pad little

  // Deterministic: same seed and epoch, same batches, also with augmentation.
  o.spec_augment = cwcl::SpecAugmentOptions{};
  cwcl::SpeechLoader a(cache, o, 1), b(cache, o, 1);
  while (auto x = a.next()) {
    auto y = b.next();
    ASSERT_TRUE(y.has_value());
    EXPECT_EQ(x->indices, y->indices);
    EXPECT_TRUE(torch::equal(x->mel, y->mel));
  }
  EXPECT_THROW(cwcl::FeatureCache::open(path("manifest.jsonl")), cwcl::FormatError);
}

TEST_F(SpeechData, AugmentedCopiesAreCachedBesideEachCleanClip) {
  auto manifest = cwcl::read_speech_manifest(make_manifest());
  cwcl::AugmentedCopies copies;
  copies.count = 2;
  auto report = cwcl::FeatureCache::build(manifest.examples, path("copies.safetensors"), {}, 2, {},
                                          cwcl::FrontEnd::Whisper, copies);
  EXPECT_EQ(report.examples, 10);  // clips, not rows
  EXPECT_EQ(report.skipped, 1);
  auto cache = cwcl::FeatureCache::open(path("copies.safetensors"));
  ASSERT_EQ(cache.size(), 30);
  EXPECT_EQ(cache.copies(), cwcl::FeatureCache::describe(copies));
  EXPECT_NE(cache.copies(), cwcl::FeatureCache::describe({}));
  const auto clean = cache.index_of("u5"), first = cache.index_of(cwcl::copy_id("u5", 1)),
             second = cache.index_of(cwcl::copy_id("u5", 2));
  // The clean clip is the plain front end's output; the copies differ from
  // it and from each other (speed changes their length).
  auto fresh = cwcl::WhisperLogMel()(cwcl::load_audio(path("u5.wav")));
  EXPECT_LT((cache.features(clean) - fresh).abs().max().item<double>(), 0.02);
  auto differ = [&](int64_t a, int64_t b) {
    return cache.frames(a) != cache.frames(b) || !torch::equal(cache.features(a), cache.features(b));
  };
  EXPECT_TRUE(differ(clean, first));
  EXPECT_TRUE(differ(first, second));
  EXPECT_NEAR(static_cast<double>(cache.frames(first)), static_cast<double>(cache.frames(clean)),
              0.12 * cache.frames(clean));
  // Rebuilding gives the same copies: they depend on the seed alone.
  cwcl::FeatureCache::build(manifest.examples, path("again.safetensors"), {}, 1, {}, cwcl::FrontEnd::Whisper, copies);
  auto again = cwcl::FeatureCache::open(path("again.safetensors"));
  EXPECT_TRUE(torch::equal(again.features(again.index_of(cwcl::copy_id("u5", 2))), cache.features(second)));
  EXPECT_EQ(cwcl::copy_id("u5", 0), "u5");
}

// Copies warped along the frequency axis alone (no speed, room, gain or
// noise) keep the clean clip's length, unlike speed perturbation, and differ
// from it and from each other.
TEST_F(SpeechData, WarpedCopiesKeepTheCleanClipsLength) {
  auto manifest = cwcl::read_speech_manifest(make_manifest());
  cwcl::AugmentedCopies copies;
  copies.count = 2;
  copies.options.min_speed = copies.options.max_speed = 1.0;
  copies.options.reverb_probability = copies.options.noise_probability = copies.options.max_gain_db = 0;
  copies.warp.min_factor = 0.9;
  copies.warp.max_factor = 1.1;
  cwcl::FeatureCache::build(manifest.examples, path("warped.safetensors"), {}, 2, {}, cwcl::FrontEnd::Whisper,
                            copies);
  auto cache = cwcl::FeatureCache::open(path("warped.safetensors"));
  EXPECT_EQ(cache.copies(), cwcl::FeatureCache::describe(copies));
  const auto clean = cache.index_of("u5"), first = cache.index_of(cwcl::copy_id("u5", 1)),
             second = cache.index_of(cwcl::copy_id("u5", 2));
  EXPECT_EQ(cache.frames(first), cache.frames(clean));
  EXPECT_EQ(cache.frames(second), cache.frames(clean));
  // Mean absolute difference: a pure tone moves only its few loud bins.
  const auto distance = [](const torch::Tensor& a, const torch::Tensor& b) {
    return (a - b).abs().mean().item<double>();
  };
  EXPECT_GT(distance(cache.features(first), cache.features(clean)), 0.005);
  EXPECT_GT(distance(cache.features(second), cache.features(clean)), 0.005);
  EXPECT_FALSE(torch::equal(cache.features(first), cache.features(second)));  // factors drawn per copy
  // Without the warp the same options leave the copies at the clean clip,
  // up to the unit-speed resampling (measured: 0.0002 against the warped
  // copies' 0.01).
  copies.warp = {};
  cwcl::FeatureCache::build(manifest.examples, path("plain.safetensors"), {}, 2, {}, cwcl::FrontEnd::Whisper, copies);
  auto plain = cwcl::FeatureCache::open(path("plain.safetensors"));
  EXPECT_LT(distance(plain.features(plain.index_of(cwcl::copy_id("u5", 1))), plain.features(plain.index_of("u5"))),
            0.001);
}

// Another choice of augmentation gets a cache of its own, so trying one
// never overwrites or refuses another's; the default keeps the plain name.
TEST(AugmentedCopies, EachChoiceOfOptionsHasItsOwnCachePath) {
  cwcl::AugmentedCopies copies;
  copies.count = 2;
  const auto plain = cwcl::feature_cache_path("m.jsonl", cwcl::FrontEnd::Whisper, 0, copies, true);
  EXPECT_EQ(plain, "m.jsonl.whisper.copies2.trimmed.features.safetensors");
  auto speed_only = copies;
  speed_only.options.reverb_probability = 0;
  speed_only.options.noise_probability = 0;
  const auto speed_path = cwcl::feature_cache_path("m.jsonl", cwcl::FrontEnd::Whisper, 0, speed_only, true);
  EXPECT_NE(speed_path, plain);
  EXPECT_EQ(speed_path.rfind("m.jsonl.whisper.copies2-", 0), 0u) << speed_path;
  EXPECT_EQ(speed_path, cwcl::feature_cache_path("m.jsonl", cwcl::FrontEnd::Whisper, 0, speed_only, true));
  auto reseeded = copies;
  reseeded.seed = 1;
  const auto seed_path = cwcl::feature_cache_path("m.jsonl", cwcl::FrontEnd::Whisper, 0, reseeded, true);
  EXPECT_NE(seed_path, plain);
  EXPECT_NE(seed_path, speed_path);
  // A vocal-tract warp is a choice of its own too; off, it leaves the
  // description (and so the names of caches built before it) as it was.
  auto warped = copies;
  warped.warp.min_factor = 0.9;
  warped.warp.max_factor = 1.1;
  const auto warp_path = cwcl::feature_cache_path("m.jsonl", cwcl::FrontEnd::Whisper, 0, warped, true);
  EXPECT_NE(warp_path, plain);
  EXPECT_NE(warp_path, speed_path);
  EXPECT_EQ(cwcl::FeatureCache::describe(copies).find("warp"), std::string::npos);
  EXPECT_NE(cwcl::FeatureCache::describe(warped).find("\"max_warp\":1.1"), std::string::npos);
  // Without copies the options do not matter.
  speed_only.count = 0;
  EXPECT_EQ(cwcl::feature_cache_path("m.jsonl", cwcl::FrontEnd::Whisper, 0, speed_only),
            "m.jsonl.whisper.features.safetensors");
}

// Every epoch reads one version of each clip, drawn per clip, so a run
// shorter than an epoch still sees the copies.
TEST(AugmentedCopies, EachEpochDrawsOneVersionPerClipFromTheSeed) {
  const auto first = cwcl::pick_copies(3000, 3, 7, 0);
  ASSERT_EQ(first.sizes(), torch::IntArrayRef({3000}));
  EXPECT_TRUE(torch::equal(first, cwcl::pick_copies(3000, 3, 7, 0)));
  EXPECT_FALSE(torch::equal(first, cwcl::pick_copies(3000, 3, 7, 1))) << "epochs draw anew";
  EXPECT_FALSE(torch::equal(first, cwcl::pick_copies(3000, 3, 8, 0))) << "so do seeds";
  EXPECT_EQ(first.min().item<int64_t>(), 0);
  EXPECT_EQ(first.max().item<int64_t>(), 2);
  for (int64_t k = 0; k < 3; ++k) EXPECT_NEAR(first.eq(k).sum().item<double>(), 1000.0, 100.0) << "version " << k;
  EXPECT_TRUE(torch::equal(cwcl::pick_copies(50, 1, 7, 4), torch::zeros({50}, torch::kLong)));
  EXPECT_THROW(cwcl::pick_copies(50, 0, 7, 0), c10::Error);
}

TEST_F(SpeechData, TrimmedCachesCutSilenceAndAreKeptApartFromUntrimmedOnes) {
  auto tone = 0.3 * torch::sin(torch::arange(8000, torch::kFloat) * 0.2f);
  cwcl::save_audio(path("padded.wav"), torch::cat({torch::zeros({16000}), tone, torch::zeros({16000})}), 16000);
  {
    std::ofstream m(path("padded.jsonl"));
    m << R"({"id": "p", "audio": "padded.wav", "text": "a word after a second of silence"})" << "\n";
  }
  const auto examples = cwcl::read_speech_manifest(path("padded.jsonl")).examples;
  const auto trim = cwcl::silence_trim(true);
  const auto trimmed_path = cwcl::feature_cache_path(path("padded.jsonl"), cwcl::FrontEnd::Whisper, 0, {}, true);
  EXPECT_EQ(trimmed_path, path("padded.jsonl") + ".whisper.trimmed.features.safetensors");
  const auto plain_path = cwcl::feature_cache_path(path("padded.jsonl"), cwcl::FrontEnd::Whisper);
  auto trimmed = cwcl::FeatureCache::open_or_build(trimmed_path, examples, cwcl::FrontEnd::Whisper, {}, {}, trim);
  auto plain = cwcl::FeatureCache::open_or_build(plain_path, examples, cwcl::FrontEnd::Whisper);
  EXPECT_EQ(plain.frames(0), 250);          // 2.5 s at 100 frames per second
  EXPECT_EQ(trimmed.frames(0), 50 + 2 * 10);  // the 0.5 s tone and 0.1 s either side
  EXPECT_EQ(trimmed.trim(), cwcl::FeatureCache::describe_trim(trim));
  EXPECT_EQ(plain.trim(), "");
  EXPECT_EQ(cwcl::silence_trim(false), std::nullopt);
  // A cache is never read as the other kind: the message names the file and the key.
  try {
    cwcl::FeatureCache::open_or_build(plain_path, examples, cwcl::FrontEnd::Whisper, {}, {}, trim);
    FAIL() << "an untrimmed cache was accepted for trimmed clips";
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find(plain_path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("data.trim_silence"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cwcl::FeatureCache::open_or_build(trimmed_path, examples, cwcl::FrontEnd::Whisper), cwcl::DataError);
}

TEST_F(SpeechData, ACacheBuiltFromAClipSpokenAgainSinceIsRefusedNamingTheClip) {
  auto tone = [](int64_t n) { return 0.3 * torch::sin(torch::arange(n, torch::kFloat) * 0.2f); };
  cwcl::save_audio(path("kept.wav"), tone(8000), 16000);
  cwcl::save_audio(path("again.wav"), tone(12000), 16000);
  {
    std::ofstream m(path("respoken.jsonl"));
    m << R"({"id": "k", "audio": "kept.wav", "text": "kept"})" << "\n"
      << R"({"id": "a", "audio": "again.wav", "text": "spoken again"})" << "\n";
  }
  const auto examples = cwcl::read_speech_manifest(path("respoken.jsonl")).examples;
  const auto cache_path = cwcl::feature_cache_path(path("respoken.jsonl"), cwcl::FrontEnd::Whisper);
  auto cache = cwcl::FeatureCache::open_or_build(cache_path, examples, cwcl::FrontEnd::Whisper);
  EXPECT_TRUE(cache.changed_audio(examples).empty());
  cwcl::save_audio(path("again.wav"), tone(9600), 16000);  // another speaker, another length
  const auto changed = cache.changed_audio(examples);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed.front()->id, "a");
  try {
    cwcl::FeatureCache::open_or_build(cache_path, examples, cwcl::FrontEnd::Whisper);
    FAIL() << "a cache of other audio was accepted";
  } catch (const cwcl::DataError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(cache_path), std::string::npos) << message;
    EXPECT_NE(message.find("1 clips changed"), std::string::npos) << message;
    EXPECT_NE(message.find("again.wav"), std::string::npos) << message;
  }
  std::filesystem::remove(path("kept.wav"));
  EXPECT_EQ(cache.changed_audio(examples).size(), 2u) << "a clip gone counts as changed";
}

}  // namespace
