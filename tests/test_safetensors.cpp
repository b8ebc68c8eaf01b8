#include <gtest/gtest.h>

#include <cwcl/io/safetensors.h>

#include "temp_dir.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A buffer with a hand-written header and `data_bytes` zero bytes of data.
std::vector<uint8_t> buffer_with(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> b(8 + header.size() + data_bytes, 0);
  uint64_t len = header.size();
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(len >> (8 * i));
  std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

void expect_format_error(const std::vector<uint8_t>& b, const std::string& needle) {
  try {
    cwcl::parse_safetensors(b.data(), b.size(), "buf.safetensors");
    ADD_FAILURE() << "accepted; expected an error mentioning '" << needle << "'";
  } catch (const cwcl::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("buf.safetensors"), std::string::npos) << e.what();
  }
}

using SafetensorsFile = cwcl::testing::TempDirTest;

TEST_F(SafetensorsFile, RoundTripsEveryDtypeAndMetadata) {
  torch::manual_seed(1);
  std::map<std::string, torch::Tensor> tensors{
      {"f64", torch::randn({2, 3}, torch::kDouble)},
      {"f32", torch::randn({4})},
      {"f16", torch::randn({3, 1}).to(torch::kHalf)},
      {"bf16", torch::randn({5}).to(torch::kBFloat16)},
      {"i64", torch::arange(6, torch::kLong).reshape({2, 3})},
      {"i32", torch::arange(3, torch::kInt)},
      {"i16", torch::arange(2, torch::kShort)},
      {"i8", torch::tensor({-3, 4}, torch::kChar)},
      {"u8", torch::tensor({250, 7}, torch::kByte)},
      {"bool", torch::tensor({true, false, true})},
      {"scalar", torch::tensor(2.5)},
      {"empty", torch::zeros({0, 4})},
      {"strided", torch::randn({4, 4}).t()}};
  const auto p = path("all.safetensors");
  cwcl::write_safetensors(p, tensors, {{"ids", "a,b"}, {"model", "x"}});
  EXPECT_TRUE(leftover_temporaries().empty());
  auto back = cwcl::read_safetensors(p);
  EXPECT_EQ(back.metadata.at("ids"), "a,b");
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    const auto& r = back.tensors.at(name);
    EXPECT_EQ(r.scalar_type(), t.scalar_type());
    EXPECT_EQ(r.sizes(), t.sizes());
    EXPECT_TRUE(torch::equal(r, t.contiguous()));
  }
}

TEST_F(SafetensorsFile, EveryTruncationIsRejected) {
  const auto p = path("t.safetensors");
  cwcl::write_safetensors(p, {{"a", torch::randn({3, 2})}, {"b", torch::arange(4)}});
  auto bytes = file_bytes(p);
  for (size_t len = 0; len < bytes.size(); ++len) {
    SCOPED_TRACE(len);
    EXPECT_THROW(cwcl::parse_safetensors(bytes.data(), len, p), cwcl::FormatError);
  }
  const auto whole = cwcl::parse_safetensors(bytes.data(), bytes.size(), p);
  EXPECT_EQ(whole.tensors.size(), 2u);
}

TEST(Safetensors, MalformedHeadersGetClearErrors) {
  expect_format_error({1, 2, 3}, "shorter than the 8-byte");
  auto huge = buffer_with("{}", 0);
  huge[7] = 0x7f;
  expect_format_error(huge, "too large");
  auto past = buffer_with("{}", 0);
  past[0] = 200;
  expect_format_error(past, "runs past the end");
  expect_format_error(buffer_with("{not json", 0), "not JSON");
  expect_format_error(buffer_with("[1, 2]", 0), "not a JSON object");
  expect_format_error(buffer_with(R"({"a": {"shape": [1], "data_offsets": [0, 4]}})", 4), "no dtype");
  expect_format_error(buffer_with(R"({"a": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}})", 16),
                      "unknown dtype 'F128'");
  expect_format_error(buffer_with(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4),
                      "natural number");
  expect_format_error(buffer_with(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", 4),
                      "holds 4 bytes");
  expect_format_error(buffer_with(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4),
                      "outside the 4-byte data section");
  expect_format_error(buffer_with(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", 4),
                      "outside");
  expect_format_error(
      buffer_with(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                  R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                  12),
      "overlap");
  expect_format_error(
      buffer_with(R"({"a": {"dtype": "U8", "shape": [4294967296, 4294967296, 4294967296],)"
                  R"( "data_offsets": [0, 0]}})",
                  0),
      "overflows");
  expect_format_error(buffer_with(R"({"__metadata__": {"k": 3}})", 0), "__metadata__.k");
  expect_format_error(buffer_with(R"({"a": {"dtype": "F32", "shape": [1]}})", 4), "data_offsets");
}

// Deterministic mutation fuzzing in the regular suite (the libFuzzer target in
// tests/fuzz runs the same parser for minutes): every mutated buffer either
// parses or raises FormatError, and parsed tensors stay inside the buffer.
TEST_F(SafetensorsFile, MutatedBuffersNeverCrash) {
  const auto p = path("m.safetensors");
  cwcl::write_safetensors(p, {{"w", torch::randn({4, 3})}, {"ids", torch::arange(5)}},
                          {{"k", "v"}});
  const auto base = file_bytes(p);
  std::mt19937 rng(7);
  int parsed = 0, rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    auto b = base;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      size_t at = rng() % b.size();
      switch (rng() % 3) {
        case 0: b[at] = static_cast<uint8_t>(rng()); break;
        case 1: b.erase(b.begin() + static_cast<long>(at)); break;
        default: b.insert(b.begin() + static_cast<long>(at), static_cast<uint8_t>(rng())); break;
      }
      if (b.empty()) b.push_back(0);
    }
    try {
      cwcl::parse_safetensors(b.data(), b.size(), "mutant");
      ++parsed;
    } catch (const cwcl::FormatError&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 1000);
  EXPECT_GT(parsed, 10);
}

TEST(Safetensors, MissingFileNamesThePath) {
  try {
    cwcl::read_safetensors("/nonexistent/model.safetensors");
    ADD_FAILURE();
  } catch (const cwcl::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.safetensors"), std::string::npos);
  }
}

}  // namespace
