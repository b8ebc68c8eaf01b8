// Whisper's AudioEncoder (openai/whisper model.py) with CTranslate2's variable
// names (ctranslate2/specs/whisper_spec.py): fused q/k/v projection, pre-LN
// blocks, LayerNorm eps 1e-5, exact GELU.
#include <cwcl/towers/whisper.h>

#include <cmath>
#include <filesystem>
#include <limits>

namespace cwcl {
namespace {

namespace nn = torch::nn;

void copy_into(torch::Tensor& param, const Ct2Model& m, const std::string& name, const std::string& source) {
  const auto& t = m.get(name, source);
  if (t.sizes() != param.sizes()) {
    std::ostringstream os;
    os << source << ": variable '" << name << "' has shape " << t.sizes() << ", expected " << param.sizes();
    throw FormatError(os.str());
  }
  param.copy_(t.to(torch::kFloat));
}

void copy_norm(nn::LayerNorm& norm, const Ct2Model& m, const std::string& prefix, const std::string& source) {
  copy_into(norm->weight, m, prefix + "/gamma", source);
  copy_into(norm->bias, m, prefix + "/beta", source);
}

void copy_linear(nn::Linear& linear, const Ct2Model& m, const std::string& prefix, const std::string& source) {
  copy_into(linear->weight, m, prefix + "/weight", source);
  copy_into(linear->bias, m, prefix + "/bias", source);
}

}  // namespace

WhisperEncoderConfig WhisperEncoderConfig::from_ct2(const Ct2Model& m, const std::string& source) {
  if (m.spec != "WhisperSpec") throw FormatError(source + ": spec is '" + m.spec + "', not WhisperSpec");
  WhisperEncoderConfig c;
  const auto& conv1 = m.get("encoder/conv1/weight", source);
  const auto& pos = m.get("encoder/position_encodings/encodings", source);
  if (conv1.dim() != 3 || pos.dim() != 2) throw FormatError(source + ": unexpected encoder shapes");
  c.d_model = conv1.size(0);
  c.n_mels = conv1.size(1);
  c.max_positions = pos.size(0);
  c.heads = m.get("encoder/num_heads", source).to(torch::kLong).item<int64_t>();
  c.layers = 0;
  while (m.variables.count("encoder/layer_" + std::to_string(c.layers) + "/ffn/linear_0/weight")) ++c.layers;
  if (c.layers == 0 || c.heads <= 0 || c.d_model % c.heads != 0)
    throw FormatError(source + ": inconsistent encoder sizes (layers " + std::to_string(c.layers) +
                      ", heads " + std::to_string(c.heads) + ")");
  return c;
}

WhisperBlockImpl::WhisperBlockImpl(int64_t d, int64_t h) : heads(h) {
  auto norm = nn::LayerNormOptions({d}).eps(1e-5);
  attention_norm = register_module("attention_norm", nn::LayerNorm(norm));
  qkv = register_module("qkv", nn::Linear(d, 3 * d));
  attention_out = register_module("attention_out", nn::Linear(d, d));
  mlp_norm = register_module("mlp_norm", nn::LayerNorm(norm));
  mlp_in = register_module("mlp_in", nn::Linear(d, 4 * d));
  mlp_out = register_module("mlp_out", nn::Linear(4 * d, d));
}

torch::Tensor WhisperBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& key_mask_add) {
  const auto b = x.size(0), t = x.size(1), d = x.size(2), dh = d / heads;
  auto parts = qkv(attention_norm(x)).view({b, t, 3, heads, dh}).permute({2, 0, 3, 1, 4});
  auto q = parts[0], k = parts[1], v = parts[2];
  auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(dh));
  if (key_mask_add.defined()) scores = scores + key_mask_add;
  auto context = torch::matmul(torch::softmax(scores, -1), v).transpose(1, 2).reshape({b, t, d});
  auto y = x + attention_out(context);
  return y + mlp_out(torch::gelu(mlp_in(mlp_norm(y))));
}

WhisperEncoderImpl::WhisperEncoderImpl(const WhisperEncoderConfig& c) : config(c) {
  conv1 = register_module("conv1", nn::Conv1d(nn::Conv1dOptions(c.n_mels, c.d_model, 3).padding(1)));
  conv2 = register_module("conv2", nn::Conv1d(nn::Conv1dOptions(c.d_model, c.d_model, 3).stride(2).padding(1)));
  positions = register_buffer("positions", torch::zeros({c.max_positions, c.d_model}));
  blocks = register_module("blocks", nn::ModuleList());
  for (int64_t i = 0; i < c.layers; ++i) blocks->push_back(WhisperBlock(c.d_model, c.heads));
  final_norm = register_module("final_norm", nn::LayerNorm(nn::LayerNormOptions({c.d_model}).eps(1e-5)));
}

torch::Tensor WhisperEncoderImpl::output_lengths(const torch::Tensor& frame_lengths) {
  return torch::div(frame_lengths + 1, 2, "floor");
}

torch::Tensor WhisperEncoderImpl::forward(const torch::Tensor& mel, const torch::Tensor& frame_lengths) {
  TORCH_CHECK(mel.dim() == 3 && mel.size(2) == config.n_mels, "WhisperEncoder: mel must be [B, T, ",
              config.n_mels, "], got ", mel.sizes());
  const auto b = mel.size(0), t = mel.size(1);
  TORCH_CHECK(t >= 1 && (t + 1) / 2 <= config.max_positions, "WhisperEncoder: ", t,
              " frames; at most ", 2 * config.max_positions, " (30 s)");
  auto lengths = frame_lengths.defined() ? frame_lengths.to(mel.device(), torch::kLong)
                                          : torch::full({b}, t, mel.options().dtype(torch::kLong));
  TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == b, "WhisperEncoder: frame_lengths must be [B]");
  TORCH_CHECK(lengths.min().item<int64_t>() >= 1 && lengths.max().item<int64_t>() <= t,
              "WhisperEncoder: frame lengths must lie in [1, ", t, "]");
  // Zero what lies past each item's end before every convolution, so that a
  // padded batch sees the zeros the convolution pads a lone item with.
  auto frame_mask = (torch::arange(t, lengths.options()).unsqueeze(0) < lengths.unsqueeze(1)).to(mel.dtype());  // [B, T]
  auto x = mel.transpose(1, 2) * frame_mask.unsqueeze(1);                                   // [B, M, T]
  x = torch::gelu(conv1(x)) * frame_mask.unsqueeze(1);
  x = torch::gelu(conv2(x)).transpose(1, 2);  // [B, T', D]
  const auto t_out = x.size(1);
  x = x + positions.narrow(0, 0, t_out).unsqueeze(0);
  auto out_lengths = output_lengths(lengths);
  torch::Tensor key_mask;
  if (out_lengths.min().item<int64_t>() < t_out) {
    auto valid = torch::arange(t_out, out_lengths.options()).unsqueeze(0) < out_lengths.unsqueeze(1);  // [B, T']
    key_mask = torch::zeros({b, 1, 1, t_out}, x.options())
                   .masked_fill(~valid.view({b, 1, 1, t_out}), -std::numeric_limits<float>::infinity());
  }
  for (const auto& block : *blocks) x = block->as<WhisperBlock>()->forward(x, key_mask);
  return final_norm(x);
}

WhisperEncoder load_whisper_encoder(const Ct2Model& m, const std::string& source) {
  auto config = WhisperEncoderConfig::from_ct2(m, source);
  WhisperEncoder enc(config);
  torch::NoGradGuard no_grad;
  copy_into(enc->conv1->weight, m, "encoder/conv1/weight", source);
  copy_into(enc->conv1->bias, m, "encoder/conv1/bias", source);
  copy_into(enc->conv2->weight, m, "encoder/conv2/weight", source);
  copy_into(enc->conv2->bias, m, "encoder/conv2/bias", source);
  copy_into(enc->positions, m, "encoder/position_encodings/encodings", source);
  for (int64_t i = 0; i < config.layers; ++i) {
    auto block = enc->blocks[static_cast<size_t>(i)]->as<WhisperBlock>();
    const std::string p = "encoder/layer_" + std::to_string(i);
    copy_norm(block->attention_norm, m, p + "/self_attention/layer_norm", source);
    copy_linear(block->qkv, m, p + "/self_attention/linear_0", source);
    copy_linear(block->attention_out, m, p + "/self_attention/linear_1", source);
    copy_norm(block->mlp_norm, m, p + "/ffn/layer_norm", source);
    copy_linear(block->mlp_in, m, p + "/ffn/linear_0", source);
    copy_linear(block->mlp_out, m, p + "/ffn/linear_1", source);
  }
  copy_norm(enc->final_norm, m, "encoder/layer_norm", source);
  enc->eval();
  return enc;
}

WhisperEncoder load_whisper_encoder(const std::string& folder) {
  const auto path = (std::filesystem::path(folder) / "model.bin").string();
  if (!std::filesystem::exists(path)) throw FormatError(path + ": not found");
  return load_whisper_encoder(read_ct2_model(path), path);
}

std::vector<torch::optim::OptimizerParamGroup> whisper_parameter_groups(
    WhisperEncoder& encoder, const WhisperTrainingOptions& o) {
  TORCH_CHECK(o.learning_rate > 0 && o.layer_decay > 0 && o.layer_decay <= 1,
              "whisper_parameter_groups: need learning_rate > 0 and 0 < layer_decay <= 1");
  const int64_t layers = encoder->config.layers;
  TORCH_CHECK(o.mode != WhisperTraining::TopBlocks || (o.top_blocks >= 1 && o.top_blocks <= layers),
              "whisper_parameter_groups: top_blocks must lie in [1, ", layers, "], got ", o.top_blocks);
  for (auto& p : encoder->parameters()) p.set_requires_grad(false);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (o.mode == WhisperTraining::Frozen) return groups;
  auto add = [&](std::vector<torch::Tensor> params, int64_t depth_below_top) {
    for (auto& p : params) p.set_requires_grad(true);
    auto options = std::make_unique<torch::optim::AdamWOptions>(
        o.learning_rate * std::pow(o.layer_decay, static_cast<double>(depth_below_top)));
    groups.emplace_back(std::move(params), std::move(options));
  };
  add(encoder->final_norm->parameters(), 0);
  const int64_t first = o.mode == WhisperTraining::Full ? 0 : layers - o.top_blocks;
  for (int64_t i = layers - 1; i >= first; --i)
    add(encoder->blocks[static_cast<size_t>(i)]->parameters(), layers - 1 - i);
  if (o.mode == WhisperTraining::Full) {
    auto convs = encoder->conv1->parameters();
    for (auto& p : encoder->conv2->parameters()) convs.push_back(p);
    add(convs, layers);
  }
  return groups;
}

WhisperTowerImpl::WhisperTowerImpl(WhisperEncoder enc, int64_t out_dim, Pooling kind, int64_t head_hidden)
    : encoder(register_module("encoder", std::move(enc))) {
  TORCH_CHECK(out_dim > 0 && head_hidden >= 0, "WhisperTower: bad head sizes");
  const int64_t d = encoder->config.d_model;
  pooling = register_module("pooling", FramePooling(d, kind));
  head = torch::nn::Sequential();
  if (head_hidden == 0) {
    head->push_back(torch::nn::Linear(d, out_dim));
  } else {
    head->push_back(torch::nn::Linear(d, head_hidden));
    head->push_back(torch::nn::GELU());
    head->push_back(torch::nn::Linear(head_hidden, out_dim));
  }
  register_module("head", head);
}

torch::Tensor WhisperTowerImpl::pooled(const torch::Tensor& mel, const torch::Tensor& frame_lengths) {
  auto lengths = frame_lengths.defined() ? frame_lengths.to(mel.device(), torch::kLong)
                                         : torch::full({mel.size(0)}, mel.size(1), mel.options().dtype(torch::kLong));
  auto hidden = encoder->forward(mel, lengths);
  return pooling(hidden, WhisperEncoderImpl::output_lengths(lengths));
}

torch::Tensor WhisperTowerImpl::forward(const torch::Tensor& mel, const torch::Tensor& frame_lengths) {
  return head->forward(pooled(mel, frame_lengths));
}

}  // namespace cwcl
