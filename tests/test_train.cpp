// Trainer, configuration, image data, evaluation helpers and plots.
#include <cwcl/data/fashion_mnist.h>
#include <cwcl/eval/eval.h>
#include <cwcl/eval/plot.h>
#include <cwcl/runtime.h>
#include <cwcl/seeds.h>
#include <cwcl/towers/image_encoder.h>
#include <cwcl/train/checkpoint.h>
#include <cwcl/train/config.h>
#include <cwcl/train/model.h>
#include <cwcl/train/schedule.h>
#include <cwcl/train/trainer.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "cuda.h"
#include "temp_dir.h"

namespace {

namespace fs = std::filesystem;
using cwcl::ConfigError;
using cwcl::TrainConfig;

const char* kFashionMnist = "/usr/share/datasets/fashion-mnist";

std::string source_file(const std::string& relative) {
  return (fs::path(CWCL_TEST_DATA_DIR) / ".." / relative).string();
}

// A small image run: every test that trains starts from this.
TrainConfig tiny_image_config(const std::string& out) {
  TrainConfig c;
  c.run.out = out;
  c.run.steps = 6;
  c.run.batch_size = 32;
  c.run.checkpoint_every = 3;
  c.run.log_every = 2;
  c.model = cwcl::ImageTowerSpec{4};
  c.data.train = kFashionMnist;
  c.data.limit = 256;
  c.optim.warmup = 2;
  return c;
}

bool have_training_inputs() {
  return fs::exists(fs::path(kFashionMnist) / "train-images-idx3-ubyte.gz") &&
         fs::exists(fs::path(cwcl::model_folder("all-MiniLM-L6-v2")) / "model.safetensors");
}

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
    if (entry.path().extension() != ".toml") continue;
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
}

TEST(Errors, KindsMapToExitCodesAndFormatErrorsAreDataErrors) {
  EXPECT_EQ(cwcl::exit_code(cwcl::ErrorKind::Usage), 2);
  EXPECT_EQ(cwcl::exit_code(cwcl::ErrorKind::Config), 2);
  EXPECT_EQ(cwcl::exit_code(cwcl::ErrorKind::Data), 3);
  EXPECT_EQ(cwcl::exit_code(cwcl::ErrorKind::Internal), 1);
  try {
    throw cwcl::FormatError("x.safetensors: truncated");
  } catch (const cwcl::Error& e) {
    EXPECT_EQ(e.kind(), cwcl::ErrorKind::Data);
  }
  try {
    TrainConfig::from_string("[run]\nsteps = \"x\"\n", "k.toml");
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

// ---- images ----------------------------------------------------------------

class ImageFiles : public cwcl::testing::TempDirTest {};

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<long>(bytes.size()));
}

TEST_F(ImageFiles, ReadsIdxAndRejectsBadFiles) {
  // Two 2x3 images and their labels, uncompressed.
  write_bytes(path("train-images-idx3-ubyte"), {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3,
                                                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  write_bytes(path("train-labels-idx1-ubyte"), {0, 0, 8, 1, 0, 0, 0, 2, 4, 9});
  auto set = cwcl::read_fashion_mnist(dir.string(), cwcl::FashionMnistSplit::Train);
  ASSERT_EQ(set.images.sizes(), (std::vector<int64_t>{2, 2, 3}));
  EXPECT_EQ(set.images[1][1][2].item<int>(), 12);
  EXPECT_EQ(set.labels[1].item<int64_t>(), 9);
  EXPECT_EQ(set.only({9}).size(), 1);
  // Truncated data and a wrong magic number are named.
  write_bytes(path("t10k-images-idx3-ubyte"), {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2});
  write_bytes(path("t10k-labels-idx1-ubyte"), {0, 0, 8, 2, 0, 0, 0, 2, 4, 9});
  try {
    cwcl::read_fashion_mnist(dir.string(), cwcl::FashionMnistSplit::Test);
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("t10k-images-idx3-ubyte"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cwcl::read_fashion_mnist(path("missing"), cwcl::FashionMnistSplit::Train), cwcl::DataError);
}

TEST_F(ImageFiles, LoadImageFileAndAugmentDeterministically) {
  if (!cwcl::image_files_built()) GTEST_SKIP() << "built with CWCL_WITH_OPENCV=OFF";
  EXPECT_THROW(cwcl::load_image(path("none.png")), cwcl::DataError);
  auto images = torch::randint(0, 255, {4, 28, 28}, torch::kUInt8);
  auto g1 = at::detail::createCPUGenerator(5), g2 = at::detail::createCPUGenerator(5);
  auto a = cwcl::augment_images(images, 2, g1), b = cwcl::augment_images(images, 2, g2);
  EXPECT_TRUE(torch::equal(a, b));
  auto none = at::detail::createCPUGenerator(1);
  // Shift 0 and no flip keeps the image: some image of many draws must be unchanged.
  auto same = cwcl::augment_images(images, 0, none);
  int64_t unchanged = 0;
  for (int64_t i = 0; i < 4; ++i) unchanged += torch::equal(same[i], images[i]) || torch::equal(same[i], images[i].flip({1}));
  EXPECT_EQ(unchanged, 4);
  cwcl::write_heatmaps_png(path("h.png"), {torch::rand({8, 8})}, {"t"});
  auto img = cwcl::load_image(path("h.png"));
  EXPECT_EQ(img.sizes(), (std::vector<int64_t>{28, 28}));
}

TEST(ImageEncoder, OutputShape) {
  cwcl::ImageEncoderOptions o;
  o.width = 4;
  o.out_dim = 12;
  cwcl::ImageEncoder enc(o);
  EXPECT_EQ(enc->forward(torch::randn({3, 1, 28, 28})).sizes(), (std::vector<int64_t>{3, 12}));
  EXPECT_THROW(enc->forward(torch::randn({3, 28, 28})), c10::Error);
}

// ---- evaluation helpers and plots ------------------------------------------

TEST(EvalHelpers, ClassEmbeddingsAverageTemplates) {
  // A toy encoder: one-hot of the text length.
  auto encode = [](const std::vector<std::string>& texts) {
    auto out = torch::zeros({static_cast<int64_t>(texts.size()), 64});
    for (size_t i = 0; i < texts.size(); ++i) out[static_cast<int64_t>(i)][static_cast<int64_t>(texts[i].size())] = 1;
    return out;
  };
  auto plain = cwcl::class_embeddings(encode, {"ab", "abcd"});
  EXPECT_EQ(plain[0][2].item<float>(), 1.0f);
  auto two = cwcl::class_embeddings(encode, {"ab"}, {"{}", "x {} y"}, 2);
  EXPECT_NEAR(two[0][2].item<float>(), std::sqrt(0.5f), 1e-6);
  EXPECT_NEAR(two[0][6].item<float>(), std::sqrt(0.5f), 1e-6);
  auto first = cwcl::class_embeddings(encode, {"ab"}, {"{}", "x {} y"}, 1);
  EXPECT_TRUE(torch::allclose(first, plain.narrow(0, 0, 1)));
}

TEST(EvalHelpers, RetrievalRecall) {
  auto a = torch::eye(12);
  auto r = cwcl::retrieval(a, a);
  EXPECT_EQ(r.a_to_b[0], 1.0);
  EXPECT_EQ(r.b_to_a[2], 1.0);
  // b rows shifted by one: R@1 is 0.
  auto shifted = cwcl::retrieval(a, a.roll(1, 0));
  EXPECT_EQ(shifted.a_to_b[0], 0.0);
  // Two rows with the same text: either one is right.
  // Rows 0 and 1 say the same text: retrieving either one for either is right.
  auto b = a.clone();
  b[1] = a[0];
  auto a2 = a.clone();
  a2[1] = a[0];
  auto grouped = cwcl::retrieval(a2, b, torch::tensor({0, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(grouped.a_to_b[0], 1.0);
  EXPECT_EQ(grouped.b_to_a[0], 1.0);
  EXPECT_LT(cwcl::retrieval(a2, b).a_to_b[0], 1.0);  // without groups a tie can pick the other row
}

class Templates : public cwcl::testing::TempDirTest {};

TEST_F(Templates, FileErrorsNameTheLine) {
  std::ofstream(path("t.txt")) << "a photo of a {}.\n# comment\nno label marker\n";
  try {
    cwcl::read_templates(path("t.txt"));
    FAIL();
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("t.txt:3"), std::string::npos) << e.what();
  }
  EXPECT_EQ(cwcl::read_templates(source_file("data/fashion-mnist/templates.txt")).size(), 10u);
}

TEST_F(Templates, PlotsArePngFiles) {
  if (!cwcl::image_files_built()) GTEST_SKIP() << "built with CWCL_WITH_OPENCV=OFF";
  cwcl::write_line_plot_png(path("l.png"), "t", "x", "y", {{"a", {1, 2, 3}, {0.1, 0.5, 0.2}}, {"b", {1, 3}, {0.3, 0.4}}});
  std::ifstream in(path("l.png"), std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  EXPECT_THROW(cwcl::write_line_plot_png(path("no/such/dir/x.png"), "t", "x", "y", {{"a", {1}, {1}}}), std::runtime_error);
}

TEST(Captions, ReadAndExpand) {
  auto set = cwcl::ClassNames::read(source_file("data/fashion-mnist/classes.tsv"));
  EXPECT_EQ(set.size(), 10);
  EXPECT_EQ(set.names[9], "ankle boot");
  auto caps = set.captions(1, {"a {}.", "the {}!"});
  EXPECT_EQ(caps.front(), "a trouser.");
  EXPECT_EQ(caps.size(), 2 * set.synonyms[1].size());
  // The bundled file is found without a path, from any working directory.
  EXPECT_EQ(cwcl::ClassNames::read(cwcl::data_file("fashion-mnist/classes.tsv")).names, set.names);
  EXPECT_THROW(cwcl::data_file("no/such.tsv"), cwcl::DataError);
}

class ClassFiles : public cwcl::testing::TempDirTest {};

TEST_F(ClassFiles, AnyNumberOfClassesAndErrorsNameTheLine) {
  std::ofstream(path("three.tsv")) << "0\tcat\n1\tdog\tpuppy,hound\n2\tbird\n";
  auto three = cwcl::ClassNames::read(path("three.tsv"));
  EXPECT_EQ(three.size(), 3);
  EXPECT_EQ(three.synonyms[1].size(), 3u);
  EXPECT_THROW(cwcl::check_classes({0, 3}, three.size(), "x"), cwcl::DataError);
  std::ofstream(path("gap.tsv")) << "0\tcat\n2\tbird\n";
  try {
    cwcl::ClassNames::read(path("gap.tsv"));
    FAIL();
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("no line for label 1"), std::string::npos) << e.what();
  }
  std::ofstream(path("twice.tsv")) << "0\tcat\n0\tdog\n";
  try {
    cwcl::ClassNames::read(path("twice.tsv"));
    FAIL();
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("twice.tsv:2"), std::string::npos) << e.what();
  }
}

// ---- training ---------------------------------------------------------------

class Training : public cwcl::testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (!have_training_inputs()) GTEST_SKIP() << "needs dataset-fashion-mnist and MiniLM (make test installs both)";
  }
};

std::vector<torch::Tensor> weights_of(const std::string& model) {
  auto m = cwcl::TrainedModel::load(model);
  std::vector<torch::Tensor> out;
  for (auto& p : m.tower().parameters()) out.push_back(p.detach().clone());
  for (auto& b : m.tower().buffers()) out.push_back(b.detach().clone());
  return out;
}

TEST_F(Training, RunDirectoryHoldsConfigMetricsCheckpointsAndModel) {
  auto c = tiny_image_config(path("run"));
  auto summary = cwcl::train(c);
  EXPECT_EQ(summary.steps, 6);
  EXPECT_TRUE(std::isfinite(summary.final_loss));
  for (const char* f : {"config.toml", "metrics.jsonl", "model.pt", "checkpoints/step-00000006.pt", "checkpoints/step-00000003.pt"})
    EXPECT_TRUE(fs::exists(dir / "run" / f)) << f;
  auto resolved = TrainConfig::from_file(path("run/config.toml"));
  EXPECT_EQ(resolved.values(), c.values());
  std::ifstream metrics(path("run/metrics.jsonl"));
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) {
    ++lines;
    for (const char* key : {"\"step\"", "\"loss\"", "\"logit_scale\"", "\"lr\"", "\"samples_per_s\""})
      EXPECT_NE(line.find(key), std::string::npos) << line;
    // Gradient norms per parameter group, before clipping: the tower's and the temperature's.
    auto j = nlohmann::json::parse(line);
    ASSERT_TRUE(j.contains("grad_norm")) << line;
    EXPECT_GT(j["grad_norm"]["encoder"].get<double>(), 0) << line;
    EXPECT_TRUE(j["grad_norm"].contains("criterion")) << line;
  }
  EXPECT_EQ(lines, 3);  // log_every 2 over 6 steps
  auto model = cwcl::TrainedModel::load(path("run"));
  EXPECT_EQ(model.step(), 6);
  auto q = model.embed_images(torch::zeros({3, 28, 28}, torch::kUInt8));
  EXPECT_EQ(q.sizes(), (std::vector<int64_t>{3, 384}));
  EXPECT_NEAR(q.norm(2, 1).mean().item<double>(), 1.0, 1e-5);
  // A second run into the same directory without --resume is refused.
  EXPECT_THROW(cwcl::train(c), cwcl::UsageError);
}

TEST_F(Training, ResumeAfterACrashEndsWithTheSameWeights) {
  auto straight = tiny_image_config(path("straight"));
  cwcl::train(straight);
  // A run that dies after step 4 (its newest checkpoint is step 3), then resumes.
  auto crashed = tiny_image_config(path("crashed"));
  cwcl::TrainOptions dying;
  dying.progress = [](const cwcl::TrainProgress& p) {
    if (p.step == 4) throw std::runtime_error("simulated crash");
  };
  EXPECT_THROW(cwcl::train(crashed, dying), std::runtime_error);
  EXPECT_FALSE(fs::exists(dir / "crashed" / "model.pt"));
  cwcl::TrainOptions resume;
  resume.resume = true;
  auto summary = cwcl::train(crashed, resume);
  EXPECT_EQ(summary.start_step, 3);
  auto a = weights_of(path("straight")), b = weights_of(path("crashed"));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "tensor " << i;
}

TEST_F(Training, ResumeRefusesAnotherArchitecture) {
  auto c = tiny_image_config(path("run"));
  c.run.steps = 3;
  cwcl::train(c);
  c.model = cwcl::ImageTowerSpec{8};
  c.run.steps = 6;
  cwcl::TrainOptions resume;
  resume.resume = true;
  try {
    cwcl::train(c, resume);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.image_width"), std::string::npos) << e.what();
  }
}

TEST_F(Training, CheckpointOfAnotherArchitectureIsNamed) {
  auto c = tiny_image_config(path("run"));
  c.run.steps = 3;
  cwcl::train(c);
  // A file whose config claims a wider network than its weights.
  auto narrow = cwcl::make_tower(c.model, 384, cwcl::TowerWeights::Untrained);
  cwcl::ContrastiveLoss criterion(c.loss_options());
  auto wider = c;
  wider.model = cwcl::ImageTowerSpec{8};
  cwcl::write_model_file(path("other.pt"), {wider, 384, 3, {}}, *narrow, *criterion, nullptr);
  try {
    cwcl::TrainedModel::load(path("other.pt"));
    FAIL();
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("do not fit the architecture"), std::string::npos) << e.what();
  }
  std::ofstream(path("junk.pt")) << "not a model";
  try {
    cwcl::TrainedModel::load(path("junk.pt"));
    FAIL();
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("junk.pt: not a cwcl model"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cwcl::TrainedModel::load(path("empty-dir-that-does-not-exist")), cwcl::DataError);
}

TEST_F(Training, ModelFilesOfAnOlderFormatAreRefusedByVersion) {
  torch::serialize::OutputArchive out;
  out.write("format", c10::IValue(std::string("cwcl-model-1")));
  out.save_to(path("old.pt"));
  try {
    cwcl::TrainedModel::load(path("old.pt"));
    FAIL();
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("format 'cwcl-model-1'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(cwcl::kModelFormat), std::string::npos) << e.what();
  }
}

TEST_F(Training, LossModuleIsSavedBesideTheTower) {
  auto c = tiny_image_config(path("run"));
  c.run.steps = 3;
  cwcl::train(c);
  // The tower holds no loss parameters; the learned temperature moved and is in the file under its own key.
  auto model = cwcl::TrainedModel::load(path("run"));
  for (const auto& p : model.tower().named_parameters())
    EXPECT_EQ(p.key().find("logit"), std::string::npos) << p.key();
  auto file = cwcl::ModelFile::open(path("run/model.pt"));
  cwcl::ContrastiveLoss criterion(c.loss_options());
  const double initial = criterion->logit_scale.item<double>();
  file.load("criterion", *criterion);
  EXPECT_NE(criterion->logit_scale.item<double>(), initial);
}

TEST_F(Training, CalibrationAndCentringRecordedInTheResolvedConfig) {
  auto c = tiny_image_config(path("run"));
  c.run.steps = 2;
  c.loss.weights = cwcl::WeightMap::Kernel;
  c.loss.calibrate = 3;
  c.loss.center = true;
  cwcl::train(c);
  auto resolved = TrainConfig::from_file(path("run/config.toml"));
  EXPECT_NE(resolved.loss.kernel_tau, c.loss.kernel_tau);
  EXPECT_GT(resolved.loss.kernel_tau, 0);
}

TEST_F(Training, LabelsMapTrainsOnLabelledImages) {
  auto c = tiny_image_config(path("run"));
  c.run.steps = 2;
  c.loss.weights = cwcl::WeightMap::Labels;
  EXPECT_NO_THROW(cwcl::train(c));  // images carry class labels (speech refuses it: Config.ValidateNamesTheKey)
}

TEST_F(Training, MissingDataIsADataErrorNamingTheFile) {
  TrainConfig s;
  s.model = cwcl::ScratchSpeechTowerSpec{cwcl::ScratchSize::Tiny};
  s.run.out = path("run");
  s.data.train = path("none.jsonl");
  try {
    cwcl::train(s);
    FAIL();
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("none.jsonl"), std::string::npos) << e.what();
  }
}

// run.precision = bf16 on the CPU (CPU autocast, as on CUDA): the image CNN
// trains to within 5 % of float32's loss after the same 6 steps.
TEST_F(Training, Bf16AutocastTrainsCloseToFloat32) {
  auto fp32 = tiny_image_config(path("fp32"));
  fp32.run.device = cwcl::DeviceSpec::parse("cpu");
  auto bf16 = fp32;
  bf16.run.out = path("bf16");
  bf16.run.precision = cwcl::Precision::Bf16;
  const auto a = cwcl::train(fp32), b = cwcl::train(bf16);
  EXPECT_NE(a.final_loss, b.final_loss) << "autocast changed nothing";
  EXPECT_NEAR(b.final_loss, a.final_loss, 0.05 * a.final_loss);
  // The weights stay float32: autocast casts inside the forward pass only.
  for (const auto& w : weights_of(path("bf16"))) {
    if (w.is_floating_point()) {
      EXPECT_EQ(w.scalar_type(), torch::kFloat);
    }
  }
}

TEST_F(Training, CudaIsRefusedWhereThereIsNone) {
  if (cwcl::cuda_device_count() > 0) GTEST_SKIP() << "this machine has CUDA";
  auto c = tiny_image_config(path("run"));
  c.run.device = cwcl::DeviceSpec::parse("cuda");
  try {
    cwcl::train(c);
    FAIL() << "trained on cuda without CUDA";
  } catch (const cwcl::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("run.device = cuda"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "run")) << "a refused run wrote its directory";
}

// The same run on a GPU and on the CPU, and a GPU run that dies and resumes
// on the CPU (the optimizer state moves with it): equal up to float32
// rounding in different kernels.
TEST_F(Training, CudaRunMatchesTheCpuAndResumesOnIt) {
  CWCL_SKIP_WITHOUT_CUDA();
  auto cpu = tiny_image_config(path("cpu"));
  cpu.run.device = cwcl::DeviceSpec::parse("cpu");
  auto gpu = cpu;
  gpu.run.out = path("gpu");
  gpu.run.device = cwcl::DeviceSpec::parse("cuda");
  cwcl::train(cpu);
  cwcl::train(gpu);
  auto moved = gpu;
  moved.run.out = path("moved");
  cwcl::TrainOptions dying;
  dying.progress = [](const cwcl::TrainProgress& p) {
    if (p.step == 4) throw std::runtime_error("simulated crash");
  };
  EXPECT_THROW(cwcl::train(moved, dying), std::runtime_error);
  moved.run.device = cwcl::DeviceSpec::parse("cpu");
  cwcl::TrainOptions resume;
  resume.resume = true;
  cwcl::train(moved, resume);
  const auto want = weights_of(path("cpu"));
  for (const char* run : {"gpu", "moved"}) {
    const auto got = weights_of(path(run));
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_LT((got[i].to(torch::kDouble) - want[i].to(torch::kDouble)).abs().max().item<double>(), 1e-3) << run;
  }
}

TEST_F(Training, ThreadCountIsRestoredAfterAFailure) {
  cwcl::set_num_threads(1);
  auto c = tiny_image_config(path("run"));
  c.run.threads = 2;
  cwcl::TrainOptions dying;
  dying.progress = [](const cwcl::TrainProgress&) {
    EXPECT_EQ(torch::get_num_threads(), 2);
    throw std::runtime_error("stop");
  };
  EXPECT_THROW(cwcl::train(c, dying), std::runtime_error);
  EXPECT_EQ(torch::get_num_threads(), 1);
}

}  // namespace
