// The library's exceptions: one base class whose kind tells a caller what
// went wrong in the terms a user acts on. Only the command's main turns kinds
// into exit codes (README "Exit codes"; DESIGN.md contract 7).
//
// Header-only (tier base), so that the loss tier can use it too.
#pragma once

#include <c10/util/Exception.h>

#include <stdexcept>
#include <string>

namespace cwcl {

enum class ErrorKind {
  Usage,     ///< a bad argument or option: the caller asked for something impossible
  Config,    ///< a bad configuration file or --set value; the message names the key
  Data,      ///< a data or model file is missing, unreadable or malformed; names the file
  Internal,  ///< a failure that is not the input's fault (a bug, the system)
  Peer,      ///< distributed training: another rank died, hung or cannot be reached; names it
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

class UsageError : public Error {
 public:
  explicit UsageError(const std::string& what) : Error(ErrorKind::Usage, what) {}
};

class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& what) : Error(ErrorKind::Config, what) {}
};

class DataError : public Error {
 public:
  explicit DataError(const std::string& what) : Error(ErrorKind::Data, what) {}
};

class InternalError : public Error {
 public:
  explicit InternalError(const std::string& what) : Error(ErrorKind::Internal, what) {}
};

class PeerError : public Error {
 public:
  explicit PeerError(const std::string& what) : Error(ErrorKind::Peer, what) {}
};

/// `text` as it goes into a message: at most `max` characters, a longer one
/// cut with its length said, so that a runaway value never floods a message.
inline std::string shorten(const std::string& text, size_t max = 120) {
  if (text.size() <= max) return text;
  return text.substr(0, max) + "... (" + std::to_string(text.size()) + " characters)";
}

/// An exception's message as a user reads it: a c10 (torch) error without
/// the backtrace libtorch appends to it.
inline std::string message_of(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

/// The command's exit status for an error of this kind: 2 usage and
/// configuration, 3 data, 4 peer, 1 internal.
constexpr int exit_code(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::Usage:
    case ErrorKind::Config:
      return 2;
    case ErrorKind::Data:
      return 3;
    case ErrorKind::Peer:
      return 4;
    case ErrorKind::Internal:
      return 1;
  }
  return 1;
}

/// "usage", "config", "data", "peer" or "internal".
constexpr const char* to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::Usage:
      return "usage";
    case ErrorKind::Config:
      return "config";
    case ErrorKind::Data:
      return "data";
    case ErrorKind::Peer:
      return "peer";
    case ErrorKind::Internal:
      return "internal";
  }
  return "internal";
}

}  // namespace cwcl
