// Small file helpers shared by the readers and writers of the library.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace cwcl {

/// Lines of a text file (without line ends); throws DataError naming the
/// file when it cannot be read.
std::vector<std::string> read_lines(const std::string& path);

/// Writes `path` so that a crash leaves either the old file or the new one:
/// `write` fills a temporary file beside it, which is fsynced and renamed
/// over `path`, then the folder is fsynced.
void replace_file_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& write);

}  // namespace cwcl
