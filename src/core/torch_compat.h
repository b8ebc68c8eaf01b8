// Internal: the few libtorch calls whose spelling differs between Debian's
// libtorch 1.13 (the default build) and the 2.x of PyPI's torch wheels
// (docs/gpu.md). Every version test in cwcl lives in this file.
#pragma once

#include <ATen/autocast_mode.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>
#include <torch/version.h>

namespace cwcl::compat {

// Autocast state per device type: 2.x takes the device type as an argument;
// 1.13 had one function per type (CUDA's named without a type).
inline bool autocast_enabled(c10::DeviceType type) {
#if TORCH_VERSION_MAJOR >= 2
  return at::autocast::is_autocast_enabled(type);
#else
  return type == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

inline void set_autocast_enabled(c10::DeviceType type, bool enabled) {
#if TORCH_VERSION_MAJOR >= 2
  at::autocast::set_autocast_enabled(type, enabled);
#else
  type == c10::DeviceType::CUDA ? at::autocast::set_enabled(enabled) : at::autocast::set_cpu_enabled(enabled);
#endif
}

inline c10::ScalarType autocast_dtype(c10::DeviceType type) {
#if TORCH_VERSION_MAJOR >= 2
  return at::autocast::get_autocast_dtype(type);
#else
  return type == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                       : at::autocast::get_autocast_cpu_dtype();
#endif
}

inline void set_autocast_dtype(c10::DeviceType type, c10::ScalarType dtype) {
#if TORCH_VERSION_MAJOR >= 2
  at::autocast::set_autocast_dtype(type, dtype);
#else
  type == c10::DeviceType::CUDA ? at::autocast::set_autocast_gpu_dtype(dtype)
                                : at::autocast::set_autocast_cpu_dtype(dtype);
#endif
}

}  // namespace cwcl::compat
