// The interchange format: a trained tower as model.safetensors (every weight
// and buffer under its module path), config.json (what rebuilds it: the
// tower's kind and sizes, its input, the frozen text tower it was trained
// against) and check.safetensors (a few inputs and cwcl's embeddings of
// them, so that any reimplementation can prove itself, as
// scripts/cwcl_tower.py --check does).
#pragma once

#include <cwcl/model/model.h>

#include <string>

namespace cwcl {

inline constexpr const char* kExportFormat = "cwcl-export-1";

struct ExportReport {
  std::string folder;
  int64_t tensors = 0, parameters = 0;
};

/// Writes the three files into `folder` (created if missing; files replaced
/// atomically). Throws DataError naming the folder when it cannot be written.
ExportReport export_model(TrainedModel& model, const std::string& folder);

}  // namespace cwcl
