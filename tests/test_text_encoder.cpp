// The WordPiece tokenizer and the BERT sentence encoder, on tiny fixtures
// and against Hugging Face transformers' outputs for all-MiniLM-L6-v2.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cwcl/runtime.h>
#include <cwcl/io/safetensors.h>
#include <cwcl/towers/text_encoder.h>

#include "temp_dir.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace {

namespace fs = std::filesystem;
using cwcl::WordPieceOptions;
using cwcl::WordPieceTokenizer;

std::vector<std::string> tiny_vocab() {
  return {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "play", "##ing",
          "cafe", ",", "!", "北", "京", "a", "##b", "x"};
}

TEST(WordPiece, BasicTokenisationSplitsLikeBert) {
  WordPieceTokenizer tok(tiny_vocab(), WordPieceOptions{});
  using V = std::vector<std::string>;
  EXPECT_EQ(tok.tokenize("unaffable"), (V{"un", "##aff", "##able"}));
  EXPECT_EQ(tok.tokenize("  PLAYING,playing!"), (V{"play", "##ing", ",", "play", "##ing", "!"}));
  EXPECT_EQ(tok.tokenize("Café"), (V{"cafe"}));             // lower case, accents stripped
  EXPECT_EQ(tok.tokenize("北京"), (V{"北", "京"}));          // CJK split into characters
  EXPECT_EQ(tok.tokenize("ab abx q"), (V{"a", "##b", "[UNK]", "[UNK]"}));  // greedy; no match: [UNK]
  EXPECT_EQ(tok.tokenize("x\u0007\u200b\tx"), (V{"x", "x"}));  // control and format chars dropped
  EXPECT_EQ(tok.tokenize(std::string(101, 'a')), (V{"[UNK]"}));  // longer than 100 chars
  EXPECT_EQ(tok.tokenize("bad \xff utf8"), (V{"[UNK]", "[UNK]"}));  // invalid byte dropped
  EXPECT_TRUE(tok.tokenize("").empty());
}

TEST(WordPiece, EncodeAddsSpecialTokensAndTruncates) {
  WordPieceOptions o;
  o.max_length = 4;
  WordPieceTokenizer tok(tiny_vocab(), o);
  EXPECT_EQ(tok.encode(""), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(tok.encode("unaffable play"), (std::vector<int64_t>{2, 4, 5, 3}));
  WordPieceOptions cased;
  cased.lower_case = cased.strip_accents = false;
  EXPECT_EQ(WordPieceTokenizer(tiny_vocab(), cased).tokenize("Play"), (std::vector<std::string>{"[UNK]"}));
}

TEST(WordPiece, VocabularyWithoutSpecialTokensIsRejected) {
  try {
    WordPieceTokenizer({"[PAD]", "[UNK]", "[SEP]", "a"}, WordPieceOptions{}, "my/vocab.txt");
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("my/vocab.txt: vocabulary has no [CLS]"), std::string::npos)
        << e.what();
  }
}

class ModelFolder : public cwcl::testing::TempDirTest {
 protected:
  void write(const std::string& name, const std::string& text) { std::ofstream(dir / name) << text; }
};

TEST_F(ModelFolder, ConfigErrorsNameFileAndKey) {
  write("config.json", R"({"model_type": "gpt2"})");
  try {
    cwcl::BertConfig::from_json_file((dir / "config.json").string());
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json: 'model_type' is 'gpt2'"), std::string::npos)
        << e.what();
  }
  write("config.json", R"({"model_type": "bert", "hidden_size": 10, "num_attention_heads": 3})");
  EXPECT_THROW(cwcl::BertConfig::from_json_file((dir / "config.json").string()), std::runtime_error);
  write("config.json", R"({"model_type": "bert", "hidden_size": -4})");
  EXPECT_THROW(cwcl::BertConfig::from_json_file((dir / "config.json").string()), std::runtime_error);
  EXPECT_THROW(cwcl::SentenceEncoder::from_folder((dir / "missing").string()), std::runtime_error);
  EXPECT_THROW(cwcl::SentenceEncoder::from_folder(dir.string()), std::runtime_error);  // no weights
}

cwcl::BertConfig tiny_config() {
  cwcl::BertConfig c;
  c.vocab_size = 17;
  c.hidden_size = 8;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.intermediate_size = 16;
  c.max_position_embeddings = 32;
  return c;
}

TEST(BertWeights, MissingOrMisshapenTensorsAreNamed) {
  torch::manual_seed(0);
  cwcl::BertModel model(tiny_config());
  std::map<std::string, torch::Tensor> tensors;
  try {
    cwcl::load_bert_weights(model, tensors, "w.safetensors");
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("w.safetensors: missing tensor 'embeddings."), std::string::npos)
        << e.what();
  }
  // A complete checkpoint under Hugging Face names loads; a wrong shape is named.
  cwcl::BertModel source(tiny_config());
  const std::vector<std::pair<std::string, std::string>> names{
      {"word_embeddings.weight", "bert.embeddings.word_embeddings.weight"},
      {"position_embeddings.weight", "embeddings.position_embeddings.weight"},
      {"token_type_embeddings.weight", "embeddings.token_type_embeddings.weight"},
      {"embedding_norm.weight", "embeddings.LayerNorm.gamma"},
      {"embedding_norm.bias", "embeddings.LayerNorm.beta"}};
  for (auto& item : source->named_parameters()) {
    std::string hf;
    for (const auto& [ours, theirs] : names)
      if (item.key() == ours) hf = theirs;
    if (hf.empty()) {
      auto k = item.key();  // layers.I.part.kind
      auto i = k.substr(7, k.find('.', 7) - 7);
      auto rest = k.substr(k.find('.', 7) + 1);
      auto part = rest.substr(0, rest.find('.')), kind = rest.substr(rest.find('.') + 1);
      std::map<std::string, std::string> where{{"query", "attention.self.query"},
                                               {"key", "attention.self.key"},
                                               {"value", "attention.self.value"},
                                               {"attention_output", "attention.output.dense"},
                                               {"attention_norm", "attention.output.LayerNorm"},
                                               {"intermediate", "intermediate.dense"},
                                               {"output", "output.dense"},
                                               {"output_norm", "output.LayerNorm"}};
      hf = "encoder.layer." + i + "." + where.at(part) + "." + kind;
    }
    tensors[hf] = item.value().detach().clone();
  }
  cwcl::load_bert_weights(model, tensors, "w.safetensors");
  for (auto& item : model->named_parameters())
    EXPECT_TRUE(torch::equal(item.value(), source->named_parameters()[item.key()])) << item.key();
  tensors["encoder.layer.1.output.dense.weight"] = torch::zeros({3, 3});
  try {
    cwcl::load_bert_weights(model, tensors, "w.safetensors");
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'encoder.layer.1.output.dense.weight' has shape [3, 3]"),
              std::string::npos)
        << e.what();
  }
}

TEST(SentenceEncoder, PaddingNeverChangesAnEmbedding) {
  torch::manual_seed(1);
  cwcl::BertModel model(tiny_config());
  model->eval();
  WordPieceTokenizer tok(tiny_vocab(), WordPieceOptions{});
  cwcl::SentenceEncoderOptions one, batched;
  one.batch_size = 1;
  batched.batch_size = 8;
  cwcl::SentenceEncoder alone(tok, model, one), together(tok, model, batched);
  std::vector<std::string> texts{"a", "unaffable playing cafe , ! a ab", "", "北京 play"};
  auto a = alone.encode(texts), b = together.encode(texts);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-5);
  EXPECT_NEAR(a.norm(2, 1).min().item<double>(), 1.0, 1e-5);
}

std::string model_dir() { return cwcl::model_folder("all-MiniLM-L6-v2"); }

TEST(MiniLM, MatchesTransformersTokensAndEmbeddings) {
  const auto dir = model_dir();
  ASSERT_TRUE(fs::exists(dir + "/model.safetensors"))
      << dir << " is missing: run scripts/fetch_models.sh minilm (make test does)";
  std::ifstream in(CWCL_TEST_DATA_DIR "/golden/minilm_golden.json");
  ASSERT_TRUE(in.good());
  auto golden = nlohmann::json::parse(in);
  auto encoder = cwcl::SentenceEncoder::from_folder(dir);
  EXPECT_EQ(encoder.dim(), 384);
  const auto sentences = golden.at("sentences").get<std::vector<std::string>>();
  ASSERT_GE(sentences.size(), 50u);
  std::vector<std::vector<int64_t>> ids;
  for (size_t i = 0; i < sentences.size(); ++i) {
    ids.push_back(encoder.tokenizer().encode(sentences[i]));
    EXPECT_EQ(ids.back(), golden.at("ids")[i].get<std::vector<int64_t>>()) << "sentence " << i << ": "
                                                                           << sentences[i];
  }
  auto got = encoder.encode(sentences);
  for (size_t i = 0; i < sentences.size(); ++i) {
    auto want = torch::tensor(golden.at("embeddings")[i].get<std::vector<float>>());
    double cos = torch::dot(got[static_cast<int64_t>(i)], want).item<double>() /
                 (got[static_cast<int64_t>(i)].norm().item<double>() * want.norm().item<double>());
    EXPECT_GE(cos, 0.9999) << "sentence " << i << ": " << sentences[i];
  }
}

}  // namespace
