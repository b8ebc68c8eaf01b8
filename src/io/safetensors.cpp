// safetensors: https://github.com/huggingface/safetensors (format description
// in its README). Everything read from the buffer is bounds-checked before use.
#include <cwcl/io/files.h>
#include <cwcl/io/safetensors.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

#include <fcntl.h>
#include <unistd.h>

namespace cwcl {
namespace {

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  uint64_t bytes;
};

const DtypeInfo kDtypes[] = {
    {"F64", torch::kDouble, 8}, {"F32", torch::kFloat, 4},    {"F16", torch::kHalf, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kLong, 8},  {"I32", torch::kInt, 4},
    {"I16", torch::kShort, 2},  {"I8", torch::kChar, 1},      {"U8", torch::kByte, 1},
    {"BOOL", torch::kBool, 1}};

const DtypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeInfo& dtype_of(torch::ScalarType type, const std::string& tensor) {
  for (const auto& d : kDtypes)
    if (d.type == type) return d;
  throw UsageError("write_safetensors: tensor '" + tensor + "' has dtype " +
                              std::string(c10::toString(type)) + ", which safetensors cannot hold");
}

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw FormatError(source + ": not a valid safetensors file: " + what);
}

// Largest header accepted (the reference implementation uses 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

}  // namespace

SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size,
                                           const std::string& source) {
  if (size < 8) fail(source, "shorter than the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
  if (header_len > kMaxHeaderBytes) fail(source, "header length " + std::to_string(header_len) + " is too large");
  if (header_len > size - 8)
    fail(source, "header length " + std::to_string(header_len) + " runs past the end of the " +
                     std::to_string(size) + "-byte file (truncated?)");

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(data + 8, data + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail(source, std::string("header is not JSON: ") + e.what());
  }
  if (!header.is_object()) fail(source, "header is not a JSON object");

  SafetensorsHeader out;
  out.data_offset = 8 + header_len;
  const uint64_t data_size = size - out.data_offset;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) fail(source, "__metadata__ is not an object");
      for (const auto& [key, text] : value.items()) {
        if (!text.is_string()) fail(source, "__metadata__." + key + " is not a string");
        out.metadata[key] = text.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!value.is_object()) fail(source, where + " is not an object");
    SafetensorsEntry e;
    e.name = name;
    auto dtype = value.find("dtype");
    if (dtype == value.end() || !dtype->is_string()) fail(source, where + " has no dtype");
    e.dtype = dtype->get<std::string>();
    const DtypeInfo* info = find_dtype(e.dtype);
    if (!info) fail(source, where + " has unknown dtype '" + e.dtype + "'");

    auto shape = value.find("shape");
    if (shape == value.end() || !shape->is_array()) fail(source, where + " has no shape");
    uint64_t numel = 1;
    for (const auto& dim : *shape) {
      if (!dim.is_number_unsigned()) fail(source, where + " has a shape entry that is not a natural number");
      uint64_t d = dim.get<uint64_t>();
      if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          (d != 0 && numel > std::numeric_limits<uint64_t>::max() / d))
        fail(source, where + " has a shape whose size overflows");
      numel *= d;
      e.shape.push_back(static_cast<int64_t>(d));
    }
    auto offsets = value.find("data_offsets");
    if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 ||
        !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned())
      fail(source, where + " has no [begin, end] data_offsets");
    e.begin = (*offsets)[0].get<uint64_t>();
    e.end = (*offsets)[1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_size)
      fail(source, where + " has data_offsets [" + std::to_string(e.begin) + ", " +
                       std::to_string(e.end) + "] outside the " + std::to_string(data_size) +
                       "-byte data section (truncated?)");
    if (numel > std::numeric_limits<uint64_t>::max() / info->bytes ||
        numel * info->bytes != e.end - e.begin)
      fail(source, where + " holds " + std::to_string(e.end - e.begin) + " bytes but its shape and " +
                       e.dtype + " need " + std::to_string(numel) + " x " +
                       std::to_string(info->bytes));
    out.entries.push_back(std::move(e));
  }
  std::sort(out.entries.begin(), out.entries.end(),
            [](const auto& a, const auto& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < out.entries.size(); ++i)
    if (out.entries[i].begin < out.entries[i - 1].end)
      fail(source, "tensors '" + out.entries[i - 1].name + "' and '" + out.entries[i].name +
                       "' overlap");
  return out;
}

Safetensors parse_safetensors(const uint8_t* data, size_t size, const std::string& source) {
  auto header = parse_safetensors_header(data, size, source);
  Safetensors out;
  out.metadata = std::move(header.metadata);
  for (const auto& e : header.entries) {
    auto t = torch::empty(e.shape, torch::TensorOptions().dtype(find_dtype(e.dtype)->type));
    // The format is little-endian, as is every machine libtorch runs on here.
    if (e.end > e.begin) std::memcpy(t.data_ptr(), data + header.data_offset + e.begin, e.end - e.begin);
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw FormatError(path + ": cannot open");
  const auto size = static_cast<size_t>(in.tellg());
  std::vector<uint8_t> buffer(size);
  in.seekg(0);
  if (size > 0 && !in.read(reinterpret_cast<char*>(buffer.data()), static_cast<std::streamsize>(size)))
    throw FormatError(path + ": read failed");
  return buffer;
}

Safetensors read_safetensors(const std::string& path) {
  const auto buffer = read_file_bytes(path);
  return parse_safetensors(buffer.data(), buffer.size(), path);
}

void write_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> blobs;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") throw UsageError("write_safetensors: reserved name __metadata__");
    auto t = tensor.detach().to(torch::kCPU).contiguous();
    const auto& info = dtype_of(t.scalar_type(), name);
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * info.bytes;
    header[name] = {{"dtype", info.name}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    blobs.push_back(t);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned
  const uint64_t len = text.size();

  uint8_t len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<uint8_t>(len >> (8 * i));
  std::vector<Bytes> pieces{{len_bytes, 8}, {text.data(), text.size()}};
  for (const auto& t : blobs) pieces.push_back({t.data_ptr(), static_cast<size_t>(t.numel() * t.element_size())});
  replace_file_atomically(path, [&](const std::string& tmp) { write_file(tmp, pieces); });
}

}  // namespace cwcl
