#include <cwcl/io/files.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace cwcl {
namespace {

namespace fs = std::filesystem;

// fsync of a file or folder; false (errno set) when it fails.
bool fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  errno = err;
  return ok;
}

std::string first_line(const std::string& text) {
  const auto end = text.find('\n');
  auto line = text.substr(0, end);
  return line.size() > 300 ? line.substr(0, 300) + "..." : line;
}

std::string folder_of(const std::string& path) {
  const auto parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
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

std::string write_failure_reason(const std::string& path, const std::string& fallback) {
  struct statvfs s {};
  if (::statvfs(folder_of(path).c_str(), &s) == 0 && s.f_bavail * s.f_frsize < (1u << 20))
    return "no space left on device";
  return fallback;
}

namespace {

void write_all(int fd, const void* data, size_t size, const std::string& path) {
  const char* at = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t w = ::write(fd, at, size);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw WriteError(path + ": cannot write (" + std::strerror(errno) + ")");
    }
    at += w;
    size -= static_cast<size_t>(w);
  }
}

}  // namespace

void write_file(const std::string& path, const std::vector<Bytes>& pieces) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw WriteError(path + ": cannot create (" + std::strerror(errno) + ")");
  try {
    for (const auto& piece : pieces) write_all(fd, piece.data, piece.size, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) throw WriteError(path + ": cannot close (" + std::strerror(errno) + ")");
}

namespace {

// A new empty file beside `path`, named path + ".tmp." and six unique
// characters (mkstemp), readable like the files cwcl writes; "" (errno set)
// when it cannot be made. Unique, so two processes writing the same file
// (two runs embedding one caption store) never take each other's file.
std::string create_temporary_beside(const std::string& path) {
  std::string name = path + ".tmp.XXXXXX";
  const int fd = ::mkstemp(name.data());
  if (fd < 0) return "";
  const bool ok = ::fchmod(fd, 0644) == 0;
  const int err = errno;
  ::close(fd);
  if (ok) return name;
  ::unlink(name.c_str());
  errno = err;
  return "";
}

}  // namespace

void replace_file_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& write) {
  const std::string tmp = create_temporary_beside(path);
  auto fail = [&](const std::string& reason) {
    std::error_code ignored;
    if (!tmp.empty()) fs::remove(tmp, ignored);
    throw WriteError(path + ": cannot write (" + write_failure_reason(path, reason) + ")");
  };
  if (tmp.empty()) fail(std::strerror(errno));
  try {
    write(tmp);
  } catch (const Error& e) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    if (e.kind() != ErrorKind::Internal) throw;
    fail(first_line(e.what()));
  } catch (const std::exception& e) {
    fail(first_line(e.what()));
  }
  if (!fs::is_regular_file(tmp)) fail("the temporary file " + tmp + " was removed while it was written");
  if (!fsync_path(tmp, O_RDONLY)) fail(std::string("fsync: ") + std::strerror(errno));
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) fail("rename: " + ec.message());
  fsync_path(folder_of(path), O_RDONLY | O_DIRECTORY);  // best effort: the file itself is durable
}

void write_text_atomically(const std::string& path, const std::string& text) {
  replace_file_atomically(path, [&](const std::string& tmp) { write_file(tmp, {{text.data(), text.size()}}); });
}

AppendLog::AppendLog(const std::string& path, int64_t keep_until) : path_(path) {
  std::string kept;
  if (keep_until > 0 && fs::exists(path)) {
    for (const auto& line : read_lines(path)) {
      try {
        if (nlohmann::json::parse(line).at("step").get<int64_t>() <= keep_until) kept += line + "\n";
      } catch (const std::exception&) {
        // a line cut by the crash: dropped
      }
    }
  }
  write_text_atomically(path, kept);
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) throw WriteError(path + ": cannot open for appending (" + std::strerror(errno) + ")");
}

AppendLog::~AppendLog() {
  if (fd_ >= 0) ::close(fd_);
}

void AppendLog::write_line(const std::string& line) {
  const std::string text = line + "\n";
  write_all(fd_, text.data(), text.size(), path_);
}

namespace {

// Opens <folder>/.lock and takes its lock without waiting; -1 when another
// process holds it (its pid in `holder`).
int take_lock(const std::string& folder, std::string& holder) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw WriteError(folder + ": cannot create (" + ec.message() + ")");
  const std::string path = (fs::path(folder) / ".lock").string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw WriteError(path + ": cannot open (" + std::strerror(errno) + ")");
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return fd;
  const int err = errno;
  char buf[32] = {0};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  ::close(fd);
  if (err != EWOULDBLOCK) throw WriteError(path + ": cannot lock (" + std::strerror(err) + ")");
  holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "unknown";
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
  return -1;
}

[[noreturn]] void held(const std::string& folder, const std::string& holder) {
  throw UsageError(folder + ": another cwcl process (pid " + holder +
                   ") is training in this run directory; wait for it, stop it, or choose another run.out");
}

}  // namespace

FolderLock::FolderLock(const std::string& folder) {
  std::string holder;
  fd_ = take_lock(folder, holder);
  if (fd_ < 0) held(folder, holder);
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    // The lock holds without the pid; a second process then says "unknown".
  }
}

FolderLock::~FolderLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

void FolderLock::check_free(const std::string& folder) {
  std::string holder;
  const int fd = take_lock(folder, holder);
  if (fd < 0) held(folder, holder);
  ::close(fd);
}

}  // namespace cwcl
