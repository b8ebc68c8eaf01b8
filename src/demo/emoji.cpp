// Manifests of the emoji benchmark from the unpacked npm packages.
#include <cwcl/demo/emoji.h>
#include <cwcl/error.h>
#include <cwcl/eval/eval.h>  // read_templates
#include <cwcl/io/files.h>
#include <cwcl/runtime.h>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace cwcl {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kVendors[] = {"apple", "google", "twitter"};
constexpr const char* kSplits[] = {"train", "devel", "test"};

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw DataError(path + ": cannot open (fetch it with scripts/fetch_models.sh emoji)");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw DataError(path + ": not JSON (" + std::string(e.what()) + ")");
  }
}

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// emojibase writes some codes without the variation selector FE0F that
// emoji.json keeps ("00A9-FE0F" is "00A9" there).
std::string without_fe0f(std::string code) {
  for (auto at = code.find("-FE0F"); at != std::string::npos; at = code.find("-FE0F")) code.erase(at, 5);
  return code;
}

// emojibase entries by code, skin-tone variants included; each carries its
// base's tags when it has none of its own.
std::map<std::string, json> labels_by_code(const json& data) {
  std::map<std::string, json> out;
  for (const auto& e : data) {
    out[e.at("hexcode").get<std::string>()] = e;
    if (!e.contains("skins")) continue;
    for (auto s : e["skins"]) {
      if (!s.contains("tags") && e.contains("tags")) s["tags"] = e["tags"];
      out[s.at("hexcode").get<std::string>()] = s;
    }
  }
  return out;
}

const json& label_of(const std::map<std::string, json>& labels, const std::string& unified) {
  for (const auto& code : {unified, without_fe0f(unified)}) {
    const auto it = labels.find(code);
    if (it != labels.end()) return it->second;
  }
  throw DataError("emojibase-data: no label for the emoji " + unified);
}

// The captions of one drawing: its label through every template, and the
// label with its tags.
std::vector<std::string> captions(const json& label, const std::vector<std::string>& templates) {
  const auto text = label.at("label").get<std::string>();
  std::vector<std::string> out;
  for (const auto& t : templates) {
    const auto at = t.find("{}");
    out.push_back(t.substr(0, at) + text + t.substr(at + 2));
  }
  std::string tags;
  for (const auto& tag : label.value("tags", json::array())) tags += (tags.empty() ? "" : ", ") + tag.get<std::string>();
  if (!tags.empty()) out.push_back(text + " (" + tags + ")");
  return out;
}

std::string folder_or_cache(const std::string& given, const std::string& name) {
  return given.empty() ? model_folder(name) : given;
}

}  // namespace

int emoji_split(const std::string& unified) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  if (EVP_Digest(unified.data(), unified.size(), digest.data(), &size, EVP_sha256(), nullptr) != 1 || size < 4)
    throw InternalError("emoji_split: SHA-256 failed");
  const uint32_t head = (uint32_t{digest[0]} << 24) | (uint32_t{digest[1]} << 16) | (uint32_t{digest[2]} << 8) | digest[3];
  const auto bucket = head % 100;
  return bucket < 70 ? 0 : bucket < 80 ? 1 : 2;
}

std::string build_emoji_benchmark(const EmojiBenchmarkOptions& o, const std::function<void(const std::string&)>& log) {
  if (o.out.empty()) throw UsageError("build_emoji_benchmark: no output folder");
  const std::map<std::string, std::string> images = {
      {"apple", folder_or_cache(o.apple, "emoji-apple-16.0.0")},
      {"google", folder_or_cache(o.google, "emoji-google-16.0.0")},
      {"twitter", folder_or_cache(o.twitter, "emoji-twitter-16.0.0")}};
  const auto emoji = read_json((fs::path(images.at("apple")) / "emoji.json").string());
  const auto labels =
      labels_by_code(read_json((fs::path(folder_or_cache(o.emojibase, "emojibase-data-17.0.0")) / "en/data.json").string()));
  const auto templates = read_templates(o.templates.empty() ? data_file("emoji/templates.txt") : o.templates);
  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec) throw WriteError(o.out + ": cannot create (" + ec.message() + ")");

  std::map<std::string, std::string> manifests;  // file -> JSONL text
  std::string label_files[3];
  json counts = {{"concepts", json::object()}, {"drawings", json::object()}, {"missing_drawings", 0}};
  auto add = [&](const std::string& file, const json& line) {
    manifests[file] += line.dump() + "\n";
    counts["drawings"][file] = counts["drawings"].value(file, 0) + 1;
  };
  for (const auto& e : emoji) try {
    const auto unified = e.at("unified").get<std::string>();
    const int split = emoji_split(unified);
    const auto& base = label_of(labels, unified);
    const auto concept_text = base.at("label").get<std::string>();
    label_files[split] += unified + "\t" + concept_text + "\n";
    counts["concepts"][kSplits[split]] = counts["concepts"].value(kSplits[split], 0) + 1;
    std::vector<json> drawings{e};  // the base and its skin-tone variants
    if (e.contains("skin_variations") && e["skin_variations"].is_object())
      for (const auto& [tone, v] : e["skin_variations"].items()) drawings.push_back(v);
    for (const auto& d : drawings) {
      const auto code = d.at("unified").get<std::string>();
      const auto texts = captions(label_of(labels, code), templates);
      for (const char* vendor : kVendors) {
        if (!d.value(std::string("has_img_") + vendor, false)) {
          counts["missing_drawings"] = counts["missing_drawings"].get<int>() + 1;
          continue;
        }
        const auto file = (fs::path(images.at(vendor)) / "img" / vendor / "64" / d.at("image").get<std::string>()).string();
        const json line = {{"id", std::string(vendor) + "/" + lower(code)}, {"image", file}, {"texts", texts},
                           {"label", unified}, {"vendor", vendor}, {"concept", concept_text}};
        const bool twitter = std::string(vendor) == "twitter";
        if (split == 0) add(twitter ? "style.jsonl" : "train.jsonl", line);
        if (split == 1 && twitter) add("devel.jsonl", line);
        if (split == 2) add("unseen.jsonl", line);
      }
    }
  } catch (const json::exception& x) {
    throw DataError(images.at("apple") + "/emoji.json: an entry without the fields expected (" + x.what() + "): " +
                    shorten(e.dump()));
  }
  for (const auto& [file, text] : manifests) write_text_atomically((fs::path(o.out) / file).string(), text);
  for (int s = 0; s < 3; ++s)
    write_text_atomically((fs::path(o.out) / ("labels-" + std::string(kSplits[s]) + ".tsv")).string(),
                          "label\ttext\n" + label_files[s]);
  const auto summary = counts.dump();
  write_text_atomically((fs::path(o.out) / "counts.json").string(), summary + "\n");
  if (log) log("emoji: " + summary);
  return summary;
}

}  // namespace cwcl
