// Configuration, errors, seeds and the learning-rate schedule.
#include <cwcl/error.h>
#include <cwcl/model/config.h>
#include <cwcl/seeds.h>
#include <cwcl/train/schedule.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "cuda.h"
#include "temp_dir.h"
#include "train_helpers.h"

namespace {

namespace fs = std::filesystem;
using cwcl::ConfigError;
using cwcl::TrainConfig;
using namespace cwcl::testing;

// ---- configuration --------------------------------------------------------

TEST(Config, DefaultsRoundTripThroughToml) {
  TrainConfig c;
  c.data.train = "x.jsonl";
  c.loss.kernel_tau = 0.0625;
  c.run.steps = 77;
  c.optim.lr = 0.1 + 0.2;  // 0.30000000000000004: needs all 17 digits
  auto back = TrainConfig::from_string(c.to_toml(), "resolved");
  EXPECT_EQ(back.values(), c.values());
  EXPECT_EQ(back.optim.lr, c.optim.lr);
  EXPECT_EQ(back.loss.temperature, c.loss.temperature);
  // Floats print in their shortest exact form.
  EXPECT_NE(c.to_toml().find("temperature = 0.07\n"), std::string::npos) << c.to_toml();
  EXPECT_NE(c.to_toml().find("gamma = 4.0\n"), std::string::npos) << c.to_toml();
}

TEST(Config, BundledConfigsParseAndValidate) {
  int files = 0;
  for (const auto& entry : fs::directory_iterator(source_file("configs"))) {
    if (entry.path().extension() != ".toml") continue;  // configs/demo: presets (test_demo.cpp)
    SCOPED_TRACE(entry.path().string());
    EXPECT_NO_THROW(TrainConfig::from_file(entry.path().string()).validate());
    ++files;
  }
  EXPECT_GE(files, 3);
}

TEST(Config, UnknownKeyIsNamed) {
  try {
    TrainConfig::from_string("[loss]\nkind = \"cl\"\ntemprature = 0.1\n", "my.toml");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("my.toml: unknown key 'loss.temprature'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(TrainConfig::from_string("[nope]\nx = 1\n", "my.toml"), ConfigError);
}

TEST(Config, WrongTypeAndSyntaxAreNamed) {
  try {
    TrainConfig::from_string("[run]\nsteps = \"many\"\n", "a.toml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'run.steps' must be an integer"), std::string::npos) << e.what();
  }
  try {
    TrainConfig::from_string("[run]\nsteps = = 3\n", "b.toml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("b.toml:2"), std::string::npos) << e.what();
  }
  // An integer is accepted where a number is expected.
  EXPECT_EQ(TrainConfig::from_string("[optim]\nlr = 1\n", "c.toml").optim.lr, 1.0);
}

TEST(Config, SetOverridesWithTomlValuesOrBareWords) {
  TrainConfig c;
  c.set("run.steps=12");
  c.set("loss.kind=cl");
  c.set("loss.center=true");
  c.set("optim.lr=3e-4");
  c.set("data.train=some dir/with \"quotes\"");
  EXPECT_TRUE(c.data.trim_silence);  // the default: recorded clips lose their silence
  c.set("data.trim_silence=false");
  EXPECT_FALSE(c.data.trim_silence);
  EXPECT_EQ(c.run.steps, 12);
  EXPECT_EQ(c.loss.kind, cwcl::LossKind::CL);
  EXPECT_TRUE(c.loss.center);
  EXPECT_DOUBLE_EQ(c.optim.lr, 3e-4);
  EXPECT_EQ(c.data.train, "some dir/with \"quotes\"");
  EXPECT_THROW(c.set("run.stepz=1"), ConfigError);
  EXPECT_THROW(c.set("novalue"), ConfigError);
  EXPECT_THROW(c.set("run.steps=ten"), ConfigError);  // a bare word is a string, steps is an integer
  c.set("data.classes=1,4");
  EXPECT_EQ(c.data.classes, (std::vector<int64_t>{1, 4}));
  c.set("data.classes=[2, 3]");
  EXPECT_EQ(c.data.classes, (std::vector<int64_t>{2, 3}));
  EXPECT_THROW(c.set("data.classes=1,x"), ConfigError);
  // A value that starts like TOML and fails is a typo, not a bare word.
  try {
    c.set("run.out=\"unterminated");
    FAIL() << "an unterminated string was taken as a bare word";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--set run.out: the value is not valid TOML"), std::string::npos) << e.what();
  }
  EXPECT_THROW(c.set("data.classes=[1, 2"), ConfigError);
  EXPECT_THROW(c.set("run.out="), ConfigError);
  const TrainConfig defaults;
  EXPECT_EQ(c.run.out, defaults.run.out);
}

TEST(Config, EnumValuesAreParsedOnceAndNamed) {
  try {
    TrainConfig::from_string("[loss]\nweights = \"gaussian\"\n", "w.toml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("w.toml: key 'loss.weights'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("kernel"), std::string::npos) << e.what();  // lists the accepted names
  }
  try {
    TrainConfig::from_string("[model]\ntower = \"video\"\n", "t.toml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("t.toml: key 'model.tower'"), std::string::npos) << e.what();
  }
  auto c = TrainConfig::from_string("[model]\npooling = \"attention\"\nwhisper_training = \"top\"\n", "ok.toml");
  const auto& w = std::get<cwcl::WhisperTowerSpec>(c.model);
  EXPECT_EQ(w.pooling, cwcl::Pooling::Attention);
  EXPECT_EQ(w.training, cwcl::WhisperTraining::TopBlocks);
}

TEST(Config, TowerKeysBelongToTheirTower) {
  // model.tower is applied first wherever it stands in the file.
  auto c = TrainConfig::from_string("[model]\nimage_width = 8\ntower = \"image\"\n", "a.toml");
  EXPECT_EQ(std::get<cwcl::ImageTowerSpec>(c.model).width, 8);
  try {
    TrainConfig::from_string("[model]\ntower = \"image\"\nwhisper_training = \"top\"\n", "b.toml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("b.toml: key 'model.whisper_training' belongs to model.tower = \"whisper\""),
              std::string::npos)
        << e.what();
  }
  // Switching the tower by --set starts the new tower from its defaults.
  TrainConfig s;
  s.set("model.tower=scratch");
  s.set("model.scratch_size=tiny");
  EXPECT_EQ(std::get<cwcl::ScratchSpeechTowerSpec>(s.model).size, cwcl::ScratchSize::Tiny);
  const auto keys = TrainConfig::keys();
  for (const char* k : {"model.whisper_training", "model.scratch_size", "model.image_width", "model.pooling"})
    EXPECT_NE(std::find(keys.begin(), keys.end(), k), keys.end()) << k;
  // The resolved TOML holds the chosen tower's keys only.
  EXPECT_EQ(s.to_toml().find("whisper_training"), std::string::npos) << s.to_toml();
}

TEST(Config, ValidateNamesTheKey) {
  TrainConfig c;
  c.data.train = "x";
  c.validate();
  auto expect_key = [](TrainConfig bad, const std::string& key) {
    try {
      bad.validate();
      FAIL() << key;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("'" + key + "'"), std::string::npos) << e.what();
    }
  };
  auto b = c;
  b.run.batch_size = 1;
  expect_key(b, "run.batch_size");
  b = c;
  b.model = cwcl::ImageTowerSpec{0};
  expect_key(b, "model.image_width");
  b = c;
  b.loss.calibrate = 4;  // needs a map with a sharpness
  expect_key(b, "loss.calibrate");
  b = c;
  b.loss.kind = cwcl::LossKind::Cosine;
  b.loss.cosine_weight = 1;  // the cosine kind is the term alone
  expect_key(b, "loss.cosine_weight");
  b = c;
  b.run.eval_every = 100;  // a speech tower validates on eval.manifest
  expect_key(b, "eval.manifest");
  b.eval.manifest = "devel.jsonl";
  EXPECT_NO_THROW(b.validate());
  b = c;
  b.run.accum_steps = 5;  // does not divide the batch of 64
  expect_key(b, "run.accum_steps");
  b = c;
  b.run.accum_steps = 4;
  EXPECT_NO_THROW(b.validate_split(2));
  try {
    b.validate_split(32);  // 32 ranks x 4 chunks > 64
    FAIL() << "validate_split(32) accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'run.batch_size'"), std::string::npos) << e.what();
  }
  b = c;
  b.data.train = "";
  expect_key(b, "data.train");
  b = c;
  b.data.classes = {1, 1};
  expect_key(b, "data.classes");
  b = c;  // a speech tower has no labels for supcon or the labels map
  b.loss.weights = cwcl::WeightMap::Labels;
  expect_key(b, "loss.weights");
  b = c;
  b.data.copy_augment.min_speed = 1.2;  // above max_speed = 1.1
  expect_key(b, "data.copy_augment.max_speed");
  b = c;
  b.data.copy_augment.min_speed = 0.3;
  expect_key(b, "data.copy_augment.min_speed");
  b = c;
  b.data.copy_augment.noise_probability = 1.5;
  expect_key(b, "data.copy_augment.noise_probability");
  b = c;
  b.data.copy_augment.min_rt60 = 0;
  expect_key(b, "data.copy_augment.min_rt60");
  b = c;
  b.data.copy_augment.min_snr_db = 50;  // above max_snr_db = 40
  expect_key(b, "data.copy_augment.max_snr_db");
  b = c;
  b.data.copy_warp.min_factor = 0.4;
  expect_key(b, "data.copy_augment.min_warp");
  b = c;
  b.data.copy_warp.min_factor = 1.1;  // above max_warp = 1
  expect_key(b, "data.copy_augment.max_warp");
}

// The augmented copies' options are keys of their own: speed, the room and
// noise can each be switched off, and they round-trip through the resolved
// TOML.
TEST(Config, CopyAugmentKeysSetTheWaveAugmentOptions) {
  auto c = TrainConfig::from_string(
      "[data]\ntrain = \"x.jsonl\"\naudio_copies = 2\n"
      "[data.copy_augment]\nmin_speed = 0.85\nmax_speed = 1.15\nreverb_probability = 0\n",
      "copies.toml");
  c.set("data.copy_augment.noise_probability=0");
  c.validate();
  EXPECT_DOUBLE_EQ(c.data.copy_augment.min_speed, 0.85);
  EXPECT_DOUBLE_EQ(c.data.copy_augment.max_speed, 1.15);
  EXPECT_EQ(c.data.copy_augment.reverb_probability, 0);
  EXPECT_EQ(c.data.copy_augment.noise_probability, 0);
  EXPECT_EQ(c.data.copy_augment.max_rt60, cwcl::WaveAugmentOptions{}.max_rt60);  // the rest keep their defaults
  const auto back = TrainConfig::from_string(c.to_toml(), "resolved");
  EXPECT_EQ(back.values(), c.values());
  EXPECT_DOUBLE_EQ(back.data.copy_augment.min_speed, 0.85);
  EXPECT_FALSE(TrainConfig::may_change_on_resume("data.copy_augment.min_speed")) << "they change the training data";
  try {
    c.set("data.copy_augment.min_speed=fast");
    FAIL() << "a word was taken as a speed";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("data.copy_augment.min_speed"), std::string::npos) << e.what();
  }
  EXPECT_THROW(c.set("data.copy_augment.speed=1"), ConfigError);
  // Vocal-tract-length perturbation sits in the same table, off by default.
  EXPECT_FALSE(c.data.copy_warp.active());
  c.set("data.copy_augment.min_warp=0.9");
  c.set("data.copy_augment.max_warp=1.1");
  c.validate();
  EXPECT_DOUBLE_EQ(c.data.copy_warp.min_factor, 0.9);
  EXPECT_DOUBLE_EQ(c.data.copy_warp.max_factor, 1.1);
  EXPECT_DOUBLE_EQ(TrainConfig::from_string(c.to_toml(), "resolved").data.copy_warp.max_factor, 1.1);
  EXPECT_FALSE(TrainConfig::may_change_on_resume("data.copy_augment.max_warp"));
}

TEST(Errors, KindsMapToExitCodesAndFormatErrorsAreDataErrors) {
  EXPECT_EQ(cwcl::exit_code(cwcl::ErrorKind::Usage), 2);
  EXPECT_EQ(cwcl::exit_code(cwcl::ErrorKind::Config), 2);
  EXPECT_EQ(cwcl::exit_code(cwcl::ErrorKind::Data), 3);
  EXPECT_EQ(cwcl::exit_code(cwcl::ErrorKind::Internal), 1);
  const cwcl::Error& format = cwcl::FormatError("x.safetensors: truncated");
  EXPECT_EQ(format.kind(), cwcl::ErrorKind::Data);
  try {
    TrainConfig::from_string("[run]\nsteps = \"x\"\n", "k.toml");
    FAIL() << "a string for run.steps was accepted";
  } catch (const cwcl::Error& e) {
    EXPECT_EQ(e.kind(), cwcl::ErrorKind::Config);
  }
  EXPECT_THROW(cwcl::parse_name<cwcl::TowerKind>("video"), cwcl::UsageError);
  EXPECT_EQ(cwcl::parse_name<cwcl::TowerKind>("scratch"), cwcl::TowerKind::Scratch);
  EXPECT_STREQ(cwcl::name_of(cwcl::TextTowerKind::GloveSif), "glove-sif");
}

TEST(Seeds, StreamsAndCountersGiveUnrelatedSeeds) {
  using cwcl::SeedStream;
  std::set<uint64_t> seen;
  for (auto stream : {SeedStream::EpochOrder, SeedStream::StepNoise, SeedStream::ImageAugment})
    for (uint64_t a = 0; a < 50; ++a)
      for (uint64_t b = 0; b < 4; ++b) seen.insert(cwcl::derive_seed(7, stream, a, b));
  EXPECT_EQ(seen.size(), 3u * 50u * 4u);  // no collisions (the old seed*K+epoch formulas collided across uses)
  EXPECT_EQ(cwcl::derive_seed(7, SeedStream::EpochOrder, 3), cwcl::derive_seed(7, SeedStream::EpochOrder, 3));
  EXPECT_NE(cwcl::derive_seed(7, SeedStream::EpochOrder, 3), cwcl::derive_seed(8, SeedStream::EpochOrder, 3));
}

TEST(Schedule, WarmupThenCosineToTheFloor) {
  cwcl::ScheduleOptions o{110, 10, 1e-3, 1e-4};
  EXPECT_DOUBLE_EQ(cwcl::learning_rate_factor(o, 0), 0.1);
  EXPECT_DOUBLE_EQ(cwcl::learning_rate_factor(o, 9), 1.0);
  EXPECT_DOUBLE_EQ(cwcl::learning_rate_factor(o, 10), 1.0);
  EXPECT_NEAR(cwcl::learning_rate_factor(o, 60), 0.1 + 0.9 * 0.5, 1e-12);  // half way: the middle
  EXPECT_NEAR(cwcl::learning_rate_factor(o, 110), 0.1, 1e-12);              // min_lr / lr
}

}  // namespace
