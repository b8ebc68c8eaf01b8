#include "console.h"

#include <iostream>

#include <unistd.h>

namespace cwcl::app {

std::function<void(int64_t, int64_t)> progress_line(const std::string& what) {
  if (!::isatty(STDERR_FILENO)) return [](int64_t, int64_t) {};
  return [what](int64_t done, int64_t total) {
    std::cerr << "\r" << what << ": " << done << "/" << total << (done == total ? "\n" : "") << std::flush;
  };
}

std::function<void(const std::string&)> console_log(const std::string& prefix) {
  return [prefix](const std::string& message) { std::cerr << prefix << message << "\n"; };
}

}  // namespace cwcl::app
