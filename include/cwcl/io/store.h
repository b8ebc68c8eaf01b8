// A store of precomputed frozen-side embeddings, so that training never
// re-runs the frozen tower. One safetensors file: the [N, D] float tensor
// "embeddings" and, in the header metadata, one id and one content key per
// row. A row's key hashes the tower's fingerprint (its model files) together
// with the text, so a changed model or text never serves a stale vector.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

namespace cwcl {

/// Hash of the contents of files (XXH3, 128 bits, hex); the tower's fingerprint.
std::string fingerprint_files(const std::vector<std::string>& paths);

/// Key of one text embedded by the tower with this fingerprint.
std::string content_key(const std::string& tower_fingerprint, const std::string& text);

class EmbeddingStore {
 public:
  EmbeddingStore() = default;
  /// embeddings [N, D]; ids and keys have N entries (keys may be empty
  /// strings for rows that came from outside, e.g. another toolkit).
  EmbeddingStore(torch::Tensor embeddings, std::vector<std::string> ids,
                 std::vector<std::string> keys, std::string tower);

  /// Reads a store; throws naming the file when it is not a store (no
  /// "embeddings" [N, D] tensor, ids or keys of the wrong count).
  static EmbeddingStore read(const std::string& path);
  /// Writes atomically (safetensors).
  void write(const std::string& path) const;

  int64_t size() const { return embeddings_.defined() ? embeddings_.size(0) : 0; }
  int64_t dim() const { return embeddings_.defined() ? embeddings_.size(1) : 0; }
  const torch::Tensor& embeddings() const { return embeddings_; }
  const std::vector<std::string>& ids() const { return ids_; }
  const std::vector<std::string>& keys() const { return keys_; }
  const std::string& tower() const { return tower_; }

  /// Row of an id or a content key; -1 when absent.
  int64_t row_of_id(const std::string& id) const;
  int64_t row_of_key(const std::string& key) const;

  /// Rows for ids, in order; throws naming the first missing id.
  torch::Tensor lookup_ids(const std::vector<std::string>& ids) const;

  /// Appends rows (same D). Throws on a dimension mismatch.
  void append(const torch::Tensor& embeddings, const std::vector<std::string>& ids,
              const std::vector<std::string>& keys);

 private:
  void index();
  torch::Tensor embeddings_;
  std::vector<std::string> ids_, keys_;
  std::string tower_;
  std::unordered_map<std::string, int64_t> by_id_, by_key_;
};

/// Embeddings of texts through a tower, computed once: rows whose content key
/// is already in the store at `path` are read from it, the others are
/// computed with `encode` in chunks of 2,048, each added to the store and
/// the store written back (a stopped run keeps the chunks it finished);
/// `progress` (done, total) after each. Returns [N, D] in the order of `texts`.
torch::Tensor embed_with_store(const std::string& path, const std::string& tower,
                               const std::string& tower_fingerprint,
                               const std::vector<std::string>& ids,
                               const std::vector<std::string>& texts,
                               const std::function<torch::Tensor(const std::vector<std::string>&)>& encode,
                               const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace cwcl
