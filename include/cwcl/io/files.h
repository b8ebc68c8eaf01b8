// Small file helpers shared by the readers and writers of the library. Every
// file cwcl writes goes through replace_file_atomically (whole files) or
// AppendLog (JSONL logs), so a write the system refuses is one error that
// names the file and the reason, and never leaves a temporary file behind.
#pragma once

#include <cwcl/error.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cwcl {

/// A write the system refused (full disk, no permission, a read-only or
/// missing folder). An internal error (exit 1): the input is not at fault.
class WriteError : public InternalError {
 public:
  explicit WriteError(const std::string& what) : InternalError(what) {}
};

/// Lines of a text file (without line ends); throws DataError naming the
/// file when it cannot be read.
std::vector<std::string> read_lines(const std::string& path);

/// Writes `path` so that a crash leaves either the old file or the new one:
/// `write` fills a temporary file beside it (path + ".tmp." and a unique
/// suffix, created empty before `write` is called, so concurrent writers of
/// one path never collide: the last rename wins), which is
/// fsynced and renamed over `path`, then the folder is fsynced. When any of
/// it fails the temporary file is removed, `path` is left as it was, and a
/// WriteError names `path` and the reason (errors the input caused, cwcl
/// Errors of another kind, pass through unchanged after the clean-up).
void replace_file_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& write);

/// replace_file_atomically with `text` as the whole content.
void write_text_atomically(const std::string& path, const std::string& text);

/// One piece of a file: `size` bytes at `data`.
struct Bytes {
  const void* data;
  size_t size;
};
/// Creates (or truncates) `path` and writes the pieces in order; throws
/// WriteError naming `path` and the reason (errno).
void write_file(const std::string& path, const std::vector<Bytes>& pieces);

/// Why the last write into `path`'s folder may have failed: "no space left
/// on device" when its file system is full, else `fallback`.
std::string write_failure_reason(const std::string& path, const std::string& fallback);

/// A JSONL log of a run directory (metrics.jsonl, results.jsonl): keeps the
/// lines of a run being resumed up to step `keep_until` (lines whose "step"
/// is larger, or that cannot be parsed, are dropped), then appends. Each
/// line is flushed; a refused write throws WriteError naming the file.
class AppendLog {
 public:
  AppendLog(const std::string& path, int64_t keep_until);
  ~AppendLog();
  AppendLog(const AppendLog&) = delete;
  AppendLog& operator=(const AppendLog&) = delete;
  void write_line(const std::string& line);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

/// Exclusive ownership of a folder for as long as the object lives (a run
/// directory while a run trains in it): an flock on <folder>/.lock holding
/// the owner's pid. The kernel releases it when the process ends, however
/// it ends, so a killed run never leaves it stale. Creates the folder.
class FolderLock {
 public:
  /// Throws UsageError naming the folder and the holder's pid when another
  /// process holds it; WriteError when the folder cannot be created.
  explicit FolderLock(const std::string& folder);
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

  /// Throws as the constructor would if the folder is held now; takes nothing.
  static void check_free(const std::string& folder);

 private:
  int fd_ = -1;
};

}  // namespace cwcl
