#include <cwcl/error.h>
#include <cwcl/io/store.h>

#include <cwcl/io/safetensors.h>

#include <nlohmann/json.hpp>
#include <xxhash.h>

#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <unordered_set>

namespace cwcl {
namespace {

constexpr const char* kFormat = "cwcl-embedding-store/1";

std::string hex(XXH128_hash_t h) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return buf;
}

std::vector<std::string> string_list(const std::map<std::string, std::string>& meta,
                                     const std::string& key, const std::string& path) {
  auto it = meta.find(key);
  if (it == meta.end()) throw FormatError(path + ": embedding store has no '" + key + "' metadata");
  try {
    return nlohmann::json::parse(it->second).get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path + ": metadata '" + key + "' is not a JSON list of strings: " + e.what());
  }
}

}  // namespace

std::string fingerprint_files(const std::vector<std::string>& paths) {
  XXH3_state_t* state = XXH3_createState();
  XXH3_128bits_reset(state);
  std::vector<char> buffer(1 << 20);
  for (const auto& path : paths) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      XXH3_freeState(state);
      throw DataError(path + ": cannot open to fingerprint");
    }
    const auto name = std::filesystem::path(path).filename().string();
    XXH3_128bits_update(state, name.data(), name.size() + 1);
    while (in) {
      in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      XXH3_128bits_update(state, buffer.data(), static_cast<size_t>(in.gcount()));
    }
  }
  auto h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  return hex(h);
}

std::string content_key(const std::string& tower_fingerprint, const std::string& text) {
  std::string both = tower_fingerprint;
  both.push_back('\0');
  both += text;
  return hex(XXH3_128bits(both.data(), both.size()));
}

EmbeddingStore::EmbeddingStore(torch::Tensor embeddings, std::vector<std::string> ids,
                               std::vector<std::string> keys, std::string tower)
    : embeddings_(std::move(embeddings)), ids_(std::move(ids)), keys_(std::move(keys)),
      tower_(std::move(tower)) {
  TORCH_CHECK(embeddings_.dim() == 2, "EmbeddingStore: embeddings must be [N, D], got ",
              embeddings_.sizes());
  TORCH_CHECK(static_cast<int64_t>(ids_.size()) == embeddings_.size(0) &&
                  static_cast<int64_t>(keys_.size()) == embeddings_.size(0),
              "EmbeddingStore: ", embeddings_.size(0), " rows but ", ids_.size(), " ids and ",
              keys_.size(), " keys");
  embeddings_ = embeddings_.detach().to(torch::kCPU, torch::kFloat).contiguous();
  index();
}

void EmbeddingStore::index() {
  by_id_.clear();
  by_key_.clear();
  for (size_t i = 0; i < ids_.size(); ++i) {
    by_id_[ids_[i]] = static_cast<int64_t>(i);
    if (!keys_[i].empty()) by_key_[keys_[i]] = static_cast<int64_t>(i);
  }
}

EmbeddingStore EmbeddingStore::read(const std::string& path) {
  auto st = read_safetensors(path);
  auto format = st.metadata.find("format");
  if (format == st.metadata.end() || format->second != kFormat)
    throw FormatError(path + ": not a cwcl embedding store (metadata 'format' is not '" +
                      std::string(kFormat) + "')");
  auto it = st.tensors.find("embeddings");
  if (it == st.tensors.end() || it->second.dim() != 2)
    throw FormatError(path + ": embedding store needs an [N, D] tensor 'embeddings'");
  auto ids = string_list(st.metadata, "ids", path);
  auto keys = string_list(st.metadata, "keys", path);
  const auto n = it->second.size(0);
  if (static_cast<int64_t>(ids.size()) != n || static_cast<int64_t>(keys.size()) != n)
    throw FormatError(path + ": " + std::to_string(n) + " embeddings but " +
                      std::to_string(ids.size()) + " ids and " + std::to_string(keys.size()) +
                      " keys");
  auto tower = st.metadata.count("tower") ? st.metadata.at("tower") : std::string();
  return EmbeddingStore(it->second.to(torch::kFloat), std::move(ids), std::move(keys), tower);
}

void EmbeddingStore::write(const std::string& path) const {
  TORCH_CHECK(embeddings_.defined(), "EmbeddingStore: nothing to write to ", path);
  write_safetensors(path, {{"embeddings", embeddings_}},
                    {{"format", kFormat},
                     {"tower", tower_},
                     {"ids", nlohmann::json(ids_).dump()},
                     {"keys", nlohmann::json(keys_).dump()}});
}

int64_t EmbeddingStore::row_of_id(const std::string& id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? -1 : it->second;
}

int64_t EmbeddingStore::row_of_key(const std::string& key) const {
  auto it = by_key_.find(key);
  return it == by_key_.end() ? -1 : it->second;
}

torch::Tensor EmbeddingStore::lookup_ids(const std::vector<std::string>& ids) const {
  std::vector<int64_t> rows;
  rows.reserve(ids.size());
  for (const auto& id : ids) {
    auto r = row_of_id(id);
    if (r < 0) throw DataError("embedding store: no row with id '" + id + "'");
    rows.push_back(r);
  }
  return embeddings_.index_select(0, torch::tensor(rows, torch::kLong));
}

void EmbeddingStore::append(const torch::Tensor& embeddings, const std::vector<std::string>& ids,
                            const std::vector<std::string>& keys) {
  if (!embeddings_.defined()) {
    *this = EmbeddingStore(embeddings, ids, keys, tower_);
    return;
  }
  if (embeddings.dim() != 2 || embeddings.size(1) != dim())
    throw DataError("embedding store: cannot append " + c10::str(embeddings.sizes()) + " to a store of dimension " +
                    std::to_string(dim()) + " (another tower's store?)");
  TORCH_CHECK(static_cast<int64_t>(ids.size()) == embeddings.size(0) &&
                  static_cast<int64_t>(keys.size()) == embeddings.size(0),
              "EmbeddingStore: ", embeddings.size(0), " rows but ", ids.size(), " ids and ",
              keys.size(), " keys");
  embeddings_ = torch::cat({embeddings_, embeddings.detach().to(torch::kCPU, torch::kFloat)}, 0);
  ids_.insert(ids_.end(), ids.begin(), ids.end());
  keys_.insert(keys_.end(), keys.begin(), keys.end());
  index();
}

namespace {
constexpr int64_t kStoreChunk = 2048;  // texts encoded between two writes of the store
}  // namespace

torch::Tensor embed_with_store(const std::string& path, const std::string& tower,
                               const std::string& fingerprint, const std::vector<std::string>& ids,
                               const std::vector<std::string>& texts,
                               const std::function<torch::Tensor(const std::vector<std::string>&)>& encode,
                               const std::function<void(int64_t, int64_t)>& progress) {
  TORCH_CHECK(ids.size() == texts.size(), "embed_with_store: ", ids.size(), " ids for ", texts.size(),
              " texts");
  EmbeddingStore store;
  if (std::filesystem::exists(path)) store = EmbeddingStore::read(path);
  std::vector<std::string> keys;
  std::vector<std::string> missing_texts, missing_ids, missing_keys;
  std::unordered_set<std::string> queued;
  for (size_t i = 0; i < texts.size(); ++i) {
    keys.push_back(content_key(fingerprint, texts[i]));
    if (store.row_of_key(keys.back()) < 0 && queued.insert(keys.back()).second) {
      missing_texts.push_back(texts[i]);
      missing_ids.push_back(ids[i]);
      missing_keys.push_back(keys.back());
    }
  }
  // In chunks, the store written after each: a run stopped half-way keeps
  // what it embedded, and long encodes report progress.
  const auto total = static_cast<int64_t>(missing_texts.size());
  for (int64_t first = 0; first < total; first += kStoreChunk) {
    const auto n = std::min(kStoreChunk, total - first);
    auto part = [&](const std::vector<std::string>& v) {
      return std::vector<std::string>(v.begin() + first, v.begin() + first + n);
    };
    auto fresh = encode(part(missing_texts));
    TORCH_CHECK(fresh.dim() == 2 && fresh.size(0) == n, "embed_with_store: the tower returned ", fresh.sizes(),
                " for ", n, " texts");
    if (store.size() == 0) store = EmbeddingStore(fresh, part(missing_ids), part(missing_keys), tower);
    else store.append(fresh, part(missing_ids), part(missing_keys));
    store.write(path);
    if (progress) progress(first + n, total);
  }
  std::vector<int64_t> rows;
  for (const auto& k : keys) rows.push_back(store.row_of_key(k));
  return store.embeddings().index_select(0, torch::tensor(rows, torch::kLong));
}

}  // namespace cwcl
