// BERT's WordPiece tokenizer: basic tokenisation (text cleaning, CJK
// splitting, lower-casing, accent stripping, punctuation splitting), then
// greedy longest-match-first word pieces, as Hugging Face's BertTokenizer.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace cwcl {

struct WordPieceOptions {
  bool lower_case = true;
  /// Strip accents (NFD, drop combining marks). Hugging Face's default
  /// (strip_accents: null) follows lower_case.
  bool strip_accents = true;
  bool split_chinese_chars = true;
  /// Longest sequence including [CLS] and [SEP]; longer inputs are truncated.
  int64_t max_length = 256;
  /// Words longer than this many code points become [UNK].
  int64_t max_chars_per_word = 100;
  std::string unk_token = "[UNK]", cls_token = "[CLS]", sep_token = "[SEP]",
              pad_token = "[PAD]";
};

/// BERT's basic tokenisation alone (clean, split CJK, lower-case and strip
/// accents as the options say, split punctuation): words and punctuation
/// marks. Used before WordPiece and by word-vector towers.
std::vector<std::string> basic_tokenize(const std::string& text, const WordPieceOptions& options);

class WordPieceTokenizer {
 public:
  /// vocab: one token per line, id = line number. Throws std::runtime_error
  /// naming `source` when the special tokens are missing.
  WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options,
                     const std::string& source = "vocabulary");

  /// From a Hugging Face model folder: vocab.txt (or tokenizer.json's
  /// WordPiece vocabulary), tokenizer_config.json (do_lower_case,
  /// strip_accents, tokenize_chinese_chars, special tokens, model_max_length)
  /// and sentence_bert_config.json (max_seq_length) when present.
  static WordPieceTokenizer from_folder(const std::string& folder);

  /// Word pieces of a text (no special tokens, no truncation).
  std::vector<std::string> tokenize(const std::string& text) const;
  /// Ids with [CLS] ... [SEP], truncated to options().max_length.
  std::vector<int64_t> encode(const std::string& text) const;

  int64_t token_id(const std::string& token) const;  ///< -1 when absent
  int64_t pad_id() const { return pad_id_; }
  int64_t vocab_size() const { return static_cast<int64_t>(vocab_.size()); }
  const WordPieceOptions& options() const { return options_; }

 private:
  void word_pieces(const std::string& word, std::vector<std::string>& out) const;

  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int64_t> ids_;
  WordPieceOptions options_;
  int64_t unk_id_ = -1, cls_id_ = -1, sep_id_ = -1, pad_id_ = -1;
};

}  // namespace cwcl
