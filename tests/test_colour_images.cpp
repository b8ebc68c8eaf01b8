// Colour images: the manifest, decoding (alpha on white), cropping,
// augmentation, the prefetching loader, the ResNet tower and a training run
// on an image manifest. Test images are written here with OpenCV.
#include <cwcl/data/images.h>
#include <cwcl/error.h>
#include <cwcl/eval/tasks.h>
#include <cwcl/io/safetensors.h>
#include <cwcl/model/config.h>
#include <cwcl/model/export.h>
#include <cwcl/model/model.h>
#include <cwcl/towers/resnet.h>
#include <cwcl/towers/tower.h>
#include <cwcl/train/trainer.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "temp_dir.h"
#include "train_helpers.h"

namespace {

namespace fs = std::filesystem;
using cwcl::testing::TempDirTest;

class ColourImages : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (!cwcl::colour_images_built()) GTEST_SKIP() << "built with CWCL_WITH_OPENCV=OFF";
  }
  // A BGR(A) image written with OpenCV; returns its path.
  std::string write(const std::string& name, const cv::Mat& m) {
    const auto p = path(name);
    EXPECT_TRUE(cv::imwrite(p, m));
    return p;
  }
  std::string write_text(const std::string& name, const std::string& text) {
    std::ofstream(path(name)) << text;
    return path(name);
  }
};

TEST_F(ColourImages, ManifestReadsTextsLabelsAndResolvesRelativePaths) {
  const auto m = write_text("m.jsonl",
                            R"({"id": "a", "image": "a.png", "text": "a cat", "label": "cat"})"
                            "\n\n"
                            R"({"id": "b", "image": "/abs/b.png", "texts": ["a dog", "a hound"]})"
                            "\n");
  const auto r = cwcl::read_image_manifest(m);
  ASSERT_EQ(r.examples.size(), 2u);
  EXPECT_EQ(r.skipped, 0);
  EXPECT_EQ(r.examples[0].image, (dir / "a.png").string());
  EXPECT_EQ(r.examples[0].texts, std::vector<std::string>{"a cat"});
  EXPECT_EQ(r.examples[0].label, "cat");
  EXPECT_EQ(r.examples[1].image, "/abs/b.png");
  EXPECT_EQ(r.examples[1].texts, (std::vector<std::string>{"a dog", "a hound"}));
}

TEST_F(ColourImages, ManifestSkipsBadLinesNamingFileAndLine) {
  const auto m = write_text("m.jsonl",
                            "not json\n"
                            R"({"id": "a", "text": "no image"})" "\n"
                            R"({"id": "b", "image": "b.png", "texts": ["ok", 3]})" "\n"
                            R"({"id": "c", "image": "c.png", "text": " "})" "\n"
                            R"({"id": "d", "image": "d.png", "text": "fine", "label": ""})" "\n"
                            R"({"id": "e", "image": "e.png", "text": "fine"})" "\n"
                            R"({"id": "e", "image": "e2.png", "text": "again"})" "\n"
                            R"({"id": "f", "image": "f.png"})" "\n");
  const auto r = cwcl::read_image_manifest(m);
  ASSERT_EQ(r.examples.size(), 1u);
  EXPECT_EQ(r.examples[0].id, "e");
  EXPECT_EQ(r.skipped, 7);
  ASSERT_EQ(r.problems.size(), 7u);
  EXPECT_EQ(r.problems[0], m + ":1: not JSON");
  EXPECT_NE(r.problems[1].find(":2: no string field 'image'"), std::string::npos) << r.problems[1];
  EXPECT_NE(r.problems[2].find(":3: 'texts' holds a non-string"), std::string::npos);
  EXPECT_NE(r.problems[3].find(":4: an empty text"), std::string::npos);
  EXPECT_NE(r.problems[4].find(":5: 'label'"), std::string::npos);
  EXPECT_NE(r.problems[5].find(":7: duplicate id 'e'"), std::string::npos);
  EXPECT_NE(r.problems[6].find(":8: no 'text' or 'texts'"), std::string::npos);
  // An evaluation set needs labels, not texts.
  const auto labelled = cwcl::read_image_manifest(m, cwcl::ImageManifestNeeds::Label);
  EXPECT_TRUE(labelled.examples.empty());
  try {
    cwcl::read_image_manifest(path("none.jsonl"));
    FAIL() << "expected a DataError";
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("none.jsonl"), std::string::npos);
  }
}

TEST_F(ColourImages, AlphaIsCompositedOnWhite) {
  // BGRA: transparent black, opaque red, half-transparent black.
  cv::Mat m(1, 3, CV_8UC4);
  m.at<cv::Vec4b>(0, 0) = {0, 0, 0, 0};
  m.at<cv::Vec4b>(0, 1) = {0, 0, 255, 255};
  m.at<cv::Vec4b>(0, 2) = {0, 0, 0, 128};
  const auto rgb = cwcl::read_rgb_image(write("a.png", m));
  ASSERT_EQ(rgb.sizes(), (std::vector<int64_t>{1, 3, 3}));
  auto px = [&](int64_t x, int64_t c) { return rgb[0][x][c].item<int64_t>(); };
  EXPECT_EQ(px(0, 0), 255);
  EXPECT_EQ(px(0, 2), 255);
  EXPECT_EQ(px(1, 0), 255);  // red is channel 0 (RGB)
  EXPECT_EQ(px(1, 1), 0);
  EXPECT_EQ(px(1, 2), 0);
  EXPECT_NEAR(px(2, 0), 127, 1);  // (1 - 128/255) * 255
}

TEST_F(ColourImages, GraySixteenBitAndJpegBecomeRgb) {
  cv::Mat gray(2, 2, CV_8UC1, cv::Scalar(60));
  auto g = cwcl::read_rgb_image(write("g.png", gray));
  EXPECT_EQ(g.sizes(), (std::vector<int64_t>{2, 2, 3}));
  EXPECT_EQ(g.min().item<int64_t>(), 60);
  EXPECT_EQ(g.max().item<int64_t>(), 60);
  cv::Mat deep(2, 2, CV_16UC3, cv::Scalar(65535, 0, 0));  // blue at 16 bits
  auto d = cwcl::read_rgb_image(write("d.png", deep));
  EXPECT_EQ(d[0][0][2].item<int64_t>(), 255);
  EXPECT_EQ(d[0][0][0].item<int64_t>(), 0);
  cv::Mat green(8, 8, CV_8UC3, cv::Scalar(0, 200, 0));
  auto j = cwcl::read_rgb_image(write("j.jpg", green));
  EXPECT_NEAR(j[4][4][1].item<int64_t>(), 200, 3);
}

TEST_F(ColourImages, UnreadableFileIsADataErrorNamingIt) {
  const auto p = write_text("bad.png", "not an image");
  try {
    cwcl::read_rgb_image(p);
    FAIL() << "expected a DataError";
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos);
  }
  EXPECT_THROW(cwcl::read_rgb_image(path("missing.png")), cwcl::DataError);
}

TEST_F(ColourImages, FitKeepsTheCentreSquareOfAWideImage) {
  // 4 x 12: red, green, blue thirds; the centre 4 x 4 square is green.
  cv::Mat m(4, 12, CV_8UC3, cv::Scalar(0, 0, 255));
  m(cv::Rect(4, 0, 4, 4)).setTo(cv::Scalar(0, 255, 0));
  m(cv::Rect(8, 0, 4, 4)).setTo(cv::Scalar(255, 0, 0));
  const auto fitted = cwcl::fit_image(cwcl::read_rgb_image(write("w.png", m)), 2);
  ASSERT_EQ(fitted.sizes(), (std::vector<int64_t>{3, 2, 2}));
  EXPECT_EQ(fitted[1].min().item<int64_t>(), 255);
  EXPECT_EQ(fitted[0].max().item<int64_t>(), 0);
  EXPECT_EQ(fitted[2].max().item<int64_t>(), 0);
}

TEST_F(ColourImages, AugmentationIsFixedBySeedAndVariesWithIt) {
  auto rgb = torch::randint(0, 256, {40, 30, 3}, torch::kLong).to(torch::kUInt8);
  const cwcl::ImageAugmentOptions o;
  const auto a = cwcl::augment_image(rgb, 16, o, 7);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{3, 16, 16}));
  EXPECT_TRUE(torch::equal(a, cwcl::augment_image(rgb, 16, o, 7)));
  EXPECT_FALSE(torch::equal(a, cwcl::augment_image(rgb, 16, o, 8)));
  // Without crop or jitter, augmentation is the plain fit.
  cwcl::ImageAugmentOptions none;
  none.min_area = 1;
  none.max_aspect = 1;
  none.jitter = 0;
  auto square = torch::randint(0, 256, {20, 20, 3}, torch::kLong).to(torch::kUInt8);
  EXPECT_TRUE(torch::equal(cwcl::augment_image(square, 10, none, 3), cwcl::fit_image(square, 10)));
}

TEST(ColourNormalisation, UsesThePerChannelStatistics) {
  auto x = torch::full({1, 3, 2, 2}, 255, torch::kUInt8);
  const auto y = cwcl::normalise_colour(x);
  for (int c = 0; c < 3; ++c)
    EXPECT_NEAR(y[0][c][0][0].item<double>(), (1.0 - cwcl::kColourMean[c]) / cwcl::kColourStd[c], 1e-5);
  EXPECT_THROW(cwcl::normalise_colour(torch::zeros({1, 1, 2, 2}, torch::kUInt8)), c10::Error);
}

TEST_F(ColourImages, PrefetcherYieldsBatchesInOrderAndNamesFailures) {
  std::vector<std::string> files;
  for (int i = 0; i < 6; ++i)
    files.push_back(write("i" + std::to_string(i) + ".png", cv::Mat(5, 5, CV_8UC3, cv::Scalar(i * 40, 0, 0))));
  files[4] = path("missing.png");
  cwcl::ImagePrefetcher::Options o;
  o.size = 4;
  o.ahead = 2;
  auto plan = [&](int64_t k) {
    return cwcl::ImageBatchRequest{{files[static_cast<size_t>(2 * k)], files[static_cast<size_t>(2 * k + 1)]}, {0, 0}};
  };
  cwcl::ImagePrefetcher loader(o, plan, 1, 3);  // batches 1 and 2
  auto first = loader.next();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->images.sizes(), (std::vector<int64_t>{2, 3, 4, 4}));
  EXPECT_EQ(first->images[0][2][0][0].item<int64_t>(), 80);  // file 2's blue channel
  EXPECT_TRUE(first->failures.empty());
  auto second = loader.next();
  ASSERT_TRUE(second);
  ASSERT_EQ(second->failures.size(), 1u);
  EXPECT_NE(second->failures[0].find("missing.png"), std::string::npos);
  EXPECT_FALSE(loader.next());
}

// ---- the ResNet tower -------------------------------------------------------

TEST(ResNet, EmbedsAnySideAndEveryParameterGetsAGradient) {
  torch::manual_seed(0);
  cwcl::ResNetOptions o;
  o.width = 4;
  o.blocks = 2;
  o.hidden = 16;
  o.out_dim = 8;
  cwcl::ResNet net(o);
  for (int64_t side : {16, 37}) EXPECT_EQ(net->forward(torch::randn({2, 3, side, side})).sizes(), (std::vector<int64_t>{2, 8}));
  // Residual branches start closed (bn2's scale is zero); opened, every
  // parameter gets a gradient.
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->named_parameters())
      if (p.key().find("bn2.weight") != std::string::npos) p.value().fill_(1);
  }
  net->forward(torch::randn({3, 3, 32, 32})).pow(2).sum().backward();
  for (const auto& p : net->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
  EXPECT_THROW(net->forward(torch::randn({1, 1, 16, 16})), c10::Error);
}

TEST(ResNet, BlocksStartAsTheIdentityOfTheirInput) {
  cwcl::ResNetBlock block(4, 4, 1);
  block->eval();
  auto x = torch::randn({2, 4, 6, 6});
  EXPECT_TRUE(torch::allclose(block->forward(x), torch::relu(x)));
}

class ResNetTower : public TempDirTest {};

TEST_F(ResNetTower, StartingWeightsComeFromASafetensorsFileOfItsNames) {
  cwcl::ResNetTowerSpec spec;
  spec.width = 4;
  spec.image_size = 16;
  torch::manual_seed(1);
  auto source = cwcl::make_tower(spec, 8, cwcl::TowerWeights::Pretrained);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& p : source->named_parameters()) tensors[p.key()] = p.value().detach() + 1;  // distinct from any init
  cwcl::write_safetensors(path("w.safetensors"), tensors);
  spec.init = path("w.safetensors");
  torch::manual_seed(2);
  auto started = cwcl::make_tower(spec, 8, cwcl::TowerWeights::Pretrained);
  for (const auto& p : started->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), tensors.at(p.key()))) << p.key();
  EXPECT_EQ(started->image_input().channels, 3);
  EXPECT_EQ(started->image_input().size, 16);
  // Another text tower's dimension: the head starts fresh, the rest loads.
  auto other = cwcl::make_tower(spec, 12, cwcl::TowerWeights::Pretrained);
  EXPECT_TRUE(torch::equal(other->named_parameters()["resnet.stem.0.weight"], tensors.at("resnet.stem.0.weight")));
  // Another width is an error naming the tensor; a file of other names too.
  spec.width = 8;
  try {
    cwcl::make_tower(spec, 8, cwcl::TowerWeights::Pretrained);
    FAIL() << "expected a DataError";
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("resnet.stem.0.weight"), std::string::npos) << e.what();
  }
  cwcl::write_safetensors(path("other.safetensors"), {{"x", torch::zeros({1})}});
  spec.width = 4;
  spec.init = path("other.safetensors");
  EXPECT_THROW(cwcl::make_tower(spec, 8, cwcl::TowerWeights::Pretrained), cwcl::DataError);
  // Rebuilding from a checkpoint never reads the file.
  spec.init = path("gone.safetensors");
  EXPECT_NO_THROW(cwcl::make_tower(spec, 8, cwcl::TowerWeights::Untrained));
}

TEST(ResNetConfig, KeysRangesAndOwnership) {
  auto c = cwcl::TrainConfig::from_string(
      "[model]\ntower = \"resnet\"\nresnet_width = 8\nresnet_blocks = 2\nimage_size = 48\ninit = \"w.safetensors\"\n", "t");
  const auto& spec = std::get<cwcl::ResNetTowerSpec>(c.model);
  EXPECT_EQ(spec.width, 8);
  EXPECT_EQ(spec.blocks, 2);
  EXPECT_EQ(spec.image_size, 48);
  EXPECT_EQ(spec.init, "w.safetensors");
  EXPECT_EQ(c.modality(), cwcl::Modality::Image);
  EXPECT_TRUE(c.image_manifests());
  EXPECT_EQ(cwcl::TrainConfig::from_string(c.to_toml(), "resolved").values(), c.values());
  c.data.train = "m.jsonl";
  c.set("model.image_size=8");
  try {
    c.validate();
    FAIL() << "expected a ConfigError";
  } catch (const cwcl::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.image_size"), std::string::npos);
  }
  c.set("model.image_size=32");
  c.set("run.eval_every=5");
  try {
    c.validate();
    FAIL() << "expected a ConfigError";
  } catch (const cwcl::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("eval.manifest"), std::string::npos);
  }
  try {
    cwcl::TrainConfig::from_string("[model]\ntower = \"image\"\nresnet_width = 8\n", "t");
    FAIL() << "expected a ConfigError";
  } catch (const cwcl::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("belongs to model.tower = \"resnet\""), std::string::npos) << e.what();
  }
}

// ---- training and evaluating on an image manifest -------------------------

// Coloured shapes: each colour a class, its captions name the colour.
class ImageManifestTraining : public ColourImages {
 protected:
  void SetUp() override {
    ColourImages::SetUp();
    if (IsSkipped()) return;
    if (!cwcl::testing::have_training_inputs()) GTEST_SKIP() << "needs MiniLM (make test fetches it)";
    const std::vector<std::pair<std::string, cv::Scalar>> colours = {
        {"red", {0, 0, 255}}, {"green", {0, 255, 0}}, {"blue", {255, 0, 0}}, {"yellow", {0, 255, 255}}};
    std::ofstream train(path("train.jsonl")), test(path("test.jsonl"));
    for (int i = 0; i < 24; ++i) {
      const auto& [name, bgr] = colours[static_cast<size_t>(i % 4)];
      cv::Mat m(20 + i, 24, CV_8UC4, cv::Scalar(0, 0, 0, 0));  // transparent around a coloured square
      m(cv::Rect(4, 4, 14, 14)).setTo(cv::Scalar(bgr[0], bgr[1], bgr[2], 255));
      const auto file = "img" + std::to_string(i) + ".png";
      write(file, m);
      const nlohmann::json line = {{"id", std::to_string(i)}, {"image", file},
                                   {"texts", {"a " + name + " square", name}}, {"label", name},
                                   {"half", i < 12 ? "first" : "second"}};
      (i < 20 ? train : test) << line.dump() << "\n";
    }
    test << R"({"id": "gone", "image": "gone.png", "label": "red"})" << "\n";
    write_text("labels.tsv", "label\ttext\nred\tred\ngreen\tgreen\nblue\tblue\nyellow\tyellow\n");
  }
  cwcl::TrainConfig config(const std::string& out) {
    cwcl::TrainConfig c;
    c.run.out = path(out);
    c.run.steps = 4;
    c.run.batch_size = 8;
    c.run.checkpoint_every = 2;
    c.run.log_every = 1;
    cwcl::ResNetTowerSpec spec;
    spec.width = 4;
    spec.image_size = 16;
    c.model = spec;
    c.data.train = path("train.jsonl");
    c.optim.warmup = 1;
    return c;
  }
};

TEST_F(ImageManifestTraining, TrainsResumesExactlyAndEvaluates) {
  // Training 4 steps in one go or 2 then 2 more (resume) gives the same weights.
  const auto whole = cwcl::train(config("whole"));
  EXPECT_EQ(whole.steps, 4);
  auto half = config("half");
  half.run.steps = 2;
  cwcl::train(half);
  auto rest = config("half");
  cwcl::TrainOptions resume;
  resume.resume = true;
  cwcl::train(rest, resume);
  auto a = cwcl::TrainedModel::load(path("whole"));
  auto b = cwcl::TrainedModel::load(path("half"));
  EXPECT_EQ(a.weights_digest(), b.weights_digest());

  const auto data = cwcl::ImageManifestTaskData::load({"colours", path("test.jsonl"), path("labels.tsv"), ""});
  EXPECT_EQ(data.examples.size(), 5u);
  const auto r = cwcl::evaluate_image_manifest(a, a.text_tower(), data);
  EXPECT_EQ(r.classification.n, 4);
  EXPECT_EQ(r.skipped, 1);  // gone.png
  EXPECT_EQ(r.class_names.size(), 4u);
  ASSERT_TRUE(r.retrieval);
  // Any image file of any size, through the tower's own preprocessing.
  EXPECT_EQ(a.embed_image_files({path("img3.png")}).sizes(), (std::vector<int64_t>{1, 384}));
  // Exported with its input description and check embeddings.
  cwcl::export_model(a, path("export"));
  std::ifstream config_json(path("export/config.json"));
  const auto exported = nlohmann::json::parse(config_json);
  EXPECT_EQ(exported["tower"], "resnet");
  EXPECT_EQ(exported["input"]["kind"], "colour-image");
  EXPECT_EQ(exported["input"]["height"], 16);
}

TEST_F(ImageManifestTraining, TrainsInChunksAndUnderBf16Autocast) {
  auto c = config("run");
  c.run.steps = 2;
  c.run.accum_steps = 2;  // GradCache: the batch of 8 embedded as two chunks of 4
  c.run.precision = cwcl::Precision::Bf16;
  c.loss.kind = cwcl::LossKind::CWCL;
  c.loss.weights = cwcl::WeightMap::Labels;  // the manifest's labels reach the loss
  const auto summary = cwcl::train(c);
  EXPECT_EQ(summary.steps, 2);
  EXPECT_TRUE(std::isfinite(summary.final_loss));
  EXPECT_EQ(summary.nonfinite_steps, 0);
}

TEST_F(ImageManifestTraining, UnreadableImagesAreSkippedAndCounted) {
  std::ofstream(path("train.jsonl"), std::ios::app) << R"({"id": "x", "image": "nope.png", "text": "a red square"})"
                                                     << "\n" << R"({"id": "y", "image": "img0.png"})" << "\n";
  auto c = config("run");
  c.run.steps = 1;
  const auto summary = cwcl::train(c);
  EXPECT_EQ(summary.skipped, 2);  // a line without a text, a file that is not there
}

TEST_F(ImageManifestTraining, CalibratingOnTextsAllAlikeIsADataErrorNamingTheKey) {
  std::ofstream train(path("train.jsonl"));
  for (int i = 0; i < 20; ++i)
    train << nlohmann::json{{"id", std::to_string(i)}, {"image", "img" + std::to_string(i) + ".png"}, {"text", "a square"}}.dump()
          << "\n";
  train.close();
  auto c = config("run");
  c.loss.kind = cwcl::LossKind::CWCL;
  c.loss.weights = cwcl::WeightMap::Kernel;
  c.loss.calibrate = 4;
  try {
    cwcl::train(c);
    FAIL() << "expected a DataError";
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("loss.calibrate"), std::string::npos) << e.what();
  }
}

TEST_F(ImageManifestTraining, TooFewImagesForABatchIsADataErrorNamingTheManifest) {
  auto c = config("run");
  c.run.batch_size = 32;
  try {
    cwcl::train(c);
    FAIL() << "expected a DataError";
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("train.jsonl"), std::string::npos) << e.what();
  }
}

}  // namespace
