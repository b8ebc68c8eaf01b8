// One rank's share of every global batch: rows [index * B / count,
// (index + 1) * B / count) of a batch of B, so that ranks together see
// exactly the batch one process would (DESIGN.md contract 6).
#pragma once

#include <cstdint>

namespace cwcl {

struct Shard {
  int64_t index = 0;  ///< this rank
  int64_t count = 1;  ///< ranks

  /// Rows of a global batch of `batch` this shard holds (count divides batch).
  int64_t rows(int64_t batch) const { return batch / count; }
  /// Where this shard's rows start in a global batch of `batch`.
  int64_t first(int64_t batch) const { return index * rows(batch); }
};

}  // namespace cwcl
