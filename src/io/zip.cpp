// ZIP: PKWARE's APPNOTE.TXT (6.3.x), sections 4.3.6-4.3.16 (local header,
// central directory, end of central directory, ZIP64 records). Only what a
// torch archive uses: stored entries, optional ZIP64.
#include <cwcl/io/safetensors.h>  // FormatError
#include <cwcl/io/zip.h>

#include <zlib.h>

#include <algorithm>
#include <vector>

namespace cwcl {
namespace {

constexpr uint32_t kLocalHeader = 0x04034b50, kCentralHeader = 0x02014b50, kEnd = 0x06054b50,
                   kZip64End = 0x06064b50, kZip64Locator = 0x07064b50;

// Little-endian reads, each bounds-checked.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size, const std::string& source) : data_(data), size_(size), source_(source) {}
  uint64_t read(uint64_t at, int bytes) const {
    if (at > size_ || static_cast<uint64_t>(bytes) > size_ - at) fail("truncated (a record past the end)");
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | data_[at + static_cast<uint64_t>(i)];
    return v;
  }
  uint32_t u32(uint64_t at) const { return static_cast<uint32_t>(read(at, 4)); }
  uint16_t u16(uint64_t at) const { return static_cast<uint16_t>(read(at, 2)); }
  uint64_t u64(uint64_t at) const { return read(at, 8); }
  [[noreturn]] void fail(const std::string& why) const {
    throw FormatError(source_ + ": not a cwcl model or checkpoint, or a damaged one (" + why + ")");
  }
  [[noreturn]] void changed(const std::string& entry) const {
    throw FormatError(source_ + ": entry '" + entry + "' fails its checksum: the file was changed or corrupted since it was written");
  }
  size_t size() const { return size_; }
  const uint8_t* data() const { return data_; }

 private:
  const uint8_t* data_;
  size_t size_;
  std::string source_;
};

constexpr uint16_t kStored = 0, kDeflated = 8;

uint32_t crc_of(const uint8_t* data, uint64_t size) {
  uLong sum = crc32(0L, Z_NULL, 0);
  for (uint64_t done = 0; done < size;) {  // zlib takes 32-bit lengths
    const auto chunk = static_cast<uInt>(std::min<uint64_t>(size - done, 1u << 30));
    sum = crc32(sum, data + done, chunk);
    done += chunk;
  }
  return static_cast<uint32_t>(sum);
}

// The CRC-32 of a deflated entry's inflated bytes (torch deflates its small
// code records), checking that it inflates to the size the directory says.
uint32_t inflated_crc(const Reader& r, uint64_t start, uint64_t stored, uint64_t plain, const std::string& name) {
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) r.fail("zlib cannot inflate");
  uLong sum = crc32(0L, Z_NULL, 0);
  uint64_t produced = 0;
  std::vector<Bytef> out(1 << 16);
  z.next_in = const_cast<Bytef*>(r.data() + start);
  z.avail_in = static_cast<uInt>(std::min<uint64_t>(stored, 1u << 30));
  int status = Z_OK;
  while (status == Z_OK) {
    z.next_out = out.data();
    z.avail_out = static_cast<uInt>(out.size());
    status = inflate(&z, Z_NO_FLUSH);
    const auto n = out.size() - z.avail_out;
    sum = crc32(sum, out.data(), static_cast<uInt>(n));
    produced += n;
    if (produced > plain) break;
  }
  inflateEnd(&z);
  if (status != Z_STREAM_END || produced != plain) r.fail("entry '" + name + "' does not inflate to its size");
  return static_cast<uint32_t>(sum);
}

struct Directory {
  uint64_t entries = 0, offset = 0;
};

// The end-of-central-directory record, searched backwards over the longest
// comment a ZIP may carry; ZIP64's record when the locator precedes it.
Directory find_directory(const Reader& r) {
  const size_t size = r.size();
  if (size < 22) r.fail("too short for a ZIP archive");
  const size_t lowest = size >= 22 + 65535 ? size - 22 - 65535 : 0;
  for (size_t at = size - 22 + 1; at-- > lowest;) {
    if (r.u32(at) != kEnd) continue;
    Directory d{r.u16(at + 10), r.u32(at + 16)};
    if (at >= 20 && r.u32(at - 20) == kZip64Locator) {
      const uint64_t end64 = r.u64(at - 20 + 8);
      if (r.u32(end64) != kZip64End) r.fail("bad ZIP64 end record");
      d = {r.u64(end64 + 32), r.u64(end64 + 48)};
    }
    return d;
  }
  r.fail("no end of central directory");
}

// A central-directory field of 0xFFFFFFFF lives in the ZIP64 extra field.
uint64_t zip64_field(const Reader& r, uint64_t extra, uint16_t length, int index) {
  for (uint64_t at = extra; at + 4 <= extra + length;) {
    const uint16_t id = r.u16(at), size = r.u16(at + 2);
    if (id == 0x0001) {
      if (static_cast<uint64_t>(index + 1) * 8 > size) r.fail("short ZIP64 extra field");
      return r.u64(at + 4 + static_cast<uint64_t>(index) * 8);
    }
    at += 4 + size;
  }
  r.fail("missing ZIP64 extra field");
}

}  // namespace

int64_t verify_zip_checksums(const uint8_t* data, size_t size, const std::string& source) {
  const Reader r(data, size, source);
  const auto dir = find_directory(r);
  uint64_t at = dir.offset;
  for (uint64_t i = 0; i < dir.entries; ++i) {
    if (r.u32(at) != kCentralHeader) r.fail("bad central directory entry " + std::to_string(i));
    const uint16_t method = r.u16(at + 10), name_length = r.u16(at + 28), extra_length = r.u16(at + 30),
                   comment_length = r.u16(at + 32);
    const uint32_t crc = r.u32(at + 16);
    uint64_t stored = r.u32(at + 20), plain = r.u32(at + 24), local = r.u32(at + 42);
    const uint64_t extra = at + 46 + name_length;
    int index = 0;  // ZIP64 fields appear in this order, each only when its 32-bit field is full
    if (plain == 0xFFFFFFFFu) plain = zip64_field(r, extra, extra_length, index++);
    if (stored == 0xFFFFFFFFu) stored = zip64_field(r, extra, extra_length, index++);
    if (local == 0xFFFFFFFFu) local = zip64_field(r, extra, extra_length, index++);
    r.read(at + 46, name_length);  // the name lies inside the buffer
    const std::string name(reinterpret_cast<const char*>(data + at + 46), std::min<size_t>(name_length, 200));
    if (method != kStored && method != kDeflated) r.fail("entry '" + name + "' uses compression method " + std::to_string(method));
    if (method == kStored && stored != plain) r.fail("entry '" + name + "' has two sizes");
    if (r.u32(local) != kLocalHeader) r.fail("entry '" + name + "' has no local header");
    const uint64_t start = local + 30 + r.u16(local + 26) + r.u16(local + 28);
    if (start > size || stored > size - start) r.fail("entry '" + name + "' runs past the end (truncated?)");
    const uint32_t sum = method == kStored ? crc_of(data + start, stored) : inflated_crc(r, start, stored, plain, name);
    if (sum != crc) r.changed(name);
    at = extra + extra_length + comment_length;
  }
  return static_cast<int64_t>(dir.entries);
}

}  // namespace cwcl
