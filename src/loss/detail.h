// Internals shared by the plain and the tiled loss (not installed).
#pragma once

#include "cwcl/loss.h"

namespace cwcl::detail {

torch::Tensor normalize_rows(const torch::Tensor& x);

/// True for maps computed from the frozen side's cosines.
bool is_similarity_map(WeightMap map);

/// The frozen rows and columns in the space the cosines are taken in:
/// normalised and, with options.center, centred and renormalised. Detached.
std::pair<torch::Tensor, torch::Tensor> weight_space(const torch::Tensor& p_rows,
                                                     const torch::Tensor& p_cols,
                                                     const WeightOptions& options);

/// Applies a similarity map to cosines. row_lo / row_range are the per-row
/// minimum and range of the cosines over all columns ([rows, 1]; RowMinMax).
torch::Tensor map_cosines(const torch::Tensor& cos, const WeightOptions& options,
                          const torch::Tensor& row_lo = {}, const torch::Tensor& row_range = {});

/// Throws unless w is a finite [rows, cols] tensor in [0, 1] on like's device.
void check_custom_weights(const torch::Tensor& w, int64_t rows, int64_t cols,
                          const torch::Tensor& like);

/// The targets of a softmax loss's two directions (docs/method.md, "Targets
/// per direction"): which directions weigh their rows, and with what. SupCon
/// weighs both with labels; CWCL weighs the directions options.directions
/// names with options.weights; CL, and CWCL with identity weights, weigh none
/// (one positive per row). The one place this choice is made, for every path.
struct SoftmaxTargets {
  WeightOptions weights;
  bool frozen_to_trained = false;  ///< rows p_i against all q_j
  bool trained_to_frozen = false;  ///< rows q_i against all p_j
  bool any() const { return frozen_to_trained || trained_to_frozen; }
};
SoftmaxTargets softmax_targets(const LossOptions& options);

/// One rank's view of a batch: its own rows against all columns, normalised.
struct ScoredBatch {
  torch::Tensor p_rows, q_rows, p_cols, q_cols;  // [n, D], [n, D], [N, D], [N, D]
  torch::Tensor labels_rows, labels_cols;        // when the loss needs labels
  torch::Tensor scale;                           // 0-dim, s
  torch::Tensor bias;                            // 0-dim, sigmoid kinds
  int64_t offset = 0;                            // column of row 0's own pair
  bool distributed = false;                      // columns come from a gather
};

/// CL, CWCL and SupCon without any N x N tensor, in one autograd function
/// (docs/method.md, "The tiled log-sum-exp"). One process: the batch's rows
/// are its columns, given unnormalised (p and q as passed to the loss);
/// distributed: this rank's normalised rows against the gathered columns.
/// Memory beyond the inputs: O(N + D^2 + tile^2) plus the gradients.
torch::Tensor tiled_softmax_loss(const ScoredBatch& batch, const LossOptions& options);

/// SigLIP and CWSigLIP without any N x N tensor.
torch::Tensor tiled_sigmoid_loss(const ScoredBatch& batch, const LossOptions& options);

}  // namespace cwcl::detail
