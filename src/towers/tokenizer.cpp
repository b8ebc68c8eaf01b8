// WordPiece as in BERT (Devlin et al. 2019) and Hugging Face's BertTokenizer:
// the character classes (whitespace, control, punctuation, CJK) follow its
// BasicTokenizer; Unicode data (categories, NFD, lower case) from utf8proc.
#include <cwcl/error.h>
#include <cwcl/towers/tokenizer.h>

#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace cwcl {
namespace {

namespace fs = std::filesystem;
using Codepoints = std::vector<utf8proc_int32_t>;

Codepoints decode(const std::string& text) {
  Codepoints out;
  auto p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(text.size());
  while (left > 0) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
    if (n <= 0) {  // invalid byte: U+FFFD, which cleaning then drops
      out.push_back(0xFFFD);
      n = 1;
    } else {
      out.push_back(cp);
    }
    p += n;
    left -= n;
  }
  return out;
}

std::string encode_utf8(Codepoints::const_iterator begin, Codepoints::const_iterator end) {
  std::string out;
  utf8proc_uint8_t buf[4];
  for (auto it = begin; it != end; ++it) {
    auto n = utf8proc_encode_char(*it, buf);
    out.append(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
  }
  return out;
}

bool is_whitespace(utf8proc_int32_t cp) {
  return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' ||
         utf8proc_category(cp) == UTF8PROC_CATEGORY_ZS;
}

bool is_control(utf8proc_int32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  auto c = utf8proc_category(cp);
  return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF;
}

bool is_punctuation(utf8proc_int32_t cp) {
  // BERT counts every non-alphanumeric ASCII symbol as punctuation ($, ^, `...).
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
      (cp >= 123 && cp <= 126))
    return true;
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

// The CJK Unified Ideographs blocks (not Hangul or Kana), as BERT defines them.
bool is_cjk(utf8proc_int32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// NFD, then drop non-spacing marks.
void strip_accents(Codepoints& word) {
  Codepoints out;
  utf8proc_int32_t buf[32];
  for (auto cp : word) {
    int boundclass = 0;
    auto n = utf8proc_decompose_char(cp, buf, 32, UTF8PROC_DECOMPOSE, &boundclass);
    if (n < 0 || n > 32) {
      out.push_back(cp);
      continue;
    }
    for (utf8proc_ssize_t i = 0; i < n; ++i)
      if (utf8proc_category(buf[i]) != UTF8PROC_CATEGORY_MN) out.push_back(buf[i]);
  }
  word.swap(out);
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw DataError(path.string() + ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw DataError(path.string() + ": not valid JSON: " + e.what());
  }
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options,
                                       const std::string& source)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  for (size_t i = 0; i < vocab_.size(); ++i) ids_.emplace(vocab_[i], static_cast<int64_t>(i));
  auto require = [&](const std::string& token) {
    auto id = token_id(token);
    if (id < 0) throw DataError(source + ": vocabulary has no " + token + " token");
    return id;
  };
  unk_id_ = require(options_.unk_token);
  cls_id_ = require(options_.cls_token);
  sep_id_ = require(options_.sep_token);
  pad_id_ = require(options_.pad_token);
  if (options_.max_length < 2)
    throw DataError(source + ": max_length must leave room for [CLS] and [SEP]");
}

WordPieceTokenizer WordPieceTokenizer::from_folder(const std::string& folder) {
  const fs::path dir(folder);
  if (!fs::is_directory(dir)) throw DataError(folder + ": model folder not found");
  WordPieceOptions o;
  std::vector<std::string> vocab;
  std::string source;
  if (fs::exists(dir / "vocab.txt")) {
    source = (dir / "vocab.txt").string();
    std::ifstream in(dir / "vocab.txt");
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      vocab.push_back(line);
    }
  } else if (fs::exists(dir / "tokenizer.json")) {
    source = (dir / "tokenizer.json").string();
    auto j = read_json(dir / "tokenizer.json");
    auto model = j.find("model");
    if (model == j.end() || model->value("type", "") != "WordPiece" || !model->contains("vocab"))
      throw DataError(source + ": not a WordPiece tokenizer");
    const auto& v = (*model)["vocab"];
    vocab.resize(v.size());
    for (const auto& [token, id] : v.items()) {
      auto i = id.get<int64_t>();
      if (i < 0 || i >= static_cast<int64_t>(vocab.size()))
        throw DataError(source + ": token id " + std::to_string(i) + " out of range");
      vocab[static_cast<size_t>(i)] = token;
    }
  } else {
    throw DataError(folder + ": neither vocab.txt nor tokenizer.json");
  }
  if (fs::exists(dir / "tokenizer_config.json")) {
    auto c = read_json(dir / "tokenizer_config.json");
    auto text = [&](const char* key, std::string& field) {
      if (c.contains(key) && c[key].is_string()) field = c[key].get<std::string>();
    };
    if (c.contains("do_lower_case") && c["do_lower_case"].is_boolean())
      o.lower_case = c["do_lower_case"].get<bool>();
    o.strip_accents = c.contains("strip_accents") && c["strip_accents"].is_boolean()
                          ? c["strip_accents"].get<bool>()
                          : o.lower_case;
    if (c.contains("tokenize_chinese_chars") && c["tokenize_chinese_chars"].is_boolean())
      o.split_chinese_chars = c["tokenize_chinese_chars"].get<bool>();
    if (c.contains("model_max_length") && c["model_max_length"].is_number_integer())
      o.max_length = std::min<int64_t>(c["model_max_length"].get<int64_t>(), 512);
    text("unk_token", o.unk_token);
    text("cls_token", o.cls_token);
    text("sep_token", o.sep_token);
    text("pad_token", o.pad_token);
  }
  // sentence-transformers truncates at its own max_seq_length.
  if (fs::exists(dir / "sentence_bert_config.json")) {
    auto c = read_json(dir / "sentence_bert_config.json");
    if (c.contains("max_seq_length") && c["max_seq_length"].is_number_integer())
      o.max_length = c["max_seq_length"].get<int64_t>();
  }
  return WordPieceTokenizer(std::move(vocab), o, source);
}

int64_t WordPieceTokenizer::token_id(const std::string& token) const {
  auto it = ids_.find(token);
  return it == ids_.end() ? -1 : it->second;
}

std::vector<std::string> basic_tokenize(const std::string& text, const WordPieceOptions& options) {
  // Clean (drop NUL, U+FFFD and control characters; whitespace to ' ') and
  // put spaces around CJK ideographs, then split on whitespace.
  std::vector<Codepoints> words(1);
  auto space = [&] {
    if (!words.back().empty()) words.emplace_back();
  };
  for (auto cp : decode(text)) {
    if (cp == 0 || cp == 0xFFFD || is_control(cp)) continue;
    if (is_whitespace(cp)) {
      space();
    } else if (options.split_chinese_chars && is_cjk(cp)) {
      space();
      words.back().push_back(cp);
      space();
    } else {
      words.back().push_back(cp);
    }
  }
  std::vector<std::string> out;
  for (auto& word : words) {
    if (word.empty()) continue;
    if (options.lower_case)
      for (auto& cp : word) cp = utf8proc_tolower(cp);
    if (options.strip_accents) strip_accents(word);
    // Every punctuation character is a token of its own.
    auto start = word.begin();
    for (auto it = word.begin(); it != word.end(); ++it) {
      if (!is_punctuation(*it)) continue;
      if (start != it) out.push_back(encode_utf8(start, it));
      out.push_back(encode_utf8(it, it + 1));
      start = it + 1;
    }
    if (start != word.end()) out.push_back(encode_utf8(start, word.end()));
  }
  return out;
}

void WordPieceTokenizer::word_pieces(const std::string& word, std::vector<std::string>& out) const {
  const Codepoints cps = decode(word);
  if (static_cast<int64_t>(cps.size()) > options_.max_chars_per_word) {
    out.push_back(options_.unk_token);
    return;
  }
  std::vector<std::string> pieces;
  size_t start = 0;
  while (start < cps.size()) {
    size_t end = cps.size();
    std::string found;
    for (; end > start; --end) {
      std::string piece = encode_utf8(cps.begin() + static_cast<long>(start),
                                      cps.begin() + static_cast<long>(end));
      if (start > 0) piece = "##" + piece;
      if (ids_.count(piece)) {
        found = std::move(piece);
        break;
      }
    }
    if (found.empty()) {  // no piece matches: the whole word is unknown
      out.push_back(options_.unk_token);
      return;
    }
    pieces.push_back(std::move(found));
    start = end;
  }
  out.insert(out.end(), pieces.begin(), pieces.end());
}

std::vector<std::string> WordPieceTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  for (const auto& word : basic_tokenize(text, options_)) word_pieces(word, out);
  return out;
}

std::vector<int64_t> WordPieceTokenizer::encode(const std::string& text) const {
  const auto pieces = tokenize(text);
  const size_t keep = std::min(pieces.size(), static_cast<size_t>(options_.max_length - 2));
  std::vector<int64_t> ids;
  ids.reserve(keep + 2);
  ids.push_back(cls_id_);
  for (size_t i = 0; i < keep; ++i) {
    auto id = token_id(pieces[i]);
    ids.push_back(id < 0 ? unk_id_ : id);
  }
  ids.push_back(sep_id_);
  return ids;
}

}  // namespace cwcl
