// Texts to embed, synthesise or classify, from a .txt file (one text per
// line, ids are line numbers) or a JSONL manifest (a text field, an id
// field, optionally a label field; the other fields are kept).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace cwcl {

struct TextInputs {
  std::vector<std::string> ids, texts;
  std::vector<std::string> labels;  ///< with a label field only
  /// Per input, every other field of its manifest line as JSON text (by name).
  std::vector<std::map<std::string, std::string>> other_fields;
};

struct TextInputOptions {
  std::string text_field = "text";
  std::string id_field = "id";  ///< a missing field: the line number
  std::string label_field;      ///< empty: no labels
};

/// Throws DataError naming the file and line for a line that is not a JSON
/// object, lacks the text (or label) field, has an id that is neither a
/// string nor an integer, or repeats an id; and for a file with no texts.
TextInputs read_text_inputs(const std::string& path, const TextInputOptions& options = {});

}  // namespace cwcl
