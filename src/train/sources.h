// Training data for the trainer (not installed): every source yields, for
// (epoch, batch), the same batch on every run, so a resumed run continues
// exactly where the interrupted one stopped. In a distributed run each rank
// gets its shard of that same global batch.
#pragma once

#include <cwcl/data/shard.h>
#include <cwcl/towers/text_tower.h>
#include <cwcl/towers/tower.h>
#include <cwcl/model/config.h>
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

namespace cwcl::detail {

struct Batch {
  torch::Tensor x;        ///< tower input (or pooled outputs when the tower caches them)
  torch::Tensor lengths;  ///< speech: real frames
  torch::Tensor p;        ///< frozen-side embeddings [B, D]
  torch::Tensor labels;   ///< image: class labels
};

class DataSource {
 public:
  virtual ~DataSource() = default;
  virtual int64_t batches_per_epoch() const = 0;
  /// This shard's rows of global batch `index` of `epoch`.
  virtual Batch batch(int64_t epoch, int64_t index) = 0;
  /// Frozen-side rows of the training set (centring, calibration).
  virtual const torch::Tensor& frozen() const = 0;
  /// True when batches carry pooled outputs for TrainedTowerImpl::head.
  virtual bool pooled() const { return false; }
  int64_t skipped = 0;  ///< examples left out (unreadable audio, bad manifest lines)
};

using Log = std::function<void(const std::string&)>;

/// Progress lines of a long text embedding ("text: 4096/13465 embedded").
inline std::function<void(int64_t, int64_t)> text_progress(const Log& log) {
  return [log](int64_t done, int64_t total) {
    log("text: " + std::to_string(done) + "/" + std::to_string(total) + " embedded");
  };
}

/// Colour images of an image manifest (model.tower = "resnet").
std::unique_ptr<DataSource> image_manifest_source(const TrainConfig& config, const TextTower& text, const Log& log,
                                                  Shard shard);

/// The source a configuration describes: speech (feature cache, or cached
/// pooled outputs when the tower allows it), an image manifest or
/// Fashion-MNIST images; batches
/// of run.batch_size rows, of which this source yields `shard`'s.
std::unique_ptr<DataSource> make_data_source(const TrainConfig& config, TrainedTowerImpl& tower,
                                             const TextTower& text, const Log& log, Shard shard = {});

}  // namespace cwcl::detail
