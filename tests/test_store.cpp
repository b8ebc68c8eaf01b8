#include <gtest/gtest.h>

#include <cwcl/io/safetensors.h>
#include <cwcl/io/store.h>
#include <cwcl/towers/text_tower.h>

#include "temp_dir.h"

#include <filesystem>
#include <fstream>

namespace {

using Store = cwcl::testing::TempDirTest;

// A stand-in tower that counts its calls and embeds a text by its length.
struct CountingTower {
  int calls = 0;
  int64_t texts = 0;
  torch::Tensor operator()(const std::vector<std::string>& batch) {
    ++calls;
    texts += static_cast<int64_t>(batch.size());
    auto out = torch::zeros({static_cast<int64_t>(batch.size()), 3});
    for (size_t i = 0; i < batch.size(); ++i) out[static_cast<int64_t>(i)][0] = static_cast<float>(batch[i].size());
    return out;
  }
};

TEST_F(Store, ComputesOnceAndNeverServesStaleVectors) {
  CountingTower tower;
  auto encode = [&](const std::vector<std::string>& b) { return tower(b); };
  const auto p = path("s.safetensors");
  auto first = cwcl::embed_with_store(p, "t", "fp1", {"a", "b", "c"}, {"x", "yy", "x"}, encode);
  EXPECT_EQ(tower.texts, 2);  // "x" twice is computed once
  EXPECT_EQ(first[0][0].item<float>(), 1.0f);
  EXPECT_EQ(first[1][0].item<float>(), 2.0f);
  auto again = cwcl::embed_with_store(p, "t", "fp1", {"a", "b"}, {"x", "yy"}, encode);
  EXPECT_EQ(tower.calls, 1);  // everything came from the store
  EXPECT_TRUE(torch::equal(again, first.narrow(0, 0, 2)));
  // A changed text or a changed model is computed afresh.
  cwcl::embed_with_store(p, "t", "fp1", {"a"}, {"x changed"}, encode);
  cwcl::embed_with_store(p, "t", "fp2", {"a"}, {"x"}, encode);
  EXPECT_EQ(tower.calls, 3);
  EXPECT_EQ(cwcl::EmbeddingStore::read(p).size(), 4);
}

TEST_F(Store, LongEncodesGoInChunksThatAreKeptAndReported) {
  // 5,000 texts: chunks of 2,048, the store written after each, progress after each.
  std::vector<std::string> texts;
  for (int i = 0; i < 5000; ++i) texts.push_back(std::string(static_cast<size_t>(1 + i % 7), 'a') + std::to_string(i));
  CountingTower tower;
  int64_t failing_after = 2;  // the third chunk fails, as a killed run would stop
  auto encode = [&](const std::vector<std::string>& b) {
    if (tower.calls == failing_after) throw std::runtime_error("stopped");
    return tower(b);
  };
  const auto p = path("s.safetensors");
  std::vector<std::pair<int64_t, int64_t>> seen;
  auto progress = [&](int64_t done, int64_t total) { seen.emplace_back(done, total); };
  EXPECT_THROW(cwcl::embed_with_store(p, "t", "fp", texts, texts, encode, progress), std::runtime_error);
  EXPECT_EQ(seen, (std::vector<std::pair<int64_t, int64_t>>{{2048, 5000}, {4096, 5000}}));
  EXPECT_EQ(cwcl::EmbeddingStore::read(p).size(), 4096);  // the finished chunks were kept
  failing_after = -1;
  seen.clear();
  const auto all = cwcl::embed_with_store(p, "t", "fp", texts, texts, encode, progress);
  EXPECT_EQ(seen, (std::vector<std::pair<int64_t, int64_t>>{{904, 904}}));  // only the rest was encoded
  EXPECT_EQ(all.size(0), 5000);
  EXPECT_EQ(all[4999][0].item<float>(), static_cast<float>(texts[4999].size()));
}

TEST_F(Store, RoundTripAndLookupById) {
  cwcl::EmbeddingStore s(torch::eye(3), {"u1", "u2", "u3"}, {"", "", ""}, "external");
  s.write(path("e.safetensors"));
  auto r = cwcl::EmbeddingStore::read(path("e.safetensors"));
  EXPECT_EQ(r.dim(), 3);
  EXPECT_EQ(r.tower(), "external");
  EXPECT_TRUE(torch::equal(r.lookup_ids({"u3", "u1"}), torch::eye(3).index_select(0, torch::tensor({2, 0}))));
  EXPECT_THROW(r.lookup_ids({"nope"}), std::runtime_error);
  EXPECT_THROW(r.append(torch::zeros({1, 4}), {"x"}, {""}), cwcl::DataError);  // dimension mismatch
}

TEST_F(Store, RejectsFilesThatAreNotStores) {
  cwcl::write_safetensors(path("plain.safetensors"), {{"embeddings", torch::zeros({2, 3})}});
  EXPECT_THROW(cwcl::EmbeddingStore::read(path("plain.safetensors")), cwcl::FormatError);
  cwcl::write_safetensors(path("short.safetensors"), {{"embeddings", torch::zeros({2, 3})}},
                          {{"format", "cwcl-embedding-store/1"}, {"ids", "[\"a\"]"}, {"keys", "[\"\", \"\"]"}});
  try {
    cwcl::EmbeddingStore::read(path("short.safetensors"));
    ADD_FAILURE();
  } catch (const cwcl::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("2 embeddings but 1 ids"), std::string::npos) << e.what();
  }
  EXPECT_NE(cwcl::fingerprint_files({path("plain.safetensors")}),
            cwcl::fingerprint_files({path("short.safetensors")}));
  EXPECT_NE(cwcl::content_key("fp", "a"), cwcl::content_key("fp", "b"));
  EXPECT_THROW(cwcl::fingerprint_files({path("missing")}), std::runtime_error);
}

}  // namespace

namespace {

TEST_F(Store, AStoreServesAsATextTowerByText) {
  cwcl::EmbeddingStore s(torch::eye(3), {"play music", "set an alarm", "what time is it"}, {"", "", ""}, "external");
  s.write(path("texts.safetensors"));
  cwcl::TextTowerOptions o;
  o.kind = cwcl::TextTowerKind::Store;
  o.model = path("texts.safetensors");
  const auto tower = cwcl::load_text_tower(o);
  EXPECT_EQ(tower.dim, 3);
  EXPECT_TRUE(torch::equal(tower.encode({"what time is it", "play music"}), torch::eye(3).index_select(0, torch::tensor({2, 0}))));
  try {
    tower.encode({"unheard of"});
    FAIL() << "a text the store lacks was embedded";
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("texts.safetensors: no embedding of a text the run needs"), std::string::npos)
        << e.what();
  }
  o.model.clear();
  EXPECT_THROW(cwcl::load_text_tower(o), cwcl::UsageError);
}

}  // namespace
