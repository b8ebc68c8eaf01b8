// Image data: IDX files, image files, augmentation, the image encoder,
// captions and class files, prompt templates and plots.
#include <cwcl/data/fashion_mnist.h>
#include <cwcl/eval/eval.h>
#include <cwcl/eval/plot.h>
#include <cwcl/towers/image_encoder.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "cuda.h"
#include "temp_dir.h"
#include "train_helpers.h"

namespace {

namespace fs = std::filesystem;
using cwcl::ConfigError;
using cwcl::TrainConfig;
using namespace cwcl::testing;

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

TEST(EvalHelpers, RepeatedTextsCountOnceInTheTopK) {
  // Three items with their own texts e0..e2, seven with one shared text d
  // that every item finds closer than its own: ranked by distinct texts,
  // each own text comes second (an R@5 hit), though d fills seven rows.
  auto e = torch::eye(4);
  auto d = e[3];
  std::vector<torch::Tensor> a_rows, b_rows;
  for (int k = 0; k < 3; ++k) {
    a_rows.push_back(0.8 * d + 0.6 * e[k]);
    b_rows.push_back(e[k]);
  }
  for (int k = 0; k < 7; ++k) {
    a_rows.push_back(d);
    b_rows.push_back(d);
  }
  const auto r = cwcl::retrieval(torch::stack(a_rows), torch::stack(b_rows),
                                 torch::tensor({0, 1, 2, 3, 3, 3, 3, 3, 3, 3}));
  EXPECT_NEAR(r.a_to_b[0], 0.7, 1e-9);  // the seven d items
  EXPECT_EQ(r.a_to_b[1], 1.0);
  EXPECT_EQ(r.a_to_b_hits.size(), 10u);
}

TEST(EvalHelpers, GroupedRecallMatchesARankingByHand) {
  // Random scores, groups of 1 to 4 rows with unsorted, gapped ids: each
  // a -> b hit at k is checked against a ranking of the groups' best scores
  // written out row by row.
  torch::manual_seed(3);
  const int64_t n = 40;
  auto a = torch::randn({n, 8});
  auto b = torch::randn({n, 8});
  auto group = (torch::randint(0, 15, {n}, torch::kLong) * 7).flip(0);
  const auto r = cwcl::retrieval(a, b, group);
  namespace F = torch::nn::functional;
  auto norm = F::NormalizeFuncOptions().dim(1);
  auto sim = torch::mm(F::normalize(a, norm), F::normalize(b, norm).t());
  int64_t hits_at_5 = 0;
  for (int64_t i = 0; i < n; ++i) {
    std::map<int64_t, float> best;
    for (int64_t j = 0; j < n; ++j) {
      const auto id = group[j].item<int64_t>();
      const float s = sim[i][j].item<float>();
      best[id] = best.count(id) ? std::max(best[id], s) : s;
    }
    const float own = best[group[i].item<int64_t>()];
    int64_t better = 0;
    for (const auto& [id, s] : best) better += s > own;
    EXPECT_EQ(r.a_to_b_hits[static_cast<size_t>(i)], better == 0) << "row " << i;
    hits_at_5 += better < 5;
  }
  EXPECT_NEAR(r.a_to_b[1], static_cast<double>(hits_at_5) / n, 1e-12);
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
  EXPECT_EQ(cwcl::classes_problem({0, 3}, three.size()), "class 3 outside 0..2");
  EXPECT_EQ(cwcl::classes_problem({1, 1}, three.size()), "class 1 twice");
  EXPECT_EQ(cwcl::classes_problem({2, 0}, three.size()), "");
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

}  // namespace
