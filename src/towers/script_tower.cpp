#include <cwcl/error.h>
#include <cwcl/towers/script_tower.h>

#include <cwcl/io/store.h>

#include <filesystem>

namespace cwcl {

ScriptTextTower::ScriptTextTower(torch::jit::script::Module module, std::string path, std::string fingerprint)
    : module_(std::move(module)), path_(std::move(path)), fingerprint_(std::move(fingerprint)) {}

ScriptTextTower ScriptTextTower::load(const std::string& path) {
  if (!std::filesystem::exists(path)) throw DataError(path + ": TorchScript file not found");
  torch::jit::script::Module module;
  try {
    module = torch::jit::load(path, torch::kCPU);
  } catch (const c10::Error& e) {
    throw DataError(path + ": not a TorchScript module: " + e.what_without_backtrace());
  }
  if (!module.find_method("forward"))
    throw DataError(path + ": the module has no forward method");
  module.eval();
  return ScriptTextTower(std::move(module), path, fingerprint_files({path}));
}

torch::Tensor ScriptTextTower::encode(const std::vector<std::string>& texts) const {
  torch::NoGradGuard no_grad;
  c10::List<std::string> list;
  for (const auto& t : texts) list.push_back(t);
  c10::IValue out;
  try {
    out = module_.forward({list});
  } catch (const c10::Error& e) {
    throw DataError(path_ + ": forward(List[str]) failed: " + e.what_without_backtrace());
  }
  if (!out.isTensor()) throw DataError(path_ + ": forward must return a tensor");
  auto t = out.toTensor();
  if (t.dim() != 2 || t.size(0) != static_cast<int64_t>(texts.size())) {
    std::ostringstream os;
    os << path_ << ": forward returned " << t.sizes() << " for " << texts.size() << " texts; expected [N, D]";
    throw DataError(os.str());
  }
  return t.to(torch::kFloat).contiguous();
}

}  // namespace cwcl
