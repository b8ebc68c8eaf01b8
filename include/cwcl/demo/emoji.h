// The emoji benchmark's manifests (docs/emoji.md): human-drawn emoji of three
// vendors with their CLDR English labels, split by concept.
#pragma once

#include <functional>
#include <string>

namespace cwcl {

struct EmojiBenchmarkOptions {
  std::string out;        ///< the folder the manifests and label files go to
  std::string templates;  ///< caption templates (empty: cwcl's data/emoji/templates.txt)
  /// The unpacked packages (empty: the models cache, scripts/fetch_models.sh emoji).
  std::string apple, google, twitter, emojibase;
};

/// Writes train.jsonl (Apple and Google drawings of train concepts, skin
/// tones included, captions from labels and tags through the templates),
/// devel.jsonl (Twitter, devel concepts), unseen.jsonl (every vendor, test
/// concepts), style.jsonl (Twitter, train concepts), labels-{train,devel,test}.tsv
/// (concept code and CLDR label) and counts.json. A concept's split is fixed
/// by its code alone: SHA-256(unified) first 4 bytes big endian mod 100,
/// 0-69 train, 70-79 devel, 80-99 test. Throws DataError naming a missing
/// package file or an emoji without a label. Returns counts.json's text.
std::string build_emoji_benchmark(const EmojiBenchmarkOptions& options,
                                  const std::function<void(const std::string&)>& log = {});

/// Which split (0 train, 1 devel, 2 test) the concept with this code is in.
int emoji_split(const std::string& unified);

}  // namespace cwcl
