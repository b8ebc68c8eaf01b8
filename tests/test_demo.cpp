// The demo as data: its presets and variants (configs/demo/), and the corpus
// texts it builds.
#include <cwcl/demo/demo.h>
#include <cwcl/error.h>
#include <cwcl/io/files.h>
#include <cwcl/runtime.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "temp_dir.h"
#include "train_helpers.h"

namespace {

namespace fs = std::filesystem;
using cwcl::TrainConfig;

const cwcl::DemoStagePlan& stage(const std::vector<cwcl::DemoStagePlan>& plan, const std::string& name) {
  for (const auto& s : plan)
    if (s.stage == name) return s;
  throw std::runtime_error("no stage " + name);
}

const TrainConfig& run_of(const cwcl::DemoStagePlan& s, const std::string& variant) {
  for (const auto& [name, c] : s.runs)
    if (name == variant) return c;
  throw std::runtime_error("no variant " + variant + " in " + s.stage);
}

TEST(DemoPresets, EveryPresetGivesValidConfigurationsForEveryRun) {
  for (const auto& [preset, stages] : {std::pair<const char*, size_t>{"quick", 4}, {"full", 5}, {"smoke", 5}, {"batch", 1}, {"image-batch", 1}, {"whisper-base", 1}}) {
    SCOPED_TRACE(preset);
    const auto plan = cwcl::plan_demo(preset);
    ASSERT_EQ(plan.size(), stages);
    for (const auto& s : plan) {
      EXPECT_FALSE(s.runs.empty()) << s.stage;
      for (auto [name, c] : s.runs) {
        SCOPED_TRACE(s.stage + " " + name);
        c.data.train = "corpus/train/manifest.jsonl";  // the demo sets the paths
        EXPECT_NO_THROW(c.validate());
      }
    }
  }
}

TEST(DemoPresets, StagesStartFromTheFilesUsersRunAndVariantsOnlyChangeTheLoss) {
  const auto plan = cwcl::plan_demo("quick");
  // The fine-tuned stage is configs/speech_top2.toml with the preset's keys.
  const auto tuned = stage(plan, "speech_finetuned");
  EXPECT_EQ(tuned.base, "speech_top2.toml");
  EXPECT_EQ(tuned.train_part, "train_mixed");
  auto expected = TrainConfig::from_file(cwcl::config_file("speech_top2.toml"));
  expected.run.steps = 500;
  expected.run.eval_every = 250;
  expected.optim.warmup = 50;
  EXPECT_EQ(run_of(tuned, "cl").values(), expected.values());
  // A variant's configuration differs from CL's in loss keys only.
  const auto frozen = stage(plan, "speech_frozen");
  const auto cl = run_of(frozen, "cl").values(), power = run_of(frozen, "power-8").values();
  ASSERT_EQ(cl.size(), power.size());
  for (size_t i = 0; i < cl.size(); ++i)
    if (cl[i] != power[i]) {
      EXPECT_EQ(cl[i].first.rfind("loss.", 0), 0u) << cl[i].first;
    }
  EXPECT_EQ(run_of(frozen, "power-8").loss.gamma, 8.0);
  EXPECT_EQ(run_of(frozen, "cl").data.limit, 8000);
  EXPECT_EQ(run_of(stage(cwcl::plan_demo("full"), "image"), "labels").loss.weights, cwcl::WeightMap::Labels);
  EXPECT_EQ(stage(cwcl::plan_demo("full"), "speech_finetuned").train_part, "train_mixed");
  EXPECT_EQ(stage(cwcl::plan_demo("full"), "speech_frozen").train_part, "train");
  // The image part trains the colour tower at the preset's size.
  const auto& image = run_of(stage(plan, "image"), "cl");
  EXPECT_TRUE(image.image_manifests());
  EXPECT_EQ(std::get<cwcl::ResNetTowerSpec>(image.model).image_size, 48);
  // The batch axis: the same samples at every batch, at least min_steps,
  // warmup 10 % of the steps.
  const auto batch = stage(cwcl::plan_demo("batch"), "speech_batch");
  const auto& small = run_of(batch, "cl, batch 64");
  const auto& large = run_of(batch, "power-8, batch 4096");
  EXPECT_EQ(small.run.steps, 2400);
  EXPECT_EQ(small.run.batch_size * small.run.steps, 153600);
  EXPECT_EQ(large.run.steps, 150);
  EXPECT_EQ(large.optim.warmup, 15);
  EXPECT_EQ(large.loss.gamma, 8.0);
  EXPECT_EQ(large.data.limit, 8000);
  // The image axis: a large batch in GradCache chunks.
  const auto images = stage(cwcl::plan_demo("image-batch"), "image_batch");
  const auto& wide = run_of(images, "kernel-calibrated, batch 2048");
  EXPECT_EQ(wide.run.steps, 40);
  EXPECT_EQ(wide.run.accum_steps, 8);
  EXPECT_EQ(run_of(images, "cl, batch 256").run.accum_steps, 1);
}

class DemoFiles : public cwcl::testing::TempDirTest {
 protected:
  // klettres-data's layout: <speaker>/alpha/<letter>.ogg, <speaker>/syllab/<word>.ogg.
  std::string recorded_speech_folder() const {
    for (const char* file : {"en/alpha/A.ogg", "en/alpha/B.ogg", "en/syllab/car.ogg", "en/syllab/th.ogg",
                             "en/syllab/sounds.txt", "en_GB/alpha/a.ogg", "en_GB/syllab/dog.ogg"}) {
      fs::create_directories((dir / "recorded" / file).parent_path());
      std::ofstream(dir / "recorded" / file) << "x";
    }
    return path("recorded");
  }
};

TEST_F(DemoFiles, BadPresetsAreNamed) {
  EXPECT_THROW(cwcl::plan_demo("quik"), cwcl::UsageError);
  std::ofstream(path("p.toml")) << "[speech_frozen]\nconfig = \"speech.toml\"\nset.run.stepz = 3\n";
  try {
    cwcl::plan_demo(path("p.toml"));
    FAIL() << "an unknown key was accepted";
  } catch (const cwcl::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("p.toml [speech_frozen].set: unknown key 'run.stepz'"), std::string::npos)
        << e.what();
  }
  std::ofstream(path("v.toml")) << "[speech_frozen]\nconfig = \"speech.toml\"\nvariants = [\"cl\", \"power-9\"]\n";
  try {
    cwcl::plan_demo(path("v.toml"));
    FAIL() << "an unknown variant was accepted";
  } catch (const cwcl::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("no variant 'power-9'"), std::string::npos) << e.what();
  }
}

TEST_F(DemoFiles, ATrainingPartIsAFolderOfTheCorpusOfASpeechStage) {
  auto expect_config_error = [&](const std::string& preset, const std::string& needle) {
    std::ofstream(path("t.toml")) << preset;
    try {
      cwcl::plan_demo(path("t.toml"));
      FAIL() << "accepted: " << preset;
    } catch (const cwcl::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_config_error("[speech_frozen]\nconfig = \"speech.toml\"\ntrain = \"../train\"\n",
                      "t.toml [speech_frozen]: 'train' must name a folder of the corpus");
  expect_config_error("[speech_frozen]\nconfig = \"speech.toml\"\ntrain = 3\n", "'train' must name a folder");
  expect_config_error("[image]\nconfig = \"emoji.toml\"\ntrain = \"train_mixed\"\n",
                      "t.toml [image]: unknown key 'train'");
}

TEST_F(DemoFiles, AMissingTrainingPartIsNamedBeforeAnythingRuns) {
  std::ofstream(path("mixed.toml")) << "[speech_frozen]\nconfig = \"speech.toml\"\nvariants = [\"cl\"]\n"
                                    << "[speech_finetuned]\nconfig = \"speech_top2.toml\"\ntrain = \"train_mixed\"\n";
  cwcl::DemoOptions o;
  o.preset = path("mixed.toml");
  o.corpus = path("corpus");
  o.out = path("out");
  try {
    cwcl::run_demo_protocol(o);
    FAIL() << "ran without the training part";
  } catch (const cwcl::DataError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("train = \"train_mixed\" needs " + path("corpus") + "/train_mixed/manifest.jsonl"), std::string::npos) << m;
    EXPECT_NE(m.find("make piper-corpus"), std::string::npos) << m;
  }
  EXPECT_FALSE(fs::exists(path("corpus")));  // nothing was built or written first
  EXPECT_FALSE(fs::exists(path("out")));
}

std::string sha256_of(const std::string& file) {
  std::string out;
  if (FILE* p = ::popen(("sha256sum '" + file + "'").c_str(), "r")) {
    char buf[128];
    if (std::fgets(buf, sizeof buf, p)) out = std::string(buf).substr(0, 64);
    ::pclose(p);
  }
  return out;
}

TEST_F(DemoFiles, RecordedSpeechManifestsListWordsAndLettersOfBothSpeakers) {
  cwcl::CorpusOptions o;
  o.out = path("corpus");
  o.texts_only = true;
  o.recorded_speech = recorded_speech_folder();
  const auto report = nlohmann::json::parse(cwcl::build_corpus(o));
  EXPECT_EQ(report.at("recorded").at("words").get<int64_t>(), 2);  // th is a sound, not a word
  EXPECT_EQ(report.at("recorded").at("letters").get<int64_t>(), 3);
  const auto letters = cwcl::read_lines(path("corpus/real_letters/manifest.jsonl"));
  ASSERT_EQ(letters.size(), 3u);
  const auto first = nlohmann::json::parse(letters[0]);
  EXPECT_EQ(first.at("letter").get<std::string>(), "a");
  EXPECT_EQ(first.at("speaker").get<std::string>(), "en-us");
  EXPECT_EQ(first.at("audio").get<std::string>(), o.recorded_speech + "/en/alpha/A.ogg");
  const auto words = cwcl::read_lines(path("corpus/real_words/manifest.jsonl"));
  EXPECT_EQ(nlohmann::json::parse(words[1]).at("id").get<std::string>(), "rw-dog-en-gb");

  o.recorded_speech = path("no-klettres");
  try {
    cwcl::build_corpus(o);
    FAIL() << "a missing recorded-speech folder was accepted";
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find(path("no-klettres") + "/en/syllab: no such folder"), std::string::npos)
        << e.what();
  }
}

TEST_F(DemoFiles, CorpusTextsAreTheOnesTheExperimentsWereRunOn) {
  if (!fs::exists("/usr/share/wordnet/data.noun")) GTEST_SKIP() << "wordnet-base is not installed";
  cwcl::CorpusOptions o;
  o.out = path("corpus");
  o.texts_only = true;
  o.recorded_speech = recorded_speech_folder();
  const auto report = nlohmann::json::parse(cwcl::build_corpus(o));
  EXPECT_EQ(report.at("texts").at("train_total").get<int64_t>(), 26487);
  // The Python script that built the texts before `cwcl corpus` (its
  // random.Random(0).shuffle of the WordNet examples) wrote this file when
  // the experiments began.
  EXPECT_EQ(sha256_of(path("corpus/train_text.txt")),
            "900fa3d9900ec4fff5f44f4d3965a5700b8a38ea293026e870bad26905978d9c");
  const auto test = cwcl::read_lines(path("corpus/slurp_test.jsonl"));
  ASSERT_EQ(test.size(), 2974u);
  const auto first = nlohmann::json::parse(test[0]);
  EXPECT_EQ(first.at("id").get<std::string>(), "t9054");
  EXPECT_EQ(first.at("voice").get<std::string>(), "flite:rms");  // 9054 mod 4 = 2: kal16, slt, rms, awb
  EXPECT_EQ(cwcl::read_lines(path("corpus/kws_test.jsonl")).size(), 140u);
  EXPECT_EQ(cwcl::read_lines(path("corpus/slurp_devel.jsonl")).size(), 2033u);
}

}  // namespace
