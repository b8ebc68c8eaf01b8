// Contrastive losses for cross-modal transfer against a frozen tower.
//
// Notation follows docs/method.md: p is the frozen side [N, D], q the trained
// side [N, D]; rows are L2-normalised inside; logits l_ij = s * <p_i, q_j>
// with s = 1 / temperature or exp(logit_scale) clamped at 100 (CLIP).
#pragma once

#include <cwcl/names.h>
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cwcl {

/// Which loss. Softmax kinds (CL, CWCL, SupCon) average the frozen->trained
/// and trained->frozen directions; sigmoid kinds sum over all pairs; Cosine
/// has no negatives at all.
enum class LossKind {
  CL,        ///< symmetric InfoNCE (CLIP, LiT)
  CWCL,      ///< continuously weighted contrastive loss (Srinivasa et al. 2023)
  SupCon,    ///< labels define the positives of each row (cross-modal SupCon)
  SigLIP,    ///< pairwise sigmoid loss with a bias (Zhai et al. 2023)
  CWSigLIP,  ///< sigmoid loss whose targets are the continuous weights
  Cosine,    ///< mean of 1 - cos(p_i, q_i): regression onto the frozen side (SAMU-XLSR-style distillation)
};

/// How the weights w_ij in [0, 1] are made from the frozen side's cosines.
enum class WeightMap {
  Affine,     ///< cos / 2 + 1 / 2 (the paper's)
  Relu,       ///< max(0, cos)
  Power,      ///< (cos / 2 + 1 / 2)^gamma
  Kernel,     ///< exp((cos - 1) / kernel_tau)
  RowMinMax,  ///< per row, (cos - min) / (max - min)
  Labels,     ///< 1 where labels match, else 0
  Identity,   ///< 1 on the diagonal (CWCL then equals CL)
  Custom,     ///< a user-given [N, N] tensor
};

/// Which directions of a softmax loss use the continuous weights; the other
/// direction then uses plain CL targets (as CellCLIP does).
enum class WeightedDirections {
  Both,             ///< both directions weighted (the paper's)
  FrozenToTrained,  ///< rows p_i against all q_j weighted; q->p plain CL
  TrainedToFrozen,  ///< rows q_i against all p_j weighted; p->q plain CL
};

struct WeightOptions {
  WeightMap map = WeightMap::Affine;
  /// Exponent of the Power map; must be > 0.
  double gamma = 4.0;
  /// Bandwidth tau_w of the Kernel map; must be > 0.
  double kernel_tau = 0.1;
  /// Optional [D] vector subtracted from the normalised p rows (then
  /// renormalised) before the cosines, to spread a teacher whose cosines
  /// crowd together. Undefined: no centring.
  torch::Tensor center;
  /// [N, N] weights in [0, 1] for WeightMap::Custom (rows local, columns
  /// global when a gather hook is set).
  torch::Tensor custom;
};

/// Which implementation computes the loss. Both give the same values and
/// gradients (tested to 1e-5 relative); they differ in time and memory.
enum class LossPath {
  Auto,   ///< Tiled from tiling.auto_threshold rows, or when the plain path would not fit tiling.plain_memory_mib
  Plain,  ///< builds the N x N logits: simple, the reference
  Tiled,  ///< walks tiles of rows and columns; memory O(N x D + tile^2)
};

struct TilingOptions {
  LossPath path = LossPath::Auto;
  /// Rows and columns per tile of the tiled path.
  int64_t tile = 1024;
  /// Smallest global batch for which Auto picks the tiled path.
  int64_t auto_threshold = 2048;
  /// Auto never picks the plain path when its N x N tensors would need more
  /// than this (measure_loss_path does not either).
  double plain_memory_mib = 2048;
};

/// All-gather with gradient across ranks: returns every rank's rows
/// concatenated in rank order (each rank holds the same number of rows).
using GatherFn = std::function<torch::Tensor(const torch::Tensor& local)>;

struct LossOptions {
  LossKind kind = LossKind::CWCL;
  /// Used when logit_scale is undefined: s = 1 / temperature.
  double temperature = 0.07;
  /// Optional scalar log(s), usually learnable; clamped at log(100) (CLIP).
  torch::Tensor logit_scale;
  /// SigLIP kinds: fixed bias added to the logits when logit_bias is undefined.
  double bias = -10.0;
  /// SigLIP kinds: optional scalar learnable bias.
  torch::Tensor logit_bias;
  /// CWCL and CWSigLIP: how the weights are made.
  WeightOptions weights;
  /// CWCL: which directions are weighted. Ignored by sigmoid kinds, whose
  /// loss covers all pairs once.
  WeightedDirections directions = WeightedDirections::Both;
  /// Adds cosine_weight * mean_i (1 - cos(p_i, q_i)) to a contrastive kind
  /// (the Cosine kind is that term alone, with weight 1; leave this 0).
  double cosine_weight = 0.0;
  /// [N] integer labels: required by SupCon and WeightMap::Labels.
  torch::Tensor labels;
  /// Distributed training: with a gather hook, this rank's rows are scored
  /// against the gathered columns of all ranks and the loss is this rank's
  /// share (summing it over ranks gives the global loss). Without: local.
  GatherFn gather;
  /// This rank's index when gather is set; its rows start at rank * N_local.
  int64_t rank = 0;
  /// Plain or tiled implementation.
  TilingOptions tiling;
};

/// The loss for frozen-side p [N, D] and trained-side q [N, D]. Gradients flow
/// to q, to p when it requires grad (weights are a constant: they come from
/// the frozen side and are detached), and to logit_scale / logit_bias.
torch::Tensor contrastive_loss(const torch::Tensor& p, const torch::Tensor& q,
                               const LossOptions& options = {});

/// Bytes the plain path's N x N tensors take for a local batch of n rows
/// against n_global columns (an estimate: the logits, softmaxes, targets and
/// their gradients alive at once).
double plain_path_bytes(int64_t n, int64_t n_global, const torch::TensorOptions& options);

/// The faster path for these inputs and options, by measurement: one
/// forward and backward of each path on detached copies (after one to warm
/// up), the tiled one whenever the plain one would not fit
/// tiling.plain_memory_mib. For one process; a distributed loss keeps its
/// rule (every rank must take the same path).
LossPath measure_loss_path(const torch::Tensor& p, const torch::Tensor& q, const LossOptions& options);

/// The weights w [N_rows, N_cols] the loss would use for these frozen rows
/// against these frozen columns (detached). labels_* are needed by
/// WeightMap::Labels. diagonal_offset is where row 0's own column is.
torch::Tensor contrastive_weights(const torch::Tensor& p_rows, const torch::Tensor& p_cols,
                                  const WeightOptions& options,
                                  const torch::Tensor& labels_rows = {},
                                  const torch::Tensor& labels_cols = {},
                                  int64_t diagonal_offset = 0);

/// Convenience: the weights of one local batch p [N, D] against itself.
torch::Tensor contrastive_weights(const torch::Tensor& p, const WeightOptions& options,
                                  const torch::Tensor& labels = {});

/// How flat a batch's weights are. A row whose normalised weights are
/// uniform over k columns has k effective positives; CL has exactly 1.
struct WeightStats {
  int64_t rows = 0;
  double offdiag_mean = 0, offdiag_std = 0, offdiag_min = 0, offdiag_max = 0;
  /// Off-diagonal quantiles at 0.1, 0.25, 0.5, 0.75, 0.9.
  std::vector<double> offdiag_quantiles;
  /// Counts of off-diagonal weights in equal bins over [0, 1].
  std::vector<int64_t> histogram;
  /// Per row 1 / sum_j (w_ij / sum_k w_ik)^2: mean, min and max over rows.
  double effective_positives_mean = 0, effective_positives_min = 0,
         effective_positives_max = 0;
  /// A few readable lines.
  std::string to_string() const;
};

/// Diagnostics of a square weight matrix (as from contrastive_weights).
WeightStats weight_stats(const torch::Tensor& weights, int64_t histogram_bins = 10);

/// Automatic calibration of a weight map's sharpness from the frozen side's
/// similarity statistics: picks kernel_tau (Kernel) or gamma (Power) so that
/// the mean effective number of positives per row of this batch (see
/// WeightStats) equals `target_effective_positives`, by bisection in log
/// space. Other maps have no sharpness and are returned unchanged. Throws
/// when the target lies outside what the map can reach on this batch.
WeightOptions calibrate_weights(const torch::Tensor& p, WeightOptions options,
                                double target_effective_positives);

/// Names used in configs and on the command line (cwcl/names.h:
/// parse_name<LossKind>("cwcl"), name_of(WeightMap::Power)).
template <>
struct Names<LossKind> {
  static constexpr const char* what = "loss kind";
  static constexpr std::array<std::pair<LossKind, const char*>, 6> table{
      {{LossKind::CL, "cl"},
       {LossKind::CWCL, "cwcl"},
       {LossKind::SupCon, "supcon"},
       {LossKind::SigLIP, "siglip"},
       {LossKind::CWSigLIP, "cwsiglip"},
       {LossKind::Cosine, "cosine"}}};
};
template <>
struct Names<WeightMap> {
  static constexpr const char* what = "weight map";
  static constexpr std::array<std::pair<WeightMap, const char*>, 8> table{
      {{WeightMap::Affine, "affine"},
       {WeightMap::Relu, "relu"},
       {WeightMap::Power, "power"},
       {WeightMap::Kernel, "kernel"},
       {WeightMap::RowMinMax, "row_minmax"},
       {WeightMap::Labels, "labels"},
       {WeightMap::Identity, "identity"},
       {WeightMap::Custom, "custom"}}};
};
template <>
struct Names<WeightedDirections> {
  static constexpr const char* what = "weighted directions";
  static constexpr std::array<std::pair<WeightedDirections, const char*>, 3> table{
      {{WeightedDirections::Both, "both"},
       {WeightedDirections::FrozenToTrained, "frozen_to_trained"},
       {WeightedDirections::TrainedToFrozen, "trained_to_frozen"}}};
};
template <>
struct Names<LossPath> {
  static constexpr const char* what = "loss path";
  static constexpr std::array<std::pair<LossPath, const char*>, 3> table{
      {{LossPath::Auto, "auto"}, {LossPath::Plain, "plain"}, {LossPath::Tiled, "tiled"}}};
};

/// True for SigLIP and CWSigLIP.
bool is_sigmoid_kind(LossKind kind);

/// The module form: holds a learnable logit scale (initialised at
/// log(1 / options.temperature)) and, for sigmoid kinds, a learnable bias
/// (initialised at options.bias), as CLIP and SigLIP do.
struct ContrastiveLossImpl : torch::nn::Module {
  explicit ContrastiveLossImpl(LossOptions options = {}, bool learn_temperature = true);
  void reset();
  /// labels: optional [N], overrides options.labels for this call.
  torch::Tensor forward(const torch::Tensor& p, const torch::Tensor& q,
                        const torch::Tensor& labels = {});

  LossOptions options;
  bool learn_temperature;
  torch::Tensor logit_scale;  // undefined when !learn_temperature
  torch::Tensor logit_bias;   // undefined unless a sigmoid kind learns it
};
TORCH_MODULE(ContrastiveLoss);

}  // namespace cwcl
