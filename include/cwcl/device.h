// Where the trained tower, the loss and the batches live, and the precision
// the tower computes in. Parsed once at the edge ("run.device", --device,
// "run.precision"); the library sees the typed values.
#pragma once

#include <cwcl/names.h>

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace cwcl {

enum class DeviceKind { Auto, Cpu, Cuda };

/// "auto" (a CUDA device when one is usable, else the CPU), "cpu", "cuda"
/// (the first device, or each rank's own in a distributed run) or "cuda:<i>".
struct DeviceSpec {
  DeviceKind kind = DeviceKind::Auto;
  int64_t index = -1;  ///< Cuda: the device named, -1 when none was

  /// Throws UsageError naming what was given and what is accepted.
  static DeviceSpec parse(const std::string& text);
  std::string str() const;
  bool operator==(const DeviceSpec& o) const { return kind == o.kind && index == o.index; }
};

/// Whether the libtorch cwcl runs on has CUDA kernels (a CUDA build), and
/// how many CUDA devices it sees (0 in a CPU build).
bool cuda_built();
int64_t cuda_device_count();

/// The device a spec names on this machine. `what` names the setting in
/// messages ("run.device", "--device"). Throws ConfigError when CUDA is asked
/// for and this build has none, or the device index is not there; nothing
/// falls back to the CPU silently (Auto picks the CPU only when no CUDA
/// device is usable).
torch::Device resolve_device(const DeviceSpec& spec, const std::string& what);

/// Waits for the work queued on `device` (timing; nothing on the CPU).
void synchronize(const torch::Device& device);

/// The device of a module's first parameter or buffer (the CPU when none).
torch::Device device_of(torch::nn::Module& module);

/// Moves an optimizer's state tensors (Adam's moments) to `device`:
/// torch::optim's load() leaves them where the archive was read.
void move_optimizer_state(torch::optim::Optimizer& optimizer, const torch::Device& device);

enum class Precision {
  Fp32,  ///< float32 throughout
  Bf16,  ///< the trained tower under bfloat16 autocast; loss and logit scale in float32
  Auto,  ///< Bf16 where the device computes it fast, else Fp32 (resolve_precision)
};

template <>
struct Names<Precision> {
  static constexpr const char* what = "precision";
  static constexpr std::array<std::pair<Precision, const char*>, 3> table{
      {{Precision::Fp32, "fp32"}, {Precision::Bf16, "bf16"}, {Precision::Auto, "auto"}}};
};

/// Whether this CPU has bfloat16 dot-product instructions (AVX512-BF16; the
/// CPUs with AMX have them too). Without them oneDNN emulates bf16 and autocast runs slower
/// than float32 (docs/experiments.md: 1.5x slower on an Intel Xeon without
/// them, 3x faster on an EPYC with them).
bool cpu_has_bf16_instructions();

/// Auto as Bf16 on a CUDA device or a CPU with bf16 instructions, else Fp32;
/// Fp32 and Bf16 as given.
Precision resolve_precision(Precision precision, const torch::Device& device);

/// A scope in which matrix products and convolutions on `device`'s type run
/// in bfloat16 (autocast, as torch.autocast does) when `precision` is Bf16
/// (or Auto resolves to it on `device`); nothing otherwise. Restores the state it found.
class AutocastScope {
 public:
  AutocastScope(Precision precision, const torch::Device& device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType type_ = c10::DeviceType::CPU;
  bool was_enabled_ = false;
  c10::ScalarType was_dtype_ = c10::ScalarType::BFloat16;
};

}  // namespace cwcl
