#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cwcl/audio/audio.h>
#include <cwcl/synth/synth.h>

#include <fstream>

#include "temp_dir.h"

namespace {

class Synth : public cwcl::testing::TempDirTest {
 protected:
  void SetUp() override {
    if (!cwcl::synthesis_built()) GTEST_SKIP() << "built with CWCL_WITH_SYNTH=OFF";
    TempDirTest::SetUp();
  }
};

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<cwcl::SynthItem> items() {
  return {{"a1", "wake me up at seven tomorrow", {{"intent", "\"alarm_set\""}}, ""},
          {"a2", "what's the weather like", {}, ""},
          {"a3", "play some jazz", {}, ""},
          {"a4", "yes", {}, ""}};
}

TEST_F(Synth, EspeakAndFliteMakeADeterministicResumableCorpus) {
  cwcl::SynthOptions o;
  o.voices = {"espeak:en-us", "flite:kal16"};
  o.seed = 5;
  o.out_dir = path("one");
  auto r = cwcl::synthesize(items(), o);
  EXPECT_EQ(r.synthesized, 4);
  EXPECT_EQ(r.failed, 0);
  EXPECT_GT(r.audio_seconds, 2.0);

  std::ifstream manifest(path("one/manifest.jsonl"));
  std::string line;
  int lines = 0;
  std::set<std::string> voices;
  while (std::getline(manifest, line)) {
    auto j = nlohmann::json::parse(line);
    ++lines;
    voices.insert(j.at("voice").get<std::string>());
    EXPECT_GT(j.at("duration").get<double>(), 0.2);
    int rate = 0;
    auto audio = cwcl::load_audio(path("one/" + j.at("audio").get<std::string>()), 0, &rate);
    EXPECT_EQ(rate, 16000);
    EXPECT_GT(audio.pow(2).mean().item<double>(), 1e-5);  // not silence
    if (j.at("id") == "a1") {
      EXPECT_EQ(j.at("intent"), "alarm_set");
    }
  }
  EXPECT_EQ(lines, 4);
  EXPECT_EQ(voices.size(), 2u) << "both backends are used";

  // A voice given per item wins over the seeded choice.
  cwcl::SynthOptions forced = o;
  forced.out_dir = path("forced");
  cwcl::SynthItem item{"f1", "hello there", {}, "flite:slt"};
  cwcl::synthesize({item}, forced);
  std::ifstream fm(path("forced/manifest.jsonl"));
  std::getline(fm, line);
  EXPECT_EQ(nlohmann::json::parse(line).at("voice"), "flite:slt");

  // Same seed, another folder: the same bytes.
  o.out_dir = path("two");
  cwcl::synthesize(items(), o);
  for (const auto& it : items())
    EXPECT_EQ(bytes_of(path("one/audio/" + it.id + ".wav")), bytes_of(path("two/audio/" + it.id + ".wav"))) << it.id;

  // Resume: only what is missing is made again.
  std::filesystem::remove(path("two/audio/a3.wav"));
  auto again = cwcl::synthesize(items(), o);
  EXPECT_EQ(again.reused, 3);
  EXPECT_EQ(again.synthesized, 1);
}

// These lines, as ids and voices of `cwcl synth` on the first 512 lines of
// lm.txt, came out past full scale after resampling; FLAC refused them
// until writes clip.
TEST_F(Synth, LoudUtterancesAreClippedNotLostInFlac) {
  cwcl::SynthOptions o;
  o.voices = {"espeak:en-us", "espeak:en"};
  o.format = cwcl::AudioFormat::Flac;
  o.out_dir = path("loud");
  auto r = cwcl::synthesize({{"247", "can you check for any new emails", {}, ""},
                             {"353", "i need to know current weather in new york city", {}, ""},
                             {"415", "what is the most densely populated country in the world", {}, ""}},
                            o);
  EXPECT_EQ(r.failed, 0);
  EXPECT_EQ(r.synthesized, 3);
}

// The seed draws only the voice and the jitter: with one voice and no
// jitter it changes nothing, with jitter it changes every clip.
TEST_F(Synth, TheJitterIsWhatTheSeedVaries) {
  cwcl::SynthOptions o;
  o.voices = {"espeak:en-us"};
  const auto clip = [&](uint64_t seed, double jitter, const std::string& dir) {
    o.seed = seed;
    o.rate_jitter = jitter / 100;
    o.pitch_jitter = jitter;
    o.out_dir = path(dir);
    EXPECT_EQ(cwcl::synthesize({items()[0]}, o).synthesized, 1);
    return bytes_of(path(dir + "/audio/a1.wav"));
  };
  EXPECT_EQ(clip(1, 0, "still1"), clip(2, 0, "still2"));
  EXPECT_NE(clip(1, 30, "wide1"), clip(2, 30, "wide2"));
}

TEST_F(Synth, BadVoicesAndIdsAreUsageErrors) {
  cwcl::SynthOptions o;
  o.out_dir = path("x");
  o.voices = {"espeak:no-such-voice"};
  EXPECT_THROW(cwcl::synthesize(items(), o), cwcl::UsageError);
  o.voices = {"flite:bob"};
  EXPECT_THROW(cwcl::synthesize(items(), o), cwcl::UsageError);
  o.voices = {"festival:kal"};
  EXPECT_THROW(cwcl::synthesize(items(), o), cwcl::UsageError);
  o.voices = {"espeak:en-us"};
  EXPECT_THROW(cwcl::synthesize({{"../escape", "hi", {}, ""}}, o), cwcl::UsageError);
  o.rate_jitter = 1.0;  // a rate of 0 or below
  EXPECT_THROW(cwcl::synthesize(items(), o), cwcl::UsageError);
  o.rate_jitter = 0.1;
  o.pitch_jitter = -1;
  EXPECT_THROW(cwcl::synthesize(items(), o), cwcl::UsageError);
}

}  // namespace
