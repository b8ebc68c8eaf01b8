#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cwcl/towers/script_tower.h>

#include <fstream>

#include "temp_dir.h"

namespace {

TEST(ScriptTower, MatchesPythonOutputs) {
  auto tower = cwcl::ScriptTextTower::load(CWCL_TEST_DATA_DIR "/fixtures/char_bag.pt");
  std::ifstream in(CWCL_TEST_DATA_DIR "/fixtures/char_bag_expected.json");
  auto expected = nlohmann::json::parse(in);
  auto texts = expected.at("texts").get<std::vector<std::string>>();
  auto got = tower.encode(texts);
  ASSERT_EQ(got.size(0), static_cast<int64_t>(texts.size()));
  for (size_t i = 0; i < texts.size(); ++i) {
    auto want = torch::tensor(expected.at("embeddings")[i].get<std::vector<float>>());
    EXPECT_TRUE(torch::allclose(got[static_cast<int64_t>(i)], want, 1e-6, 1e-6)) << texts[i];
  }
  EXPECT_FALSE(tower.fingerprint().empty());
}

using ScriptFiles = cwcl::testing::TempDirTest;

TEST_F(ScriptFiles, BadFilesAreNamed) {
  EXPECT_THROW(cwcl::ScriptTextTower::load(path("missing.pt")), std::runtime_error);
  std::ofstream(path("junk.pt")) << "not a zip archive";
  try {
    cwcl::ScriptTextTower::load(path("junk.pt"));
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("junk.pt: not a TorchScript module"), std::string::npos) << e.what();
  }
}

}  // namespace
