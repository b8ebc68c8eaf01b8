// Model and checkpoint files: one torch archive holding the format tag, the
// resolved configuration, the sizes needed to rebuild the tower, and under
// their own keys the tower's weights ("tower"), the loss module's state
// ("criterion": learned temperature and bias) and, in checkpoints, the
// optimizer ("optimizer"). Written atomically (io/files.h).
#pragma once

#include <cwcl/model/config.h>
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cwcl {

/// The format this cwcl writes and reads. Files of another format are
/// refused with a message naming both.
inline constexpr const char* kModelFormat = "cwcl-model-2";

/// What a model file holds besides its weights.
struct ModelFileHeader {
  TrainConfig config;
  int64_t out_dim = 0;
  int64_t step = 0;
  std::vector<int64_t> architecture;  ///< TrainedTowerImpl::architecture() when written
};

/// Writes a model (optimizer null) or a checkpoint.
void write_model_file(const std::string& path, const ModelFileHeader& header, torch::nn::Module& tower,
                      torch::nn::Module& criterion, torch::optim::Optimizer* optimizer);

/// An opened model file: its header, and the archive to load modules from.
class ModelFile {
 public:
  /// Throws DataError naming the file when it is missing, not a cwcl model,
  /// of another format version, or changed since it was written (each record
  /// is checked against the CRC-32 the file carries).
  static ModelFile open(const std::string& path);
  const ModelFileHeader& header() const { return header_; }
  const std::string& path() const { return path_; }
  /// Loads `module` from the archive's `key`; throws DataError naming the
  /// file and the first tensor whose shape does not fit.
  void load(const std::string& key, torch::nn::Module& module);
  /// Loads the optimizer state; throws DataError when the file has none.
  void load_optimizer(torch::optim::Optimizer& optimizer);

 private:
  std::string path_;
  ModelFileHeader header_;
  std::shared_ptr<torch::serialize::InputArchive> archive_;
  std::shared_ptr<const std::vector<uint8_t>> bytes_;  ///< the file, checked against its checksums, read once
};

/// checkpoints/step-<zero-padded N>.pt of a run directory, oldest first.
std::vector<std::string> list_checkpoints(const std::string& run_dir);
/// The path of step N's checkpoint in a run directory.
std::string checkpoint_path(const std::string& run_dir, int64_t step);

}  // namespace cwcl
