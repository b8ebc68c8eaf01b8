// A frozen tower exported from PyTorch as TorchScript: any module whose
// forward(texts: List[str]) returns a [len(texts), D] tensor, used with no
// Python at run time (scripts/make_torchscript_fixture.py shows one).
#pragma once

#include <torch/script.h>

#include <string>
#include <vector>

namespace cwcl {

class ScriptTextTower {
 public:
  /// Loads a .pt file (torch.jit.save); errors name the file.
  static ScriptTextTower load(const std::string& path);

  /// Embeddings [N, D] (float32); throws when the module's output is not one.
  torch::Tensor encode(const std::vector<std::string>& texts) const;

  /// Hash of the .pt file.
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  ScriptTextTower(torch::jit::script::Module module, std::string path, std::string fingerprint);
  mutable torch::jit::script::Module module_;  // forward is not const in libtorch
  std::string path_, fingerprint_;
};

}  // namespace cwcl
