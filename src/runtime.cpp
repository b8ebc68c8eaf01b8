#include "cwcl/runtime.h"

#include "cwcl/version.h"

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <c10/util/Exception.h>

#include <sstream>
#include <thread>

namespace cwcl {

const char* version() { return CWCL_VERSION; }

int set_num_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  return at::get_num_threads();
}

std::string runtime_info() {
  std::ostringstream os;
  os << "cwcl " << version() << "\n"
     << "torch threads: " << at::get_num_threads()
     << " (cores: " << std::thread::hardware_concurrency() << ")\n"
     << at::get_parallel_info() << at::show_config();
  return os.str();
}

}  // namespace cwcl
