#include "console.h"

#include <cwcl/error.h>

#include <cstdlib>
#include <iostream>
#include <memory>

#include <unistd.h>

namespace cwcl::app {

double progress_interval_seconds() {
  constexpr const char* kVariable = "CWCL_PROGRESS_SECONDS";
  const char* text = std::getenv(kVariable);
  if (text == nullptr || *text == '\0') return 60;
  char* end = nullptr;
  const double seconds = std::strtod(text, &end);
  if (*end != '\0' || !(seconds >= 0))
    throw UsageError(std::string(kVariable) + "='" + text + "': expected seconds between progress lines (>= 0)");
  return seconds;
}

bool ProgressPacer::due(bool last) {
  const auto now = std::chrono::steady_clock::now();
  const bool due = !started_ || last || std::chrono::duration<double>(now - last_line_).count() >= interval_;
  started_ = true;
  if (due) last_line_ = now;
  return due;
}

std::function<void(int64_t, int64_t)> progress_line(const std::string& what) {
  if (!::isatty(STDERR_FILENO)) {
    auto pacer = std::make_shared<ProgressPacer>(progress_interval_seconds());
    return [what, pacer](int64_t done, int64_t total) {
      if (pacer->due(done == total)) std::cerr << what << ": " << done << "/" << total << std::endl;
    };
  }
  return [what](int64_t done, int64_t total) {
    std::cerr << "\r" << what << ": " << done << "/" << total << (done == total ? "\n" : "") << std::flush;
  };
}

std::function<void(const std::string&)> console_log(const std::string& prefix) {
  return [prefix](const std::string& message) { std::cerr << prefix << message << "\n"; };
}

}  // namespace cwcl::app
