// Internal to the train tier (not installed): what one run holds while it
// trains, and the pieces of the loop that live in their own files.
#pragma once

#include <cwcl/eval/tasks.h>
#include <cwcl/io/files.h>
#include <cwcl/model/model_file.h>
#include <cwcl/train/trainer.h>

#include "sources.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

namespace cwcl::detail {

// AdamW with one group per (tower group, decay or not): decay on matrices,
// none on vectors and scalars (biases, norms, the logit scale), as CLIP trains.
struct Optimizer {
  std::unique_ptr<torch::optim::AdamW> adamw;
  std::vector<double> base_lr;        // per param group
  std::vector<torch::Tensor> trained;  // every trained tensor (clipping)
  std::vector<ParameterGroup> named;   // the tower's groups and the criterion, by name (gradient norms)
};

/// AdamW groups of the tower and the loss module (optim.* settings).
Optimizer make_optimizer(TrainedTowerImpl& tower, ContrastiveLossImpl& criterion, const TrainConfig& c);

// Everything one run holds while it trains.
struct Run {
  TrainConfig config;
  TrainedTower tower;
  ContrastiveLoss criterion{nullptr};
  std::unique_ptr<DataSource> source;
  Optimizer optimizer;
  bool needs_labels = false;
  ModelFileHeader header;
  std::shared_ptr<dist::Group> group;
  torch::Device device = torch::kCPU;  // run.device, resolved
  bool writer = true;            // rank 0: writes the run directory
  int64_t nonfinite = 0;         // steps skipped for a non-finite loss or gradient
  int64_t nonfinite_in_row = 0;
  std::string last_checkpoint;   // the newest checkpoint written (finite weights), for messages
};

// A run gives up after this many non-finite steps in a row.
constexpr int64_t kMaxNonfiniteInRow = 20;

/// A run that diverged: the loss or gradient stayed non-finite, or an update
/// left non-finite weights. An internal error (exit 1) naming the step where
/// it began and the last checkpoint with finite weights.
class DivergedError : public InternalError {
 public:
  explicit DivergedError(const std::string& what) : InternalError(what) {}
};
[[noreturn]] void diverged(const Run& r, int64_t since_step, const std::string& how);

/// Whether every weight of the tower and the loss module is finite.
bool weights_finite(Run& r);

/// One optimizer step at `lr_factor` times every group's base rate;
/// `grad_norms` (when given) receives each group's gradient norm before
/// clipping. A non-finite loss or gradient skips the step on every rank.
/// Returns the global loss.
double train_step(Run& r, const Batch& batch, int64_t step, double lr_factor, nlohmann::json* grad_norms = nullptr);

/// The batch on the run's device (the sources build batches on the CPU).
Batch on_device(const Batch& b, const torch::Device& device);

/// Writes the run's model (optimizer null) or checkpoint to `path`.
void save(Run& r, const std::string& path, int64_t step, bool with_optimizer);

/// run.eval_every: each validation a line of results.jsonl, the best model
/// so far best.pt. Rank 0 validates; the others wait for it on the store
/// rather than in a collective, so a long validation does not trip
/// run.dist_timeout.
class RunValidator {
 public:
  /// `validate`: make_validator(r.config) on rank 0 (empty elsewhere).
  RunValidator(const Run& r, int64_t start, Validator validate);
  bool due(int64_t done) const { return every_ > 0 && (done % every_ == 0 || done == steps_); }
  void run(Run& r, const TextTower& text, int64_t done, const Log& log);

 private:
  Validator validate_;
  int64_t every_, steps_;
  std::string best_path_;
  std::unique_ptr<AppendLog> results_;
  double best_;
};

}  // namespace cwcl::detail
