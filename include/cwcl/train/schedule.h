// The learning-rate schedule: linear warmup, then cosine decay to a floor
// (Loshchilov & Hutter 2017, as CLIP trains).
#pragma once

#include <cstdint>

namespace cwcl {

struct ScheduleOptions {
  int64_t steps = 1000;  ///< the run's length
  int64_t warmup = 100;  ///< steps of linear warmup from lr / warmup to lr
  double lr = 1e-3;      ///< peak rate the factor is relative to
  double min_lr = 0.0;   ///< rate at the end
};

/// The factor that multiplies every group's base rate at `step` (0-based).
double learning_rate_factor(const ScheduleOptions& options, int64_t step);

}  // namespace cwcl
