#include <cwcl/error.h>
#include <cwcl/io/files.h>

#include <filesystem>
#include <fstream>

#include <fcntl.h>
#include <unistd.h>

namespace cwcl {
namespace {

void fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw DataError(path + ": cannot open");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

void replace_file_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& write) {
  namespace fs = std::filesystem;
  const std::string tmp = path + ".tmp";
  write(tmp);
  fsync_path(tmp, O_RDONLY);
  fs::rename(tmp, path);
  const auto parent = fs::path(path).parent_path();
  fsync_path(parent.empty() ? "." : parent.string(), O_RDONLY | O_DIRECTORY);
}

}  // namespace cwcl
