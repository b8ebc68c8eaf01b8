#include <cwcl/error.h>
#include <cwcl/device.h>
#include <cwcl/runtime.h>

#include <cwcl/version.h>

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/version.h>
#include <c10/util/Exception.h>

#include <cstdlib>
#include <filesystem>
#include <vector>
#include <fstream>
#include <sstream>
#include <thread>

namespace cwcl {

const char* version() { return CWCL_VERSION; }

int set_num_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  return at::get_num_threads();
}

namespace {
int64_t status_kib(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, key.size(), key) == 0 && line.size() > key.size() &&
        line[key.size()] == ':')
      return std::stoll(line.substr(key.size() + 1));
  return 0;
}
}  // namespace

std::string model_folder(const std::string& name) {
  const char* env = std::getenv("CWCL_MODELS");
  const char* home = std::getenv("HOME");
  const std::string root = env ? env : std::string(home ? home : ".") + "/.cache/cwcl/models";
  return root + "/" + name;
}

namespace {

// A bundled file: under $<variable>, else the installed folder, else the
// source tree's.
std::string bundled_file(const std::string& relative, const char* variable, const std::string& installed,
                         const std::string& source, const std::string& what) {
  std::vector<std::string> roots;
  if (const char* env = std::getenv(variable)) roots.emplace_back(env);
  roots.push_back(installed);
  roots.push_back(source);
  std::string tried;
  for (const auto& root : roots) {
    const auto path = root + "/" + relative;
    if (std::filesystem::exists(path)) return path;
    tried += (tried.empty() ? "" : ", ") + path;
  }
  throw DataError(relative + ": not found in cwcl's " + what + " (tried " + tried + "; set " + variable + " to the " +
                  what + " folder)");
}

}  // namespace

std::string data_file(const std::string& relative) {
  return bundled_file(relative, "CWCL_DATA", CWCL_INSTALLED_DATA_DIR, CWCL_SOURCE_DATA_DIR, "data");
}

std::string config_file(const std::string& relative) {
  return bundled_file(relative, "CWCL_CONFIGS", CWCL_INSTALLED_CONFIG_DIR, CWCL_SOURCE_CONFIG_DIR, "configs");
}

int64_t resident_bytes() { return status_kib("VmRSS") * 1024; }
int64_t peak_resident_bytes() { return status_kib("VmHWM") * 1024; }

bool reset_peak_resident_bytes() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return out.good();
}

std::string runtime_info() {
  std::ostringstream os;
  os << "cwcl " << version() << "\n"
     << "libtorch " << TORCH_VERSION << ", CUDA: " << (cuda_built() ? "built" : "not built") << ", CUDA devices: "
     << cuda_device_count() << "\n"
     << "torch threads: " << at::get_num_threads()
     << " (cores: " << std::thread::hardware_concurrency() << ")\n"
     << at::get_parallel_info() << at::show_config();
  return os.str();
}

}  // namespace cwcl
