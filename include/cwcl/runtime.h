// Process-wide runtime settings of libtorch that cwcl code relies on.
#pragma once

#include <string>

namespace cwcl {

/// Library version, "MAJOR.MINOR.PATCH".
const char* version();

/// Sets torch's intra-op thread count. threads <= 0 means all cores
/// (std::thread::hardware_concurrency). Returns the count now in force.
/// libtorch from Debian starts with 1; OpenBLAS keeps its own threads.
int set_num_threads(int threads);

/// One line per fact: cwcl and torch versions, threads, BLAS in use.
std::string runtime_info();

}  // namespace cwcl
