#include <cwcl/towers/resnet.h>

namespace cwcl {
namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

}  // namespace

ResNetBlockImpl::ResNetBlockImpl(int64_t in, int64_t out, int64_t stride) {
  conv1 = register_module("conv1", conv(in, out, 3, stride));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(out));
  conv2 = register_module("conv2", conv(out, out, 3, 1));
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(out));
  // Each residual branch starts as zero, so that every block begins as the
  // identity (Goyal et al. 2017, "zero-init the last BN gamma").
  torch::NoGradGuard no_grad;
  bn2->weight.zero_();
  if (stride != 1 || in != out)
    shortcut = register_module("shortcut", torch::nn::Sequential(conv(in, out, 1, stride), torch::nn::BatchNorm2d(out)));
}

torch::Tensor ResNetBlockImpl::forward(const torch::Tensor& x) {
  auto y = bn2->forward(conv2->forward(torch::relu(bn1->forward(conv1->forward(x)))));
  return torch::relu(y + (shortcut ? shortcut->forward(x) : x));
}

ResNetImpl::ResNetImpl(ResNetOptions o) : options(o) {
  TORCH_CHECK(o.width > 0 && o.blocks > 0 && o.hidden > 0 && o.out_dim > 0, "ResNet: sizes must be positive");
  stem = torch::nn::Sequential(conv(3, o.width, 3, 2), torch::nn::BatchNorm2d(o.width), torch::nn::ReLU());
  stages = torch::nn::ModuleList();
  int64_t in = o.width;
  for (int64_t stage = 0; stage < 4; ++stage) {
    const int64_t out = o.width << stage;
    auto blocks = torch::nn::Sequential();
    for (int64_t b = 0; b < o.blocks; ++b) blocks->push_back(ResNetBlock(b == 0 ? in : out, out, b == 0 && stage > 0 ? 2 : 1));
    stages->push_back(blocks);
    in = out;
  }
  head = torch::nn::Sequential(torch::nn::Linear(in, o.hidden), torch::nn::GELU(), torch::nn::Linear(o.hidden, o.out_dim));
  register_module("stem", stem);
  register_module("stages", stages);
  register_module("head", head);
  // He initialisation of the convolutions (fan out, ReLU), as torchvision.
  torch::NoGradGuard no_grad;
  for (auto& m : modules(false))
    if (auto* c = m->as<torch::nn::Conv2d>())
      torch::nn::init::kaiming_normal_(c->weight, 0, torch::kFanOut, torch::kReLU);
}

torch::Tensor ResNetImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 3, "ResNet: expected [B, 3, H, W], got ", x.sizes());
  auto features = stem->forward(x);
  for (const auto& stage : *stages) features = stage->as<torch::nn::Sequential>()->forward(features);
  return head->forward(features.mean({2, 3}));
}

}  // namespace cwcl
