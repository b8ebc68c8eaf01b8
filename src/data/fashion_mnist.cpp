// Fashion-MNIST (Xiao et al. 2017): IDX files, class names and captions,
// the seeded split of the training images.
#include <cwcl/data/fashion_mnist.h>
#include <cwcl/error.h>
#include <cwcl/io/files.h>
#include <cwcl/seeds.h>

#include <zlib.h>

#include <array>
#include <cmath>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

namespace cwcl {
namespace {

// Whole file, inflated when gzipped (gzread passes plain files through).
std::vector<uint8_t> read_maybe_gzipped(const std::string& path) {
  std::unique_ptr<gzFile_s, int (*)(gzFile)> f(gzopen(path.c_str(), "rb"), gzclose);
  if (!f) throw DataError(path + ": cannot open");
  std::vector<uint8_t> out;
  std::array<uint8_t, 1 << 16> chunk{};
  for (;;) {
    const int n = gzread(f.get(), chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) throw DataError(path + ": read error (corrupt gzip?)");
    if (n == 0) break;
    out.insert(out.end(), chunk.begin(), chunk.begin() + n);
  }
  return out;
}

uint32_t big_endian(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) | b[at + 3];
}

// The IDX format (LeCun et al.): magic 0x0000 08 <rank>, rank big-endian sizes, uint8 data.
torch::Tensor read_idx(const std::string& path, int rank) {
  auto bytes = read_maybe_gzipped(path);
  const size_t header = 4 + 4 * static_cast<size_t>(rank);
  if (bytes.size() < header || big_endian(bytes, 0) != 0x0800u + static_cast<uint32_t>(rank))
    throw DataError(path + ": not an IDX file of rank " + std::to_string(rank));
  std::vector<int64_t> shape;
  size_t count = 1;
  for (int r = 0; r < rank; ++r) {
    shape.push_back(big_endian(bytes, 4 + 4 * static_cast<size_t>(r)));
    count *= static_cast<size_t>(shape.back());
  }
  if (bytes.size() != header + count)
    throw DataError(path + ": expected " + std::to_string(count) + " bytes of data, found " +
                             std::to_string(bytes.size() - header));
  return torch::from_blob(bytes.data() + header, shape, torch::kUInt8).clone();
}

std::string find_file(const std::string& folder, const std::string& stem) {
  for (const char* suffix : {"", ".gz"}) {
    const std::string path = folder + "/" + stem + suffix;
    if (std::ifstream(path).good()) return path;
  }
  throw DataError(folder + ": no " + stem + "[.gz] (Debian package dataset-fashion-mnist)");
}

}  // namespace

ImageSet ImageSet::only(const std::vector<int64_t>& classes) const {
  auto keep = torch::zeros_like(labels, torch::kBool);
  for (auto c : classes) keep |= labels == c;
  auto rows = keep.nonzero().squeeze(1);
  return {images.index_select(0, rows), labels.index_select(0, rows)};
}

ImageSet ImageSet::rows(const torch::Tensor& index) const {
  return {images.index_select(0, index), labels.index_select(0, index)};
}

ImageSet read_fashion_mnist(const std::string& folder, FashionMnistSplit split) {
  const std::string stem = split == FashionMnistSplit::Train ? "train" : "t10k";
  ImageSet set;
  set.images = read_idx(find_file(folder, stem + "-images-idx3-ubyte"), 3);
  set.labels = read_idx(find_file(folder, stem + "-labels-idx1-ubyte"), 1).to(torch::kLong);
  if (set.images.size(0) != set.labels.size(0))
    throw DataError(folder + ": " + stem + " has " + std::to_string(set.images.size(0)) + " images but " +
                    std::to_string(set.labels.size(0)) + " labels");
  return set;
}

torch::Tensor normalise_images(const torch::Tensor& images) {
  return ((images.to(torch::kFloat) / 255.0 - kFashionMnistMean) / kFashionMnistStd).unsqueeze(1);
}

torch::Tensor augment_images(const torch::Tensor& images, int64_t max_shift, torch::Generator& generator) {
  TORCH_CHECK(images.dim() == 3 && images.scalar_type() == torch::kUInt8, "augment_images: uint8 [B, H, W]");
  const int64_t b = images.size(0), h = images.size(1), w = images.size(2);
  auto shifts = torch::randint(-max_shift, max_shift + 1, {b, 2}, generator, torch::kLong);
  auto flips = torch::randint(0, 2, {b}, generator, torch::kLong);
  auto padded = torch::constant_pad_nd(images, {max_shift, max_shift, max_shift, max_shift}, 0);
  auto out = torch::empty_like(images);
  auto s = shifts.accessor<int64_t, 2>();
  auto f = flips.accessor<int64_t, 1>();
  for (int64_t i = 0; i < b; ++i) {
    auto crop = padded[i].narrow(0, max_shift + s[i][0], h).narrow(1, max_shift + s[i][1], w);
    out[i].copy_(f[i] ? crop.flip({1}) : crop);
  }
  return out;
}

namespace {

// "label<TAB>name[<TAB>synonym,synonym...]" -> (label, words with the name first).
std::pair<int64_t, std::vector<std::string>> parse_class_line(const std::string& line, const std::string& where) {
  std::vector<std::string> cols;
  std::stringstream in(line);
  for (std::string col; std::getline(in, col, '\t');) cols.push_back(col);
  if (cols.size() < 2 || cols[1].empty()) throw DataError(where + ": expected label<TAB>name[<TAB>synonyms]");
  int64_t label = -1;
  try {
    size_t used = 0;
    label = std::stoll(cols[0], &used);
    if (used != cols[0].size()) label = -1;
  } catch (const std::exception&) {
  }
  if (label < 0) throw DataError(where + ": label '" + cols[0] + "' is not a non-negative integer");
  std::vector<std::string> words{cols[1]};
  if (cols.size() > 2) {
    std::stringstream list(cols[2]);
    for (std::string w; std::getline(list, w, ',');)
      if (!w.empty()) words.push_back(w);
  }
  return {label, words};
}

}  // namespace

ClassNames ClassNames::read(const std::string& path) {
  const auto lines = read_lines(path);
  ClassNames s;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty() || lines[i][0] == '#') continue;
    const std::string where = path + ":" + std::to_string(i + 1);
    auto [label, words] = parse_class_line(lines[i], where);
    const auto k = static_cast<size_t>(label);
    if (k >= s.synonyms.size()) s.synonyms.resize(k + 1);
    if (!s.synonyms[k].empty()) throw DataError(where + ": label " + std::to_string(label) + " twice");
    s.synonyms[k] = std::move(words);
  }
  if (s.synonyms.empty()) throw DataError(path + ": no classes");
  for (size_t k = 0; k < s.synonyms.size(); ++k)
    if (s.synonyms[k].empty()) throw DataError(path + ": no line for label " + std::to_string(k));
  for (const auto& words : s.synonyms) s.names.push_back(words.front());
  return s;
}

std::vector<std::string> ClassNames::captions(int64_t label, const std::vector<std::string>& templates) const {
  std::vector<std::string> out;
  for (const auto& word : synonyms.at(static_cast<size_t>(label)))
    for (const auto& t : templates) {
      const auto at = t.find("{}");
      out.push_back(t.substr(0, at) + word + t.substr(at + 2));
    }
  return out;
}

std::string classes_problem(const std::vector<int64_t>& classes, int64_t count) {
  std::set<int64_t> seen;
  for (auto k : classes) {
    if (k < 0 || k >= count) return "class " + std::to_string(k) + " outside 0.." + std::to_string(count - 1);
    if (!seen.insert(k).second) return "class " + std::to_string(k) + " twice";
  }
  return "";
}

ImageSplit split_training_images(const ImageSet& train, const std::vector<int64_t>& classes, double valid_fraction,
                                 uint64_t seed) {
  auto all = train.only(classes);
  auto g = make_generator(derive_seed(seed, SeedStream::ValidationSplit));
  auto order = torch::randperm(all.size(), g, torch::kLong);
  const auto n_valid = static_cast<int64_t>(std::floor(valid_fraction * static_cast<double>(all.size())));
  return {all.rows(order.narrow(0, n_valid, all.size() - n_valid)), all.rows(order.narrow(0, 0, n_valid))};
}

}  // namespace cwcl
