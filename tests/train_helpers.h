// Shared by the tests that train or read the bundled files.
#pragma once

#include <cwcl/model/config.h>
#include <cwcl/runtime.h>

#include <filesystem>
#include <string>

namespace cwcl::testing {

inline const char* kFashionMnist = "/usr/share/datasets/fashion-mnist";

/// A file of the source tree, by its path from the repository root.
inline std::string source_file(const std::string& relative) {
  return (std::filesystem::path(CWCL_TEST_DATA_DIR) / ".." / relative).string();
}

/// A small image run: every test that trains starts from this.
inline TrainConfig tiny_image_config(const std::string& out) {
  TrainConfig c;
  c.run.out = out;
  c.run.steps = 6;
  c.run.batch_size = 32;
  c.run.checkpoint_every = 3;
  c.run.log_every = 2;
  c.model = ImageTowerSpec{4};
  c.data.train = kFashionMnist;
  c.data.limit = 256;
  c.optim.warmup = 2;
  return c;
}

/// Fashion-MNIST and MiniLM are there (setup and fetch_models).
inline bool have_training_inputs() {
  return std::filesystem::exists(std::filesystem::path(kFashionMnist) / "train-images-idx3-ubyte.gz") &&
         std::filesystem::exists(std::filesystem::path(model_folder("all-MiniLM-L6-v2")) / "model.safetensors");
}

}  // namespace cwcl::testing
