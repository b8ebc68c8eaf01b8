// Image manifests, colour normalisation and the prefetching decoder (the
// pixels themselves are read by image_files.cpp through OpenCV).
#include <cwcl/data/images.h>
#include <cwcl/error.h>

#include <nlohmann/json.hpp>

#include "jsonl.h"

#include <filesystem>
#include <unordered_set>

namespace cwcl {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

// The captions of a line: "text" (a string) or "texts" (strings); empty
// with `why` set when they are malformed.
std::vector<std::string> captions_of(const json& j, std::string& why) {
  std::vector<std::string> out;
  if (j.contains("text")) {
    if (!j["text"].is_string()) return why = "'text' is not a string", out;
    out.push_back(j["text"].get<std::string>());
  }
  if (j.contains("texts")) {
    if (!j["texts"].is_array()) return why = "'texts' is not a list", std::vector<std::string>{};
    for (const auto& t : j["texts"]) {
      if (!t.is_string()) return why = "'texts' holds a non-string", std::vector<std::string>{};
      out.push_back(t.get<std::string>());
    }
  }
  for (const auto& t : out)
    if (blank(t)) return why = "an empty text", std::vector<std::string>{};
  return out;
}

// Why a parsed line cannot be an example (empty: it can); fills `e`.
std::string parse_line(const json& j, ImageManifestNeeds needs, const fs::path& base, ImageExample& e) {
  if (!j.is_object()) return "not a JSON object";
  for (const char* key : {"id", "image"})
    if (!j.contains(key) || !j[key].is_string()) return std::string("no string field '") + key + "'";
  e.id = j["id"].get<std::string>();
  if (e.id.empty()) return "empty id";
  std::string why;
  e.texts = captions_of(j, why);
  if (!why.empty()) return why;
  if (j.contains("label")) {
    if (!j["label"].is_string() || blank(j["label"].get<std::string>())) return "'label' is not a non-empty string";
    e.label = j["label"].get<std::string>();
  }
  if (needs == ImageManifestNeeds::Text && e.texts.empty()) return "no 'text' or 'texts'";
  if (needs == ImageManifestNeeds::Label && e.label.empty()) return "no 'label'";
  if (needs == ImageManifestNeeds::TextOrLabel && e.texts.empty() && e.label.empty()) return "no text and no label";
  fs::path image = j["image"].get<std::string>();
  if (image.empty()) return "empty image path";
  if (image.is_relative()) image = base / image;
  e.image = image.string();
  return "";
}

}  // namespace

ImageManifest read_image_manifest(const std::string& path, ImageManifestNeeds needs) {
  const fs::path base = fs::path(path).parent_path();
  ImageManifest m;
  std::unordered_set<std::string> ids;
  const auto skips = detail::read_jsonl(path, [&](const json& j) -> std::string {
    ImageExample e;
    const auto why = parse_line(j, needs, base, e);
    if (!why.empty()) return why;
    // A repeated id would make two images one row of every store.
    if (!ids.insert(e.id).second) return "duplicate id '" + shorten(e.id) + "' (the first line with it is kept)";
    m.examples.push_back(std::move(e));
    return "";
  });
  m.skipped = skips.skipped;
  m.problems = skips.problems;
  return m;
}

torch::Tensor normalise_colour(const torch::Tensor& images) {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == 3 && images.scalar_type() == torch::kUInt8,
              "normalise_colour: expected uint8 [B, 3, S, S], got ", images.sizes(), " ", images.scalar_type());
  auto mean = torch::tensor({kColourMean[0], kColourMean[1], kColourMean[2]}, torch::kFloat).view({1, 3, 1, 1});
  auto std = torch::tensor({kColourStd[0], kColourStd[1], kColourStd[2]}, torch::kFloat).view({1, 3, 1, 1});
  return (images.to(torch::kFloat) / 255.0 - mean) / std;
}

DecodedImages decode_images(const ImageBatchRequest& request, int64_t size,
                            const std::optional<ImageAugmentOptions>& augment) {
  TORCH_CHECK(size > 0, "decode_images: size must be positive, got ", size);
  TORCH_CHECK(!augment || request.seeds.size() == request.files.size(), "decode_images: ", request.seeds.size(),
              " seeds for ", request.files.size(), " files");
  const auto n = static_cast<int64_t>(request.files.size());
  DecodedImages out{torch::full({n, 3, size, size}, 255, torch::kUInt8), {}};
  for (int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<size_t>(i);
    try {
      const auto rgb = read_rgb_image(request.files[k]);
      out.images[i] = augment ? augment_image(rgb, size, *augment, request.seeds[k]) : fit_image(rgb, size);
    } catch (const Error& e) {
      out.failures.push_back(e.what());
    }
  }
  return out;
}

ImagePrefetcher::ImagePrefetcher(Options options, std::function<ImageBatchRequest(int64_t)> plan, int64_t first,
                                 int64_t end)
    : options_(std::move(options)), plan_(std::move(plan)), next_launch_(first), end_(end) {
  TORCH_CHECK(options_.ahead >= 1, "ImagePrefetcher: ahead must be >= 1, got ", options_.ahead);
  while (static_cast<int64_t>(in_flight_.size()) < options_.ahead && next_launch_ < end_) launch();
}

ImagePrefetcher::~ImagePrefetcher() {
  for (auto& f : in_flight_)
    if (f.valid()) f.wait();
}

void ImagePrefetcher::launch() {
  // The plan runs here, on the caller's thread: it may read state that is
  // not thread-safe (an epoch's order); only decoding runs in the background.
  auto request = plan_(next_launch_++);
  in_flight_.push_back(std::async(std::launch::async, [request = std::move(request), size = options_.size,
                                                       augment = options_.augment] {
    return decode_images(request, size, augment);
  }));
}

std::optional<DecodedImages> ImagePrefetcher::next() {
  if (in_flight_.empty()) return std::nullopt;
  auto batch = in_flight_.front().get();
  in_flight_.erase(in_flight_.begin());
  if (next_launch_ < end_) launch();
  return batch;
}

}  // namespace cwcl
