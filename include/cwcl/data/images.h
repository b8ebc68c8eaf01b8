// Colour images for image-text training and evaluation: a JSONL manifest,
// any image file OpenCV reads (transparency composited on white), the
// towers' preprocessing, augmentation drawn from a seed, and a loader that
// decodes batches in background threads ahead of their use.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cwcl {

struct ImageExample {
  std::string id;
  std::string image;               ///< the file, relative paths resolved against the manifest's folder
  std::vector<std::string> texts;  ///< one or more captions ("text" or "texts")
  std::string label;               ///< optional class name
};

struct ImageManifest {
  std::vector<ImageExample> examples;
  int64_t skipped = 0;                ///< bad lines, skipped and counted
  std::vector<std::string> problems;  ///< the first ten, "file:line: why"
};

/// What an image manifest line must carry besides `id` and `image`.
enum class ImageManifestNeeds { Text, Label, TextOrLabel };

/// A JSONL manifest, one image per line: `id`, `image`, `text` (a string)
/// or `texts` (strings), optional `label`. Bad lines (not JSON, a field
/// missing or of the wrong type, an empty id, text or label, an id seen
/// before) are skipped and counted, never fatal; a missing file throws
/// DataError naming it.
ImageManifest read_image_manifest(const std::string& path, ImageManifestNeeds needs = ImageManifestNeeds::Text);

/// An image file (PNG, JPEG, ...; gray, RGB or with alpha; 8 or 16 bits) as
/// uint8 [H, W, 3] RGB, transparent pixels composited on white. Throws
/// DataError naming the file when OpenCV cannot read it.
torch::Tensor read_rgb_image(const std::string& path);
/// False in a build with CWCL_WITH_OPENCV=OFF (read_rgb_image throws UsageError there).
bool colour_images_built();

/// The towers' view without augmentation: the shorter side resized to
/// `size` (area interpolation when shrinking), the centre size x size kept.
/// uint8 [H, W, 3] -> uint8 [3, size, size].
torch::Tensor fit_image(const torch::Tensor& rgb, int64_t size);

/// Training augmentation, drawn per image from a seed. Flips are off by
/// default: a mirrored arrow or letter means something else.
struct ImageAugmentOptions {
  double min_area = 0.5;       ///< random resized crop: area fraction in [min_area, 1]
  double max_aspect = 4.0 / 3;  ///< and aspect ratio in [1/max_aspect, max_aspect] (log-uniform)
  double jitter = 0.2;          ///< brightness, contrast, saturation factors in [1 - jitter, 1 + jitter]
  bool flip = false;            ///< horizontal flips with probability 1/2
};
/// Random resized crop (Szegedy et al. 2015) to size x size and colour
/// jitter. uint8 [H, W, 3] -> uint8 [3, size, size]; the same seed gives the
/// same image.
torch::Tensor augment_image(const torch::Tensor& rgb, int64_t size, const ImageAugmentOptions& options, uint64_t seed);

/// The per-channel statistics colour towers normalise with (ImageNet's,
/// Krizhevsky et al. 2012, as torchvision uses them).
inline constexpr double kColourMean[3] = {0.485, 0.456, 0.406};
inline constexpr double kColourStd[3] = {0.229, 0.224, 0.225};
/// uint8 [B, 3, S, S] -> float [B, 3, S, S]: (x / 255 - mean) / std per channel.
torch::Tensor normalise_colour(const torch::Tensor& images);

/// A batch of decoded images: uint8 [B, 3, S, S], row i from file i.
struct DecodedImages {
  torch::Tensor images;
  std::vector<std::string> failures;  ///< "file: why" for files that could not be read (their rows are white)
};

/// One batch to decode: files, and per file the augmentation seed (ignored
/// without augmentation).
struct ImageBatchRequest {
  std::vector<std::string> files;
  std::vector<uint64_t> seeds;
};

/// Decodes batches in background threads, `ahead` batches ahead of their
/// use: `plan(k)` says which files batch k of the current pass holds.
/// Each batch decodes on its own thread; next() waits for the oldest.
class ImagePrefetcher {
 public:
  struct Options {
    int64_t size = 64;
    std::optional<ImageAugmentOptions> augment;  ///< nullopt: fit_image
    int64_t ahead = 3;                           ///< batches in flight
  };
  ImagePrefetcher(Options options, std::function<ImageBatchRequest(int64_t)> plan, int64_t first, int64_t end);
  ~ImagePrefetcher();
  ImagePrefetcher(const ImagePrefetcher&) = delete;
  ImagePrefetcher& operator=(const ImagePrefetcher&) = delete;
  /// The next batch in order; nullopt after batch end - 1.
  std::optional<DecodedImages> next();

 private:
  void launch();
  Options options_;
  std::function<ImageBatchRequest(int64_t)> plan_;
  int64_t next_launch_, end_;
  std::vector<std::future<DecodedImages>> in_flight_;
};

/// Decodes one request on the calling thread.
DecodedImages decode_images(const ImageBatchRequest& request, int64_t size,
                            const std::optional<ImageAugmentOptions>& augment);

}  // namespace cwcl
