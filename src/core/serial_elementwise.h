// Internal: a scope in which torch's intra-op threads are 1 (not installed).
#pragma once

#include <ATen/Parallel.h>

namespace cwcl::detail {

// Work that alternates BLAS products with elementwise ops (a tiled loss, a
// transformer forward pass) runs faster here with torch's elementwise work on
// one thread: OpenBLAS runs its own threads, which spin between calls, and
// torch's OpenMP threads competing with them made the tiled loss 2.4x and the
// MiniLM encoder 2.4x slower on 2 cores (docs/performance.md). The count in
// force before is restored at the end of the scope.
class SerialElementwise {
 public:
  SerialElementwise() : saved_(at::get_num_threads()) {
    if (saved_ != 1) at::set_num_threads(1);
  }
  ~SerialElementwise() {
    if (saved_ != 1) at::set_num_threads(saved_);
  }
  SerialElementwise(const SerialElementwise&) = delete;
  SerialElementwise& operator=(const SerialElementwise&) = delete;

 private:
  int saved_;
};

}  // namespace cwcl::detail
