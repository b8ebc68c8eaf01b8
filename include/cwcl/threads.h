// The one scope that sets torch's intra-op thread count and restores the
// count it found, however the scope is left.
#pragma once

#include <ATen/Parallel.h>

namespace cwcl {

class ThreadCountScope {
 public:
  /// threads >= 1. Work that alternates BLAS products with elementwise ops
  /// (a tiled loss, a transformer forward pass) runs faster here with torch's
  /// elementwise work on one thread: OpenBLAS runs its own threads, which
  /// spin between calls, and torch's threads competing with them made the
  /// tiled loss and the MiniLM encoder 2.4x slower on 2 cores
  /// (docs/performance.md).
  explicit ThreadCountScope(int threads) : saved_(at::get_num_threads()) {
    if (threads != saved_) at::set_num_threads(threads);
  }
  ~ThreadCountScope() {
    if (at::get_num_threads() != saved_) at::set_num_threads(saved_);
  }
  ThreadCountScope(const ThreadCountScope&) = delete;
  ThreadCountScope& operator=(const ThreadCountScope&) = delete;

 private:
  int saved_;
};

}  // namespace cwcl
