#include <cwcl/device.h>
#include <cwcl/error.h>

#include "torch_compat.h"

#include <torch/cuda.h>

namespace cwcl {

DeviceSpec DeviceSpec::parse(const std::string& text) {
  if (text == "auto") return {DeviceKind::Auto, -1};
  if (text == "cpu") return {DeviceKind::Cpu, -1};
  if (text == "cuda") return {DeviceKind::Cuda, -1};
  const std::string prefix = "cuda:";
  if (text.rfind(prefix, 0) == 0 && text.size() > prefix.size() &&
      text.find_first_not_of("0123456789", prefix.size()) == std::string::npos && text.size() - prefix.size() < 6)
    return {DeviceKind::Cuda, std::stoll(text.substr(prefix.size()))};
  throw UsageError("unknown device '" + text + "' (accepted: auto, cpu, cuda, cuda:<index>)");
}

std::string DeviceSpec::str() const {
  switch (kind) {
    case DeviceKind::Auto: return "auto";
    case DeviceKind::Cpu: return "cpu";
    case DeviceKind::Cuda: return index < 0 ? "cuda" : "cuda:" + std::to_string(index);
  }
  return "?";
}

bool cuda_built() { return CWCL_CUDA_BUILD != 0; }

int64_t cuda_device_count() { return torch::cuda::is_available() ? static_cast<int64_t>(torch::cuda::device_count()) : 0; }

torch::Device resolve_device(const DeviceSpec& spec, const std::string& what) {
  const int64_t count = cuda_device_count();
  switch (spec.kind) {
    case DeviceKind::Cpu: return torch::kCPU;
    case DeviceKind::Auto: return count > 0 ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
    case DeviceKind::Cuda: break;
  }
  if (count == 0)
    throw ConfigError(what + " = " + spec.str() + ": " +
                      (cuda_built() ? std::string("this machine has no usable CUDA device (check nvidia-smi and "
                                                  "CUDA_VISIBLE_DEVICES)")
                                    : "this cwcl was built against a libtorch without CUDA (" TORCH_VERSION
                                      "); docs/gpu.md builds it with CUDA"));
  if (spec.index >= count)
    throw ConfigError(what + " = " + spec.str() + ": this machine has " + std::to_string(count) +
                      " CUDA device(s), numbered from 0");
  return {torch::kCUDA, static_cast<c10::DeviceIndex>(std::max<int64_t>(spec.index, 0))};
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

torch::Device device_of(torch::nn::Module& module) {
  for (const auto& p : module.parameters()) return p.device();
  for (const auto& b : module.buffers()) return b.device();
  return torch::kCPU;
}

void move_optimizer_state(torch::optim::Optimizer& optimizer, const torch::Device& device) {
  // Every entry: the key's type differs between libtorch 1.13 and 2.x.
  for (auto& entry : optimizer.state()) {
    auto* adamw = dynamic_cast<torch::optim::AdamWParamState*>(entry.second.get());
    if (adamw == nullptr) throw InternalError("move_optimizer_state: only AdamW's state is known");
    adamw->exp_avg(adamw->exp_avg().to(device));
    adamw->exp_avg_sq(adamw->exp_avg_sq().to(device));
    if (adamw->max_exp_avg_sq().defined()) adamw->max_exp_avg_sq(adamw->max_exp_avg_sq().to(device));
  }
}

bool cpu_has_bf16_instructions() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // Also checks that the OS saves the AVX-512 state. CPUs with AMX-BF16
  // (Sapphire Rapids on) have AVX512-BF16 too.
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

Precision resolve_precision(Precision precision, const torch::Device& device) {
  if (precision != Precision::Auto) return precision;
  return device.is_cuda() || cpu_has_bf16_instructions() ? Precision::Bf16 : Precision::Fp32;
}

AutocastScope::AutocastScope(Precision precision, const torch::Device& device)
    : active_(resolve_precision(precision, device) == Precision::Bf16), type_(device.type()) {
  if (!active_) return;
  was_enabled_ = compat::autocast_enabled(type_);
  was_dtype_ = compat::autocast_dtype(type_);
  compat::set_autocast_enabled(type_, true);
  compat::set_autocast_dtype(type_, c10::ScalarType::BFloat16);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // As torch.autocast's __exit__: the cast-weight cache lives while any
  // autocast scope is open.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  compat::set_autocast_enabled(type_, was_enabled_);
  compat::set_autocast_dtype(type_, was_dtype_);
}

}  // namespace cwcl
