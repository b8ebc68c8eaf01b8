#include <cwcl/io/ctranslate2.h>
#include <cwcl/io/files.h>

#include <cstring>
#include <limits>
#include <vector>

namespace cwcl {
namespace {

constexpr uint32_t kBinaryVersion = 6;

// CTranslate2's DataType enum order (include/ctranslate2/types.h).
struct Ct2Dtype {
  torch::ScalarType type;
  uint64_t bytes;
};
const Ct2Dtype kDtypes[] = {{torch::kFloat, 4}, {torch::kChar, 1},  {torch::kShort, 2},
                            {torch::kInt, 4},   {torch::kHalf, 2},  {torch::kBFloat16, 2}};

class Reader {
 public:
  Reader(const uint8_t* data, size_t size, const std::string& source)
      : p_(data), end_(data + size), begin_(data), source_(source) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError(source_ + ": not a valid CTranslate2 model.bin: " + what + " (at byte " +
                      std::to_string(p_ - begin_) + ")");
  }
  const uint8_t* take(size_t n, const char* what) {
    if (static_cast<size_t>(end_ - p_) < n) fail(std::string("truncated in ") + what);
    const uint8_t* at = p_;
    p_ += n;
    return at;
  }
  template <typename T>
  T number(const char* what) {
    T v;
    std::memcpy(&v, take(sizeof(T), what), sizeof(T));  // little-endian, as written
    return v;
  }
  std::string string(const char* what) {
    const auto n = number<uint16_t>(what);
    if (n == 0) fail(std::string("empty ") + what);
    const uint8_t* s = take(n, what);
    if (s[n - 1] != 0) fail(std::string(what) + " is not NUL-terminated");
    return std::string(reinterpret_cast<const char*>(s), n - 1);
  }
  bool done() const { return p_ == end_; }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
  const uint8_t* begin_;
  const std::string& source_;
};

}  // namespace

const torch::Tensor& Ct2Model::get(const std::string& name, const std::string& source) const {
  auto it = variables.find(name);
  if (it == variables.end()) {
    auto alias = aliases.find(name);
    if (alias != aliases.end()) it = variables.find(alias->second);
  }
  if (it == variables.end()) throw FormatError(source + ": model has no variable '" + name + "'");
  return it->second;
}

Ct2Model parse_ct2_model(const uint8_t* data, size_t size, const std::string& source) {
  Reader r(data, size, source);
  const auto version = r.number<uint32_t>("binary version");
  if (version != kBinaryVersion)
    r.fail("binary version " + std::to_string(version) + " (this reader knows version " +
           std::to_string(kBinaryVersion) + ")");
  Ct2Model m;
  m.spec = r.string("spec name");
  m.revision = r.number<uint32_t>("spec revision");
  const auto count = r.number<uint32_t>("variable count");
  for (uint32_t i = 0; i < count; ++i) {
    auto name = r.string("variable name");
    const auto rank = r.number<uint8_t>("rank");
    std::vector<int64_t> shape;
    uint64_t numel = 1;
    for (uint8_t d = 0; d < rank; ++d) {
      const auto dim = r.number<uint32_t>("shape");
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim) r.fail("shape of '" + name + "' overflows");
      numel *= dim;
      shape.push_back(dim);
    }
    const auto dtype = r.number<uint8_t>("dtype");
    if (dtype >= sizeof(kDtypes) / sizeof(kDtypes[0]))
      r.fail("variable '" + name + "' has unknown dtype id " + std::to_string(dtype));
    const auto bytes = r.number<uint32_t>("byte count");
    if (numel > std::numeric_limits<uint64_t>::max() / kDtypes[dtype].bytes ||
        numel * kDtypes[dtype].bytes != bytes)
      r.fail("variable '" + name + "' has " + std::to_string(bytes) + " bytes for its shape");
    const uint8_t* raw = r.take(bytes, "variable data");
    auto t = torch::empty(shape, torch::TensorOptions().dtype(kDtypes[dtype].type));
    if (bytes > 0) std::memcpy(t.data_ptr(), raw, bytes);
    if (!m.variables.emplace(std::move(name), std::move(t)).second) r.fail("duplicate variable name");
  }
  const auto aliases = r.number<uint32_t>("alias count");
  for (uint32_t i = 0; i < aliases; ++i) {
    auto alias = r.string("alias");
    auto target = r.string("alias target");
    m.aliases.emplace(std::move(alias), std::move(target));
  }
  if (!r.done()) r.fail("trailing bytes after the aliases");
  return m;
}

Ct2Model read_ct2_model(const std::string& path) {
  const auto buffer = read_file_bytes(path);
  return parse_ct2_model(buffer.data(), buffer.size(), path);
}

namespace {

void put_string(std::string& out, const std::string& s) {
  const auto n = static_cast<uint16_t>(s.size() + 1);
  out.append(reinterpret_cast<const char*>(&n), 2);
  out.append(s.c_str(), s.size() + 1);
}

template <typename T>
void put_number(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

}  // namespace

void write_ct2_model(const std::string& path, const Ct2Model& m) {
  std::string out;
  put_number<uint32_t>(out, kBinaryVersion);
  put_string(out, m.spec);
  put_number<uint32_t>(out, m.revision);
  put_number<uint32_t>(out, static_cast<uint32_t>(m.variables.size()));
  for (const auto& [name, tensor] : m.variables) {
    const auto t = tensor.contiguous();
    uint8_t id = 0;
    while (id < sizeof(kDtypes) / sizeof(kDtypes[0]) && kDtypes[id].type != t.scalar_type()) ++id;
    if (id == sizeof(kDtypes) / sizeof(kDtypes[0]))
      throw UsageError(path + ": variable '" + name + "' has a dtype CTranslate2 does not store");
    put_string(out, name);
    put_number<uint8_t>(out, static_cast<uint8_t>(t.dim()));
    for (auto d : t.sizes()) put_number<uint32_t>(out, static_cast<uint32_t>(d));
    put_number<uint8_t>(out, id);
    const auto bytes = static_cast<uint32_t>(t.numel() * t.element_size());
    put_number<uint32_t>(out, bytes);
    out.append(static_cast<const char*>(t.data_ptr()), bytes);
  }
  put_number<uint32_t>(out, static_cast<uint32_t>(m.aliases.size()));
  for (const auto& [alias, target] : m.aliases) {
    put_string(out, alias);
    put_string(out, target);
  }
  replace_file_atomically(path, [&](const std::string& tmp) { write_file(tmp, {{out.data(), out.size()}}); });
}

Ct2Model ct2_subset(const Ct2Model& m, const std::string& prefix) {
  Ct2Model out;
  out.spec = m.spec;
  out.revision = m.revision;
  for (const auto& [name, t] : m.variables)
    if (name.rfind(prefix, 0) == 0) out.variables.emplace(name, t);
  for (const auto& [alias, target] : m.aliases)
    if (out.variables.count(target)) out.aliases.emplace(alias, target);
  return out;
}

}  // namespace cwcl
