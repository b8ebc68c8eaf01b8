// What the commands show on the terminal while they work.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace cwcl::app {

/// "\r<what>: done/total" on stderr when it is a terminal; nothing otherwise.
std::function<void(int64_t, int64_t)> progress_line(const std::string& what);
/// One line per message on stderr, after `prefix`.
std::function<void(const std::string&)> console_log(const std::string& prefix);

}  // namespace cwcl::app
