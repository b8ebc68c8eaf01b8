#include <cwcl/towers/image_encoder.h>

namespace cwcl {

ImageEncoderImpl::ImageEncoderImpl(ImageEncoderOptions o) : options(o) {
  TORCH_CHECK(o.width > 0 && o.hidden > 0 && o.out_dim > 0, "ImageEncoder: sizes must be positive");
  features = torch::nn::Sequential();
  auto block = [&](int64_t in, int64_t out, bool pool) {
    features->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1).bias(false)));
    features->push_back(torch::nn::BatchNorm2d(out));
    features->push_back(torch::nn::ReLU());
    if (pool) features->push_back(torch::nn::MaxPool2d(2));
  };
  block(1, o.width, false);
  block(o.width, 2 * o.width, true);       // 14 x 14
  block(2 * o.width, 4 * o.width, true);   // 7 x 7
  block(4 * o.width, 4 * o.width, false);
  features->push_back(torch::nn::AdaptiveAvgPool2d(1));
  features->push_back(torch::nn::Flatten());
  head = torch::nn::Sequential(torch::nn::Linear(4 * o.width, o.hidden), torch::nn::GELU(),
                               torch::nn::Linear(o.hidden, o.out_dim));
  register_module("features", features);
  register_module("head", head);
}

torch::Tensor ImageEncoderImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 1, "ImageEncoder: expected [B, 1, H, W], got ", x.sizes());
  return head->forward(features->forward(x));
}

}  // namespace cwcl
