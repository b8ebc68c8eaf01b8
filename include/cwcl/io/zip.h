// The ZIP container of torch archives (model files, checkpoints): each
// entry carries a CRC-32 of its bytes, which libtorch's reader does not
// check. cwcl checks them before it loads a file, so a flipped byte is a
// data error naming the file rather than a silently different model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace cwcl {

/// Verifies every entry of a ZIP archive in [data, data + size) against the
/// CRC-32 its central directory records (ZIP64 included). Throws
/// FormatError naming `source` and the entry for a mismatch, a truncated or
/// malformed archive, or a compression method other than stored and deflate
/// (torch stores its tensors and deflates its code records). Never reads
/// outside the buffer. Returns the entries checked.
int64_t verify_zip_checksums(const uint8_t* data, size_t size, const std::string& source);

}  // namespace cwcl
