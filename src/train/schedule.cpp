#include <cwcl/train/schedule.h>

#include <algorithm>
#include <cmath>

namespace cwcl {

double learning_rate_factor(const ScheduleOptions& o, int64_t step) {
  if (step < o.warmup) return static_cast<double>(step + 1) / static_cast<double>(o.warmup);
  const double span = static_cast<double>(std::max<int64_t>(1, o.steps - o.warmup));
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup) / span);
  const double floor = o.min_lr / o.lr;
  return floor + (1 - floor) * 0.5 * (1 + std::cos(M_PI * progress));
}

}  // namespace cwcl
