// What the commands show on the terminal while they work.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace cwcl::app {

/// Seconds between progress lines when stderr is not a terminal (a log
/// file): CWCL_PROGRESS_SECONDS, 60 when unset, 0 for a line per update.
/// Throws UsageError naming the variable for anything but a number >= 0.
double progress_interval_seconds();

/// When a progress line is due on a log: the first and last update, and
/// otherwise at most one per `interval` seconds.
class ProgressPacer {
 public:
  explicit ProgressPacer(double interval_seconds) : interval_(interval_seconds) {}
  bool due(bool last);

 private:
  double interval_;
  bool started_ = false;
  std::chrono::steady_clock::time_point last_line_{};
};

/// "\r<what>: done/total" on stderr when it is a terminal; on a log, one
/// "<what>: done/total" line per progress_interval_seconds().
std::function<void(int64_t, int64_t)> progress_line(const std::string& what);
/// One line per message on stderr, after `prefix`.
std::function<void(const std::string&)> console_log(const std::string& prefix);

}  // namespace cwcl::app
