// Evaluation tasks (<cwcl/eval/tasks.h>, <cwcl/eval/report.h>): labelled
// speech sets, zero-shot and retrieval through a trained model, intervals,
// breakdowns by a field, label arguments and the trainer's validator.
#include <cwcl/audio/audio.h>
#include <cwcl/error.h>
#include <cwcl/eval/report.h>
#include <cwcl/eval/tasks.h>
#include <cwcl/model/model.h>
#include <cwcl/towers/tower.h>

#include <gtest/gtest.h>
#include <torch/version.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

#include "temp_dir.h"

namespace {

using cwcl::SpeechTaskData;
using cwcl::SpeechTaskSpec;
using cwcl::TaskResult;

constexpr double kPi = 3.14159265358979323846;

// A text tower without a model: a fixed random direction per distinct text
// (a seeded table), so that equal texts embed alike and others do not.
cwcl::TextTower toy_text_tower(int64_t dim) {
  auto table = std::make_shared<std::map<std::string, torch::Tensor>>();
  cwcl::TextTower t;
  t.name = "toy";
  t.fingerprint = "toy";
  t.encode = [table, dim](const std::vector<std::string>& texts) {
    std::vector<torch::Tensor> rows;
    for (const auto& text : texts) {
      auto it = table->find(text);
      if (it == table->end()) {
        torch::manual_seed(static_cast<uint64_t>(std::hash<std::string>{}(text) % 100000));
        auto v = torch::randn({dim});
        it = table->emplace(text, v / v.norm()).first;
      }
      rows.push_back(it->second);
    }
    return torch::stack(rows);
  };
  return t;
}

class SpeechTasks : public cwcl::testing::TempDirTest {
 protected:
  // A manifest of tones (one per line), labelled by `field`; `bad` lines
  // have no label, one clip names a file that is not there.
  std::string write_set() {
    std::ofstream m(path("set.jsonl"));
    const char* intents[] = {"alarm_set", "play_music", "alarm_set", "weather_query", "play_music", "alarm_set"};
    for (int i = 0; i < 6; ++i) {
      const auto t = torch::arange(16000 * (1 + i % 3) / 2, torch::kFloat) / 16000.0;
      cwcl::save_audio(path("a" + std::to_string(i) + ".wav"), torch::sin(2 * kPi * (200.0 + 90.0 * i) * t) * 0.3,
                       16000);
      m << nlohmann::json{{"id", "u" + std::to_string(i)},
                          {"audio", "a" + std::to_string(i) + ".wav"},
                          {"text", std::string("utterance ") + intents[i] + (i % 2 ? " now" : "")},
                          {"intent", intents[i]},
                          {"voice", i < 3 ? "one" : "two"},
                          {"kept", i != 4}}
               .dump()
        << "\n";
    }
    m << R"({"id": "nolabel", "audio": "a0.wav", "text": "no label"})" << "\n";
    m << R"({"id": "gone", "audio": "missing.wav", "text": "gone", "intent": "alarm_set"})" << "\n";
    m << "not json\n";
    std::ofstream(path("labels.tsv")) << "intent\tlabel\nalarm_set\tset an alarm\nplay_music\tplay some music\n"
                                         "weather_query\twhat is the weather\nnews_query\tthe news\n";
    return path("set.jsonl");
  }

  cwcl::TrainedModel tiny_model() {
    cwcl::TrainConfig c;
    c.model = cwcl::ScratchSpeechTowerSpec{cwcl::ScratchSize::Tiny, cwcl::Pooling::Mean};
    torch::manual_seed(0);
    auto tower = cwcl::make_tower(c.model, 16, cwcl::TowerWeights::Pretrained);
    tower->eval();  // as a loaded model is: no dropout
    return cwcl::TrainedModel::of_tower(c, tower, 0);
  }
};

TEST_F(SpeechTasks, LoadKeepsLabelledLinesAndCountsTheRest) {
  const auto manifest = write_set();
  const auto data = SpeechTaskData::load({"t", manifest, "intent", path("labels.tsv"), "", ""});
  EXPECT_EQ(data.examples.size(), 7u);  // 6 tones and the missing file (found unreadable when embedded)
  EXPECT_EQ(data.skipped, 2);           // the line that is not JSON, the line without a label
  // The classes present, sorted, with their label texts; news_query is absent.
  EXPECT_EQ(data.labels.names, (std::vector<std::string>{"alarm_set", "play_music", "weather_query"}));
  EXPECT_EQ(data.labels.texts[2], "what is the weather");
  EXPECT_EQ(data.targets[3], 2);
  const auto kept = SpeechTaskData::load({"t", manifest, "intent", "", "kept", ""});
  EXPECT_EQ(kept.examples.size(), 5u);                  // "kept": false, and lines without it, are left out
  EXPECT_EQ(kept.labels.texts, kept.labels.names);      // no label file: the names are the texts
  try {
    SpeechTaskData::load({"t", manifest, "keyword", "", "", ""});
    FAIL() << "a field no line has was accepted";
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("no line has a 'keyword' label"), std::string::npos) << e.what();
  }
}

TEST_F(SpeechTasks, EvaluateSpeechClassifiesRetrievesAndSkipsUnreadableAudio) {
  const auto data = SpeechTaskData::load({"t", write_set(), "intent", path("labels.tsv"), "", ""});
  auto model = tiny_model();
  const auto text = toy_text_tower(16);
  const auto r = evaluate_speech(model, text, data);
  EXPECT_EQ(r.classification.n, 6);
  EXPECT_EQ(r.skipped, 3);  // two bad lines, one unreadable clip
  EXPECT_EQ(r.item_ids.size(), 6u);
  ASSERT_TRUE(r.retrieval.has_value());
  EXPECT_EQ(r.inputs.sizes(), (std::vector<int64_t>{6, 16}));
  // The features were cached beside the manifest, under the one naming rule,
  // and row i is the model's embedding of the i-th labelled clip.
  // Clips lose their silence first (data.trim_silence, on by default).
  const auto cache =
      cwcl::FeatureCache::open(cwcl::feature_cache_path(path("set.jsonl"), cwcl::FrontEnd::LogMel, 0, {}, true));
  EXPECT_EQ(cache.trim(), cwcl::FeatureCache::describe_trim(cwcl::silence_trim(true)));
  const auto all = model.embed_cache(cache);
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_EQ(r.item_ids[static_cast<size_t>(i)], "u" + std::to_string(i));
    EXPECT_TRUE(torch::allclose(r.inputs[i], all[cache.index_of("u" + std::to_string(i))], 1e-5, 1e-6)) << i;
  }
  // Straight from the audio (float32 features, not the float16 cache): close.
  const auto direct = model.embed_audio_files({path("a3.wav")});
  EXPECT_GT(torch::dot(r.inputs[3], direct[0]).item<double>(), 0.99);
  // Zero-shot trims as evaluation does: a clip in 1.3 s of silence reads
  // as the clip in the 0.1 s margins trimming keeps, unless the model keeps
  // the silence.
  const auto clip = cwcl::load_audio(path("a3.wav"));
  const auto margins = torch::cat({torch::zeros({1600}), clip, torch::zeros({1600})});
  const auto padded = torch::cat({torch::zeros({8000}), clip, torch::zeros({12800})});
  const auto both = model.embed_waveforms({margins, padded});
  EXPECT_GT(torch::dot(both[0], both[1]).item<double>(), 0.99999);
  model.set_trim_silence(false);
  const auto kept = model.embed_waveforms({margins, padded});
  EXPECT_LT(torch::dot(kept[0], kept[1]).item<double>(), torch::dot(both[0], both[1]).item<double>());
  // Untrimmed evaluation reads (and writes) the untrimmed cache.
  evaluate_speech(model, text, data);
  EXPECT_EQ(cwcl::FeatureCache::open(cwcl::feature_cache_path(path("set.jsonl"), cwcl::FrontEnd::LogMel)).trim(), "");
  model.set_trim_silence(true);
  // The text bound: texts through the text tower against the label texts.
  const auto bound = evaluate_text_bound(text, data);
  EXPECT_EQ(bound.classification.n, 7);
  EXPECT_EQ(bound.class_names, data.labels.names);
}

// A result whose first `right` of `n` items are right.
TaskResult result_with(int64_t n, int64_t right, const std::vector<std::string>& ids = {}) {
  TaskResult r;
  r.targets = torch::zeros({n}, torch::kLong);
  r.classification.n = n;
  r.classification.top1 = static_cast<double>(right) / static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) r.classification.predictions.push_back(i < right ? 0 : 1);
  r.item_ids = ids;
  return r;
}

TEST(TaskIntervals, BootstrapAroundTopOneAndPairedDifference) {
  const auto a = result_with(200, 120), b = result_with(200, 100);
  const auto alone = cwcl::top1_intervals(a);
  EXPECT_LT(alone.top1.low, 0.6);
  EXPECT_GT(alone.top1.high, 0.6);
  EXPECT_FALSE(alone.difference.has_value());
  const auto paired = cwcl::top1_intervals(a, &b);
  ASSERT_TRUE(paired.difference.has_value());
  EXPECT_DOUBLE_EQ(*paired.difference, 0.1);
  // a is right wherever b is: every resample has a >= b, and a > b on 20 items.
  EXPECT_GT(paired.difference_ci.low, 0.0);
  EXPECT_LT(paired.difference_ci.low, 0.1);
}

#if TORCH_VERSION_MAJOR < 2
TEST_F(SpeechTasks, Bf16WithTheScratchTowerOnLibtorch1IsAUsageError) {
  auto model = tiny_model();
  EXPECT_THROW(model.set_precision(cwcl::Precision::Bf16), cwcl::UsageError);
  EXPECT_EQ(model.precision(), cwcl::Precision::Fp32);
}
#endif

// The colour tower: libtorch 1.13's TransformerEncoder (the scratch speech
// tower) has no bf16 masked_fill on the CPU (docs/not-built.md).
TEST(ModelPrecision, Bf16EvaluationGivesFloatEmbeddingsNearFp32) {
  cwcl::TrainConfig c;
  cwcl::ResNetTowerSpec small;
  small.width = 8;
  small.image_size = 32;
  c.model = small;
  torch::manual_seed(0);
  auto tower = cwcl::make_tower(c.model, 16, cwcl::TowerWeights::Pretrained);
  tower->eval();
  auto model = cwcl::TrainedModel::of_tower(c, tower, 0);
  const auto images = torch::randint(0, 256, {4, 3, 32, 32}, torch::kLong).to(torch::kByte);
  const auto fp32 = model.embed_images(images);
  ASSERT_EQ(model.set_precision(cwcl::Precision::Bf16).precision(), cwcl::Precision::Bf16);
  const auto bf16 = model.embed_images(images);
  EXPECT_EQ(bf16.scalar_type(), torch::kFloat);
  // bf16 keeps 8 bits of mantissa: the directions agree closely, not exactly.
  const auto cosines = (fp32 * bf16).sum(1);
  EXPECT_GT(cosines.min().item<double>(), 0.99) << cosines;
  EXPECT_FALSE(torch::equal(fp32, bf16));
  EXPECT_TRUE(torch::equal(model.set_precision(cwcl::Precision::Fp32).embed_images(images), fp32));
}

TEST_F(SpeechTasks, TopOneByAFieldOfTheManifest) {
  const auto manifest = write_set();
  const auto r = result_with(4, 3, {"u0", "u1", "u3", "u4"});
  const auto groups = cwcl::top1_by_field(r, manifest, "voice");
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].value, "one");
  EXPECT_EQ(groups[0].n, 2);
  EXPECT_DOUBLE_EQ(groups[0].top1, 1.0);
  EXPECT_DOUBLE_EQ(groups[1].top1, 0.5);  // u3 right, u4 wrong
  EXPECT_EQ(cwcl::top1_by_field(r, manifest, "absent")[0].value, "(none)");
  const auto report = nlohmann::json::parse(cwcl::eval_report_json(r, {false, &r, "same", "voice", manifest}));
  EXPECT_DOUBLE_EQ(report.at("difference").get<double>(), 0.0);
  EXPECT_EQ(report.at("groups").at("two").at("n").get<int64_t>(), 2);
  EXPECT_EQ(report.at("against").at("model").get<std::string>(), "same");
}

TEST_F(SpeechTasks, LabelArgumentsFromFilesAndCommaLists) {
  EXPECT_EQ(cwcl::LabelSet::read("a,b,c").names, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_THROW(cwcl::LabelSet::read("a,,c"), cwcl::UsageError);
  std::ofstream(path("l.txt")) << "yes\nno\nyes\n";
  try {
    cwcl::LabelSet::read(path("l.txt"));
    FAIL() << "a duplicate label was accepted";
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("l.txt:3: duplicate label 'yes'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cwcl::LabelSet::read(path("none.txt")), cwcl::DataError);
}

TEST_F(SpeechTasks, ValidatorFollowsTheConfiguration) {
  cwcl::TrainConfig c;
  EXPECT_FALSE(cwcl::make_validator(c));  // eval_every 0: none
  c.run.eval_every = 5;
  c.model = cwcl::ScratchSpeechTowerSpec{cwcl::ScratchSize::Tiny, cwcl::Pooling::Mean};
  c.eval.manifest = write_set();
  c.eval.labels = path("labels.tsv");
  const auto validate = cwcl::make_validator(c);
  ASSERT_TRUE(validate);
  auto model = tiny_model();
  const auto v = validate(model, toy_text_tower(16));
  ASSERT_EQ(v.values.size(), 4u);
  EXPECT_EQ(v.values[0].first, "top1");
  EXPECT_DOUBLE_EQ(v.score, v.values[0].second);
  EXPECT_EQ(v.values[2].first, "r1_to_text");
  c.eval.manifest = path("absent.jsonl");  // the validation set loads when the validator is made
  EXPECT_THROW(cwcl::make_validator(c), cwcl::DataError);
}

}  // namespace
