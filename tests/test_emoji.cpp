// The emoji benchmark's manifests (docs/emoji.md): the split by code, the
// join of drawings and labels, and which drawings go where.
#include <cwcl/demo/emoji.h>
#include <cwcl/error.h>
#include <cwcl/io/files.h>
#include <cwcl/runtime.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "temp_dir.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

TEST(EmojiBenchmark, TheSplitIsFixedByTheCodeAlone) {
  // SHA-256(code) first 4 bytes big endian mod 100 (Python's hashlib): 37, 48, 79, 86, 77.
  EXPECT_EQ(cwcl::emoji_split("1F600"), 0);
  EXPECT_EQ(cwcl::emoji_split("1F1EA-1F1EC"), 0);
  EXPECT_EQ(cwcl::emoji_split("0023-FE0F-20E3"), 1);
  EXPECT_EQ(cwcl::emoji_split("1F44B"), 2);
  EXPECT_EQ(cwcl::emoji_split("2764-FE0F"), 1);
}

class EmojiPackages : public cwcl::testing::TempDirTest {
 protected:
  // A miniature of the unpacked packages: emoji.json (apple's is read),
  // emojibase's en/data.json; drawings need only be named.
  void SetUp() override {
    TempDirTest::SetUp();
    const json emoji = json::array(
        {{{"unified", "1F600"}, {"image", "1f600.png"}, {"has_img_apple", true}, {"has_img_google", true},
          {"has_img_twitter", true}},
         {{"unified", "0023-FE0F-20E3"}, {"image", "0023-fe0f-20e3.png"}, {"has_img_apple", false},
          {"has_img_google", true}, {"has_img_twitter", true}},
         {{"unified", "1F44B"}, {"image", "1f44b.png"}, {"has_img_apple", true}, {"has_img_google", true},
          {"has_img_twitter", true},
          {"skin_variations", {{"1F3FB", {{"unified", "1F44B-1F3FB"}, {"image", "1f44b-1f3fb.png"},
                                          {"has_img_apple", true}, {"has_img_google", true},
                                          {"has_img_twitter", true}}}}}}});
    const json labels = json::array(
        {{{"hexcode", "1F600"}, {"label", "grinning face"}, {"tags", {"face", "grin"}}},
         {{"hexcode", "0023-20E3"}, {"label", "keycap: #"}},  // emojibase drops the FE0F
         {{"hexcode", "1F44B"}, {"label", "waving hand"}, {"tags", {"hand", "wave"}},
          {"skins", {{{"hexcode", "1F44B-1F3FB"}, {"label", "waving hand: light skin tone"}}}}}});
    for (const char* vendor : {"apple", "google", "twitter"}) {
      fs::create_directories(dir / vendor);
      std::ofstream(dir / vendor / "emoji.json") << emoji.dump();
    }
    fs::create_directories(dir / "base/en");
    std::ofstream(dir / "base/en/data.json") << labels.dump();
    std::ofstream(path("t.txt")) << "an emoji of {}.\n{}\n";
    options.out = path("out");
    options.templates = path("t.txt");
    options.apple = path("apple");
    options.google = path("google");
    options.twitter = path("twitter");
    options.emojibase = path("base");
  }
  std::vector<json> lines(const std::string& file) {
    std::vector<json> out;
    for (const auto& l : cwcl::read_lines(path("out/" + file))) out.push_back(json::parse(l));
    return out;
  }
  cwcl::EmojiBenchmarkOptions options;
};

TEST_F(EmojiPackages, ManifestsFollowTheProtocol) {
  const auto counts = json::parse(cwcl::build_emoji_benchmark(options));
  EXPECT_EQ(counts["concepts"], json({{"train", 1}, {"devel", 1}, {"test", 1}}));
  EXPECT_EQ(counts["missing_drawings"], 1);  // Apple's keycap
  // Train: Apple and Google drawings of the train concept, captions through the templates plus the tags.
  const auto train = lines("train.jsonl");
  ASSERT_EQ(train.size(), 2u);
  EXPECT_EQ(train[0]["id"], "apple/1f600");
  EXPECT_EQ(train[0]["image"], path("apple") + "/img/apple/64/1f600.png");
  EXPECT_EQ(train[0]["texts"], json({"an emoji of grinning face.", "grinning face", "grinning face (face, grin)"}));
  EXPECT_EQ(train[0]["label"], "1F600");
  EXPECT_EQ(lines("style.jsonl").size(), 1u);  // Twitter's drawing of it
  // Devel: Twitter only; the label found without FE0F.
  const auto devel = lines("devel.jsonl");
  ASSERT_EQ(devel.size(), 1u);
  EXPECT_EQ(devel[0]["vendor"], "twitter");
  EXPECT_EQ(devel[0]["concept"], "keycap: #");
  // Unseen: every vendor's drawings of the test concept, skin tones under the base's label.
  const auto unseen = lines("unseen.jsonl");
  ASSERT_EQ(unseen.size(), 6u);
  for (const auto& l : unseen) EXPECT_EQ(l["label"], "1F44B");
  EXPECT_EQ(unseen[3]["texts"][1], "waving hand: light skin tone");
  EXPECT_EQ(unseen[3]["texts"][2], "waving hand: light skin tone (hand, wave)");  // the base's tags
  EXPECT_EQ(cwcl::read_lines(path("out/labels-test.tsv")),
            (std::vector<std::string>{"label\ttext", "1F44B\twaving hand"}));
}

TEST_F(EmojiPackages, MissingPackagesAndLabelsAreNamed) {
  options.emojibase = path("nowhere");
  try {
    cwcl::build_emoji_benchmark(options);
    FAIL() << "expected a DataError";
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("nowhere/en/data.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fetch_models.sh emoji"), std::string::npos);
  }
  options.emojibase = path("base");
  std::ofstream(dir / "base/en/data.json") << R"([{"hexcode": "1F600", "label": "grinning face"}])";
  try {
    cwcl::build_emoji_benchmark(options);
    FAIL() << "expected a DataError";
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("no label for the emoji 0023-FE0F-20E3"), std::string::npos) << e.what();
  }
}

// The real packages, when fetched (make models): the counts docs/emoji.md gives.
TEST(EmojiBenchmarkData, CountsOfTheFetchedPackages) {
  if (!fs::exists(fs::path(cwcl::model_folder("emoji-apple-16.0.0")) / "emoji.json"))
    GTEST_SKIP() << "scripts/fetch_models.sh emoji has not run";
  const auto out = (fs::temp_directory_path() / ("cwcl_emoji_counts_" + std::to_string(::getpid()))).string();
  cwcl::EmojiBenchmarkOptions o;
  o.out = out;
  const auto counts = json::parse(cwcl::build_emoji_benchmark(o));
  fs::remove_all(out);
  EXPECT_EQ(counts["concepts"], json({{"train", 1348}, {"devel", 201}, {"test", 362}}));
  EXPECT_EQ(counts["drawings"]["train.jsonl"], 5384);
  EXPECT_EQ(counts["drawings"]["unseen.jsonl"], 2135);
  EXPECT_EQ(counts["missing_drawings"], 3);
}

}  // namespace
