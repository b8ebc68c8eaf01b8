// Reading and writing the safetensors format (Hugging Face): an 8-byte
// little-endian header length, a JSON header mapping each tensor name to its
// dtype, shape and [begin, end) byte range in the data section that follows,
// and an optional "__metadata__" object of strings.
#pragma once

#include <cwcl/error.h>
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace cwcl {

/// A file or buffer that is not valid safetensors. what() names the source.
class FormatError : public DataError {
 public:
  using DataError::DataError;
};

/// One entry of a safetensors header, validated against the buffer size.
struct SafetensorsEntry {
  std::string name;
  std::string dtype;  ///< "F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  ///< byte range in the data section
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  ///< in file order of their data
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  ///< where the data section starts in the buffer
};

/// Parses and validates the header of a safetensors buffer without touching
/// tensor data: rejects a header length past the end, malformed JSON, unknown
/// dtypes, negative or overflowing shapes, byte ranges out of bounds, of the
/// wrong size for their shape, or overlapping. `source` names the buffer in
/// errors. Never reads outside [data, data + size).
SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size,
                                           const std::string& source);

struct Safetensors {
  std::map<std::string, torch::Tensor> tensors;  ///< CPU tensors owning their memory
  std::map<std::string, std::string> metadata;
};

/// Parses a whole buffer into tensors (copies the data).
Safetensors parse_safetensors(const uint8_t* data, size_t size, const std::string& source);

/// Reads a file; errors name the path.
Safetensors read_safetensors(const std::string& path);

/// A whole file's bytes; throws FormatError naming the path when unreadable.
std::vector<uint8_t> read_file_bytes(const std::string& path);

/// Writes tensors (made contiguous, moved to CPU) and string metadata
/// atomically: a temporary file beside the target, fsync, then rename.
void write_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace cwcl
