#include <cwcl/error.h>
#include <cwcl/towers/speech_encoder.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace cwcl {
namespace {
namespace nn = torch::nn;

// Sinusoidal positions (Vaswani et al. 2017) for T frames: [T, D].
torch::Tensor sinusoids(int64_t t, int64_t d) {
  auto pos = torch::arange(t, torch::kFloat).unsqueeze(1);
  auto freq = torch::exp(torch::arange(0, d, 2, torch::kFloat) * (-std::log(10000.0) / static_cast<double>(d)));
  auto pe = torch::zeros({t, d});
  pe.index_put_({torch::indexing::Slice(), torch::indexing::Slice(0, torch::indexing::None, 2)}, torch::sin(pos * freq));
  pe.index_put_({torch::indexing::Slice(), torch::indexing::Slice(1, torch::indexing::None, 2)},
                torch::cos(pos * freq).narrow(1, 0, d / 2));
  return pe;
}
}  // namespace

FramePoolingImpl::FramePoolingImpl(int64_t dim, Pooling k) : kind(k) {
  if (kind == Pooling::Attention) query = register_parameter("query", torch::randn({dim}) / std::sqrt(dim));
}

torch::Tensor FramePoolingImpl::forward(const torch::Tensor& x, const torch::Tensor& lengths) {
  TORCH_CHECK(x.dim() == 3 && lengths.dim() == 1 && lengths.size(0) == x.size(0),
              "FramePooling: x [B, T, D] and lengths [B]");
  auto padding = torch::arange(x.size(1), x.options().dtype(torch::kLong)).unsqueeze(0) >=
                 lengths.to(x.device(), torch::kLong).unsqueeze(1);  // [B, T]
  if (kind == Pooling::Mean) {
    auto real = (~padding).to(x.dtype()).unsqueeze(-1);
    return (x * real).sum(1) / real.sum(1).clamp_min(1.0);
  }
  auto scores = torch::matmul(x, query) / std::sqrt(static_cast<double>(x.size(2)));
  scores = scores.masked_fill(padding, -std::numeric_limits<float>::infinity());
  return (torch::softmax(scores, 1).unsqueeze(-1) * x).sum(1);
}

SpeechEncoderOptions SpeechEncoderOptions::preset(ScratchSize size) {
  SpeechEncoderOptions o;
  if (size == ScratchSize::Tiny) {
    o.channels = 16;
    o.d_model = 64;
    o.layers = 2;
    o.heads = 2;
    o.ff = 128;
  }
  return o;
}

SpeechEncoderImpl::SpeechEncoderImpl(SpeechEncoderOptions o) : options(o) {
  TORCH_CHECK(o.d_model % o.heads == 0, "SpeechEncoder: d_model must be a multiple of heads");
  conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(1, o.channels, 3).stride(2)));
  conv2 = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(o.channels, o.channels, 3).stride(2)));
  const int64_t freq = ((o.n_mels - 3) / 2 + 1 - 3) / 2 + 1;
  input_projection = register_module("input_projection", nn::Linear(o.channels * freq, o.d_model));
  auto layer = nn::TransformerEncoderLayerOptions(o.d_model, o.heads).dim_feedforward(o.ff).dropout(o.dropout);
  transformer = register_module("transformer", nn::TransformerEncoder(nn::TransformerEncoderOptions(layer, o.layers)));
  final_norm = register_module("final_norm", nn::LayerNorm(nn::LayerNormOptions({o.d_model})));
  pooling = register_module("pooling", FramePooling(o.d_model, o.pooling));
  head = register_module("head", nn::Linear(o.d_model, o.out_dim));
}

torch::Tensor SpeechEncoderImpl::output_lengths(const torch::Tensor& frame_lengths) {
  auto once = [](const torch::Tensor& l) { return torch::div(l - 3, 2, "floor") + 1; };
  return once(once(frame_lengths)).clamp_min(0);
}

torch::Tensor SpeechEncoderImpl::forward(const torch::Tensor& mel, const torch::Tensor& frame_lengths) {
  TORCH_CHECK(mel.dim() == 3 && mel.size(2) == options.n_mels, "SpeechEncoder: mel must be [B, T, ",
              options.n_mels, "], got ", mel.sizes());
  const auto b = mel.size(0), t = mel.size(1);
  auto lengths = frame_lengths.defined() ? frame_lengths.to(mel.device(), torch::kLong)
                                          : torch::full({b}, t, mel.options().dtype(torch::kLong));
  auto out_lengths = output_lengths(lengths);
  TORCH_CHECK(out_lengths.min().item<int64_t>() >= 1, "SpeechEncoder: an input has fewer than 7 frames");
  // Unpadded stride-2 convolutions: a kept output frame only sees real input frames.
  auto x = torch::relu(conv2(torch::relu(conv1(mel.unsqueeze(1)))));  // [B, C, T', F']
  const auto t_out = x.size(2);
  x = input_projection(x.permute({0, 2, 1, 3}).reshape({b, t_out, -1}));
  x = x + sinusoids(t_out, options.d_model).unsqueeze(0).to(x.device());
  auto padding = torch::arange(t_out, out_lengths.options()).unsqueeze(0) >= out_lengths.unsqueeze(1);  // [B, T'] true = pad
  x = transformer->forward(x.transpose(0, 1), /*src_mask=*/torch::Tensor(), /*src_key_padding_mask=*/padding)
          .transpose(0, 1);
  return head(pooling(final_norm(x), out_lengths));
}

}  // namespace cwcl
