// The trainer: a tower for the new modality learns to land in a frozen text
// tower's space (docs/method.md).
//
// A run directory holds config.toml (the resolved configuration),
// metrics.jsonl, checkpoints/step-<N>.pt and, at the end, model.pt; with
// validation also results.jsonl (one line per validation) and best.pt (the
// model at the best score so far).
//
// With run.eval_every, rank 0 validates the model every eval_every steps
// and at the end as config.eval says (make_validator, <cwcl/eval/tasks.h>).
//
// Distributed: every rank calls train() with its group. Each computes its
// tower on its shard of every global batch (run.batch_size rows), the loss
// over the whole global batch (gathered embeddings), and the gradients
// summed over ranks: N ranks train like one process with the same config
// (DESIGN.md contract 6). Rank 0 alone writes the run directory.
#pragma once

#include <cwcl/dist.h>
#include <cwcl/model/config.h>
#include <cwcl/model/model.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace cwcl {

struct TrainProgress {
  int64_t step = 0, steps = 0;
  double loss = 0, logit_scale = 0, lr = 0, samples_per_second = 0, eta_seconds = 0;
};

struct TrainOptions {
  bool resume = false;  ///< continue from the newest checkpoint in the run directory
  std::function<void(const TrainProgress&)> progress;  ///< after every step
  std::function<void(const std::string&)> log;         ///< one-line messages (data preparation, checkpoints)
  /// The job this process is a rank of; null: a single process.
  std::shared_ptr<dist::Group> group;
};

struct TrainSummary {
  std::string run_dir;
  int64_t steps = 0, start_step = 0;
  double seconds = 0, final_loss = 0;
  int64_t skipped = 0;  ///< training examples skipped (unreadable audio, bad manifest lines)
  int64_t nonfinite_steps = 0;  ///< steps skipped (on every rank) because the loss or gradient was not finite
  int world_size = 1;
};

/// Trains as `config` says (config.validate() first). Throws ConfigError for
/// a bad configuration, DataError for unusable data, PeerError when another
/// rank fails or hangs past run.dist_timeout; the newest checkpoint survives
/// any failure.
TrainSummary train(const TrainConfig& config, const TrainOptions& options = {});

}  // namespace cwcl
