// Process-wide runtime settings of libtorch that cwcl code relies on.
#pragma once

#include <cstdint>
#include <string>

namespace cwcl {

/// Library version, "MAJOR.MINOR.PATCH".
const char* version();

/// Sets torch's intra-op thread count. threads <= 0 means all cores
/// (std::thread::hardware_concurrency). Returns the count now in force.
/// libtorch from Debian starts with 1; OpenBLAS keeps its own threads.
int set_num_threads(int threads);

/// Resident memory of this process in bytes (Linux /proc/self/status:
/// VmRSS), and its peak since start or the last reset (VmHWM). 0 when unknown.
int64_t resident_bytes();
int64_t peak_resident_bytes();
/// Resets the peak to the current resident memory (Linux >= 4.0). Returns
/// false when the kernel refuses.
bool reset_peak_resident_bytes();

/// Where a fetched model lives: $CWCL_MODELS/<name>, by default
/// ~/.cache/cwcl/models/<name> (scripts/fetch_models.sh puts them there).
std::string model_folder(const std::string& name);

/// A file of cwcl's bundled data (label texts, captions, SLURP text), by
/// its path inside the repository's data/ folder: $CWCL_DATA/<relative> when
/// set, else the installed share/cwcl/data, else the source tree the library
/// was built from. Throws DataError naming every place tried.
std::string data_file(const std::string& relative);

/// A file of cwcl's bundled configurations (the examples, the demo's
/// presets and variants), by its path inside the repository's configs/
/// folder: $CWCL_CONFIGS/<relative>, the installed share/cwcl/configs, or the
/// source tree. Throws DataError naming every place tried.
std::string config_file(const std::string& relative);

/// One line per fact: cwcl and torch versions, threads, BLAS in use.
std::string runtime_info();

}  // namespace cwcl
