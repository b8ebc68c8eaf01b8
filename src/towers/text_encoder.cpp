// BERT (Devlin et al. 2019) as Hugging Face's BertModel computes it (post-LN
// layers, exact GELU, additive attention mask), with sentence-transformers'
// mean pooling over real tokens and L2 normalisation.
#include <cwcl/error.h>
#include <cwcl/towers/text_encoder.h>

#include <cwcl/io/safetensors.h>
#include <cwcl/io/store.h>
#include <cwcl/threads.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <regex>

namespace cwcl {
namespace {

namespace fs = std::filesystem;
namespace nn = torch::nn;

// Checkpoint name of one of our parameters (Hugging Face's BertModel layout).
std::string checkpoint_name(const std::string& ours) {
  static const std::regex layer(R"(layers\.(\d+)\.(\w+)\.(weight|bias))");
  std::smatch m;
  if (std::regex_match(ours, m, layer)) {
    const std::string prefix = "encoder.layer." + m[1].str() + ".";
    const std::string part = m[2].str(), kind = m[3].str();
    if (part == "query" || part == "key" || part == "value")
      return prefix + "attention.self." + part + "." + kind;
    if (part == "attention_output") return prefix + "attention.output.dense." + kind;
    if (part == "attention_norm") return prefix + "attention.output.LayerNorm." + kind;
    if (part == "intermediate") return prefix + "intermediate.dense." + kind;
    if (part == "output") return prefix + "output.dense." + kind;
    if (part == "output_norm") return prefix + "output.LayerNorm." + kind;
  }
  if (ours.rfind("embedding_norm.", 0) == 0) return "embeddings.LayerNorm." + ours.substr(15);
  return "embeddings." + ours;  // word_, position_, token_type_embeddings.weight
}

const torch::Tensor* find_tensor(const std::map<std::string, torch::Tensor>& tensors,
                                 const std::string& name) {
  // Checkpoints saved from BertFor* models prefix "bert."; old ones name
  // LayerNorm parameters gamma and beta.
  std::vector<std::string> candidates{name, "bert." + name};
  for (const auto& [from, to] : {std::pair<std::string, std::string>{"LayerNorm.weight", "LayerNorm.gamma"},
                                 {"LayerNorm.bias", "LayerNorm.beta"}}) {
    auto at = name.rfind(from);
    if (at != std::string::npos && at + from.size() == name.size()) {
      auto alt = name.substr(0, at) + to;
      candidates.push_back(alt);
      candidates.push_back("bert." + alt);
    }
  }
  for (const auto& c : candidates) {
    auto it = tensors.find(c);
    if (it != tensors.end()) return &it->second;
  }
  return nullptr;
}

int64_t positive(const nlohmann::json& j, const char* key, const std::string& path,
                 int64_t fallback) {
  if (!j.contains(key)) return fallback;
  if (!j[key].is_number_integer() || j[key].get<int64_t>() <= 0)
    throw DataError(path + ": '" + key + "' must be a positive integer");
  return j[key].get<int64_t>();
}

}  // namespace

BertConfig BertConfig::from_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw DataError(path + ": cannot open");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw DataError(path + ": not valid JSON: " + e.what());
  }
  const std::string type = j.value("model_type", "");
  if (type != "bert")
    throw DataError(path + ": 'model_type' is '" + type +
                             "'; only BERT-family checkpoints (model_type \"bert\") load here");
  const std::string act = j.value("hidden_act", "gelu");
  if (act != "gelu")
    throw DataError(path + ": 'hidden_act' '" + act + "' is not supported (only gelu)");
  const std::string pos = j.value("position_embedding_type", "absolute");
  if (pos != "absolute")
    throw DataError(path + ": 'position_embedding_type' '" + pos + "' is not supported");
  BertConfig c;
  c.vocab_size = positive(j, "vocab_size", path, c.vocab_size);
  c.hidden_size = positive(j, "hidden_size", path, c.hidden_size);
  c.num_hidden_layers = positive(j, "num_hidden_layers", path, c.num_hidden_layers);
  c.num_attention_heads = positive(j, "num_attention_heads", path, c.num_attention_heads);
  c.intermediate_size = positive(j, "intermediate_size", path, c.intermediate_size);
  c.max_position_embeddings = positive(j, "max_position_embeddings", path, c.max_position_embeddings);
  c.type_vocab_size = positive(j, "type_vocab_size", path, c.type_vocab_size);
  c.layer_norm_eps = j.value("layer_norm_eps", c.layer_norm_eps);
  if (c.hidden_size % c.num_attention_heads != 0)
    throw DataError(path + ": 'hidden_size' " + std::to_string(c.hidden_size) +
                             " is not a multiple of 'num_attention_heads' " +
                             std::to_string(c.num_attention_heads));
  return c;
}

BertLayerImpl::BertLayerImpl(const BertConfig& c) : heads(c.num_attention_heads) {
  const auto h = c.hidden_size;
  auto norm = nn::LayerNormOptions({h}).eps(c.layer_norm_eps);
  query = register_module("query", nn::Linear(h, h));
  key = register_module("key", nn::Linear(h, h));
  value = register_module("value", nn::Linear(h, h));
  attention_output = register_module("attention_output", nn::Linear(h, h));
  attention_norm = register_module("attention_norm", nn::LayerNorm(norm));
  intermediate = register_module("intermediate", nn::Linear(h, c.intermediate_size));
  output = register_module("output", nn::Linear(c.intermediate_size, h));
  output_norm = register_module("output_norm", nn::LayerNorm(norm));
}

torch::Tensor BertLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& additive_mask) {
  const auto b = x.size(0), t = x.size(1), h = x.size(2), d = h / heads;
  auto split = [&](const torch::Tensor& y) { return y.view({b, t, heads, d}).transpose(1, 2); };
  auto q = split(query(x)), k = split(key(x)), v = split(value(x));
  auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(d));
  auto context = torch::matmul(torch::softmax(scores + additive_mask, -1), v);
  context = context.transpose(1, 2).reshape({b, t, h});
  auto y = attention_norm(attention_output(context) + x);
  return output_norm(output(torch::gelu(intermediate(y))) + y);
}

BertModelImpl::BertModelImpl(const BertConfig& c) : config(c) {
  word_embeddings = register_module("word_embeddings", nn::Embedding(c.vocab_size, c.hidden_size));
  position_embeddings =
      register_module("position_embeddings", nn::Embedding(c.max_position_embeddings, c.hidden_size));
  token_type_embeddings =
      register_module("token_type_embeddings", nn::Embedding(c.type_vocab_size, c.hidden_size));
  embedding_norm = register_module(
      "embedding_norm", nn::LayerNorm(nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  layers = register_module("layers", nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(BertLayer(c));
}

torch::Tensor BertModelImpl::forward(const torch::Tensor& input_ids,
                                     const torch::Tensor& attention_mask) {
  TORCH_CHECK(input_ids.dim() == 2, "BertModel: input_ids must be [B, T], got ", input_ids.sizes());
  TORCH_CHECK(attention_mask.sizes() == input_ids.sizes(), "BertModel: attention_mask ",
              attention_mask.sizes(), " does not match input_ids ", input_ids.sizes());
  const auto t = input_ids.size(1);
  TORCH_CHECK(t <= config.max_position_embeddings, "BertModel: sequence of ", t,
              " tokens is longer than max_position_embeddings ", config.max_position_embeddings);
  auto positions = torch::arange(t, input_ids.options());
  auto x = word_embeddings(input_ids) + position_embeddings(positions).unsqueeze(0) +
           token_type_embeddings(torch::zeros_like(input_ids));
  x = embedding_norm(x);
  // Padding gets the most negative float added to its attention scores.
  auto additive = (1.0 - attention_mask.to(x.dtype())).mul(std::numeric_limits<float>::lowest());
  additive = additive.view({input_ids.size(0), 1, 1, t});
  for (const auto& layer : *layers) x = layer->as<BertLayer>()->forward(x, additive);
  return x;
}

void load_bert_weights(BertModel& model, const std::map<std::string, torch::Tensor>& tensors,
                       const std::string& source) {
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    auto& param = item.value();
    const auto wanted = checkpoint_name(item.key());
    const torch::Tensor* t = find_tensor(tensors, wanted);
    if (!t) throw DataError(source + ": missing tensor '" + wanted + "'");
    if (t->sizes() != param.sizes()) {
      std::ostringstream os;
      os << source << ": tensor '" << wanted << "' has shape " << t->sizes() << ", config.json implies "
         << param.sizes();
      throw DataError(os.str());
    }
    param.copy_(t->to(param.dtype()));
  }
}

SentenceEncoder SentenceEncoder::from_folder(const std::string& folder, SentenceEncoderOptions options) {
  const fs::path dir(folder);
  if (!fs::is_directory(dir)) throw DataError(folder + ": model folder not found");
  const auto config_path = (dir / "config.json").string();
  const auto weights_path = (dir / "model.safetensors").string();
  if (!fs::exists(weights_path)) throw DataError(weights_path + ": not found");
  auto config = BertConfig::from_json_file(config_path);
  auto tokenizer = WordPieceTokenizer::from_folder(folder);
  if (tokenizer.vocab_size() != config.vocab_size)
    throw DataError(folder + ": the vocabulary has " + std::to_string(tokenizer.vocab_size()) +
                             " tokens but config.json says vocab_size " +
                             std::to_string(config.vocab_size));
  BertModel model(config);
  load_bert_weights(model, read_safetensors(weights_path).tensors, weights_path);
  model->eval();
  SentenceEncoder encoder(std::move(tokenizer), std::move(model), options);
  std::vector<std::string> files;
  for (const char* name : {"config.json", "model.safetensors", "vocab.txt", "tokenizer.json",
                           "tokenizer_config.json", "sentence_bert_config.json", "modules.json"})
    if (fs::exists(dir / name)) files.push_back((dir / name).string());
  encoder.fingerprint_ = fingerprint_files(files);
  return encoder;
}

SentenceEncoder::SentenceEncoder(WordPieceTokenizer tokenizer, BertModel model,
                                 SentenceEncoderOptions options)
    : tokenizer_(std::move(tokenizer)), model_(std::move(model)), options_(options) {
  TORCH_CHECK(options_.batch_size >= 1, "SentenceEncoder: batch_size must be >= 1");
}

torch::Tensor SentenceEncoder::encode(const std::vector<std::string>& texts) const {
  std::vector<std::vector<int64_t>> ids;
  ids.reserve(texts.size());
  for (const auto& t : texts) ids.push_back(tokenizer_.encode(t));
  return encode_ids(ids);
}

torch::Tensor SentenceEncoder::encode_ids(const std::vector<std::vector<int64_t>>& ids) const {
  torch::NoGradGuard no_grad;
  ThreadCountScope serial(1);  // elementwise work on one thread (cwcl/threads.h)
  const int64_t n = static_cast<int64_t>(ids.size());
  auto out = torch::empty({n, dim()});
  // Longest first, so that each batch pads to a length close to its own.
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return ids[a].size() > ids[b].size(); });
  for (int64_t start = 0; start < n; start += options_.batch_size) {
    const int64_t count = std::min(options_.batch_size, n - start);
    const int64_t len = static_cast<int64_t>(ids[order[start]].size());
    std::vector<int64_t> input_buf(static_cast<size_t>(count * len), tokenizer_.pad_id());
    std::vector<int64_t> mask_buf(static_cast<size_t>(count * len), 0);
    for (int64_t r = 0; r < count; ++r) {
      const auto& row = ids[order[start + r]];
      TORCH_CHECK(!row.empty(), "SentenceEncoder: an input has no tokens");
      for (size_t c = 0; c < row.size(); ++c) {
        TORCH_CHECK(row[c] >= 0 && row[c] < model_->config.vocab_size, "SentenceEncoder: token id ",
                    row[c], " outside the vocabulary");
        input_buf[static_cast<size_t>(r * len) + c] = row[c];
        mask_buf[static_cast<size_t>(r * len) + c] = 1;
      }
    }
    auto input = torch::from_blob(input_buf.data(), {count, len}, torch::kLong);
    auto mask = torch::from_blob(mask_buf.data(), {count, len}, torch::kLong);
    auto hidden = model_->forward(input, mask);
    auto m = mask.unsqueeze(-1).to(hidden.dtype());
    auto pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9);
    if (options_.normalize)
      pooled = torch::nn::functional::normalize(pooled, torch::nn::functional::NormalizeFuncOptions().dim(1));
    auto index = torch::tensor(std::vector<int64_t>(order.begin() + start, order.begin() + start + count));
    out.index_copy_(0, index, pooled);
  }
  return out;
}

}  // namespace cwcl
