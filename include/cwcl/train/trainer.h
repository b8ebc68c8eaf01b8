// The trainer: a tower for the new modality learns to land in a frozen text
// tower's space (docs/method.md).
//
// A run directory holds config.toml (the resolved configuration),
// metrics.jsonl, checkpoints/step-<N>.pt and, at the end, model.pt.
#pragma once

#include <cwcl/train/config.h>

#include <functional>
#include <string>

namespace cwcl {

struct TrainProgress {
  int64_t step = 0, steps = 0;
  double loss = 0, logit_scale = 0, lr = 0, samples_per_second = 0, eta_seconds = 0;
};

struct TrainOptions {
  bool resume = false;  ///< continue from the newest checkpoint in the run directory
  std::function<void(const TrainProgress&)> progress;  ///< after every step
  std::function<void(const std::string&)> log;         ///< one-line messages (data preparation, checkpoints)
};

struct TrainSummary {
  std::string run_dir;
  int64_t steps = 0, start_step = 0;
  double seconds = 0, final_loss = 0;
  int64_t skipped = 0;  ///< training examples skipped (unreadable audio, bad manifest lines)
};

/// Trains as `config` says (config.validate() first). Throws ConfigError for
/// a bad configuration, DataError for unusable data; the newest checkpoint
/// survives any failure.
TrainSummary train(const TrainConfig& config, const TrainOptions& options = {});

}  // namespace cwcl
