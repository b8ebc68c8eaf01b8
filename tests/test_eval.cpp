#include <gtest/gtest.h>

#include <cwcl/error.h>
#include <cwcl/eval/eval.h>

#include <cmath>
#include <fstream>

#include "temp_dir.h"

namespace {

using LabelFile = cwcl::testing::TempDirTest;

void expect_invalid(const std::string& path, const std::string& needle) {
  try {
    cwcl::LabelSet::read_tsv(path);
    ADD_FAILURE() << "accepted " << path;
  } catch (const cwcl::DataError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST_F(LabelFile, ReadsAndRejectsBadLines) {
  std::ofstream(path("ok.tsv")) << "intent\tlabel\nalarm_set\tset an alarm\nplay_music\tplay music\n";
  auto labels = cwcl::LabelSet::read_tsv(path("ok.tsv"));
  EXPECT_EQ(labels.names, (std::vector<std::string>{"alarm_set", "play_music"}));
  EXPECT_EQ(labels.index_of("play_music"), 1);
  EXPECT_EQ(labels.subset({"play_music"}, "x").texts, (std::vector<std::string>{"play music"}));
  EXPECT_THROW(labels.subset({"news_query"}, "x"), cwcl::DataError);

  std::ofstream(path("dup.tsv")) << "intent\tlabel\na\tone\na\ttwo\n";
  expect_invalid(path("dup.tsv"), "dup.tsv:3: duplicate class 'a'");
  std::ofstream(path("duptext.tsv")) << "intent\tlabel\na\tsame\nb\tsame\n";
  expect_invalid(path("duptext.tsv"), "duptext.tsv:3: label text 'same' is used twice");
  std::ofstream(path("empty.tsv")) << "intent\tlabel\na\tone\n\nb\ttwo\n";
  expect_invalid(path("empty.tsv"), "empty.tsv:3: empty line");
  std::ofstream(path("cols.tsv")) << "intent\tlabel\na one\n";
  expect_invalid(path("cols.tsv"), "cols.tsv:2: expected two tab-separated columns");
  expect_invalid(path("missing.tsv"), "missing.tsv: cannot open");
}

// Percentile bootstrap: the interval holds the accuracy, its width follows
// the binomial standard error, it is reproducible by seed, and a paired
// difference of a model with itself is exactly zero.
TEST(Bootstrap, IntervalsOfAccuracyAndPairedDifference) {
  std::vector<bool> half(1000);
  for (size_t i = 0; i < half.size(); ++i) half[i] = i % 2 == 0;
  const auto ci = cwcl::bootstrap_accuracy(half, 2000, 7);
  EXPECT_LT(ci.low, 0.5);
  EXPECT_GT(ci.high, 0.5);
  // 95 %: about +-1.96 sqrt(0.25 / 1000) = +-0.031.
  EXPECT_NEAR(ci.high - ci.low, 2 * 1.96 * std::sqrt(0.25 / 1000), 0.008);
  const auto again = cwcl::bootstrap_accuracy(half, 2000, 7);
  EXPECT_EQ(ci.low, again.low);
  EXPECT_EQ(ci.high, again.high);
  const auto same = cwcl::bootstrap_difference(half, half);
  EXPECT_EQ(same.low, 0.0);
  EXPECT_EQ(same.high, 0.0);
  // b right wherever a is, plus 50 more items: a - b lies below zero, around -0.05.
  auto better = half;
  for (size_t i = 1, added = 0; added < 50; i += 2, ++added) better[i] = true;
  const auto d = cwcl::bootstrap_difference(half, better);
  EXPECT_LT(d.high, 0.0);
  EXPECT_LT(d.low, -0.05);
  EXPECT_GT(d.high, -0.05);
  EXPECT_THROW(cwcl::bootstrap_difference(half, {true, false}), c10::Error);
}

TEST(ZeroShot, CountsTopKAndConfusion) {
  // Three classes along the axes; inputs near them (the last one is wrong).
  auto classes = torch::eye(3);
  auto inputs = torch::tensor({{1.0f, 0.1f, 0.0f}, {0.0f, 2.0f, 0.5f}, {0.9f, 0.0f, 0.3f}});
  auto targets = torch::tensor({0, 1, 2}, torch::kLong);
  auto r = cwcl::zero_shot_classify(inputs, classes, targets, 2);
  EXPECT_EQ(r.n, 3);
  EXPECT_DOUBLE_EQ(r.top1, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(r.top5, 1.0);  // the wrong one has its class second
  EXPECT_EQ(r.predictions, (std::vector<int64_t>{0, 1, 0}));
  EXPECT_EQ(r.confusion[2][0].item<int64_t>(), 1);
  EXPECT_DOUBLE_EQ(r.per_class_accuracy[2], 0.0);
  auto r1 = cwcl::zero_shot_classify(inputs, classes, torch::tensor({0, 0, 0}, torch::kLong));
  EXPECT_TRUE(std::isnan(r1.per_class_accuracy[1]));
  EXPECT_THROW(cwcl::zero_shot_classify(inputs, classes, torch::tensor({0, 5, 0}, torch::kLong)), c10::Error);
}

}  // namespace
