// The synthesised speech corpus of the experiments (docs/corpus.md).
#include <cwcl/data/text_inputs.h>
#include <cwcl/demo/demo.h>
#include <cwcl/error.h>
#include <cwcl/io/files.h>
#include <cwcl/runtime.h>
#include <cwcl/synth/synth.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <set>

namespace cwcl {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::vector<std::string> kTrainVoices = {"espeak:en-us",  "espeak:en-us+f2",    "espeak:en-us+m3",
                                               "espeak:en",     "espeak:en+f3",       "espeak:en-gb-x-rp",
                                               "espeak:en-029", "espeak:en-us-nyc+m5"};
const std::vector<std::string> kDevelVoices = {"espeak:en-gb-scotland+f4", "espeak:en-gb-x-gbclan+m2"};
// The test voices: a synthesiser never heard in training.
const std::vector<std::string> kFliteVoices = {"flite:kal16", "flite:slt", "flite:rms", "flite:awb"};
constexpr const char* kWordnet = "/usr/share/wordnet";
// Recorded human speech for testing only (Debian klettres-data, GPL-2+): two
// speakers, American (en) and British (en_GB) English, saying the letters and
// short words. Sounds that are not words (aw, ch, th) are left out.
const std::vector<std::pair<std::string, std::string>> kRealSpeakers = {{"en", "en-us"}, {"en_GB", "en-gb"}};
const std::set<std::string> kNotWords = {"aw", "ch", "th"};
constexpr size_t kWordnetExamples = 15000;

// Python's random.Random(seed).shuffle (MT19937 seeded by init_by_array,
// Matsumoto & Nishimura 1998; _randbelow by rejection on getrandbits), so
// that the corpus is the one the experiments were first run on.
class PythonRandom {
 public:
  explicit PythonRandom(uint32_t seed) {
    init(19650218u);
    const std::array<uint32_t, 1> key{seed};
    size_t i = 1, j = 0;
    for (size_t k = std::max<size_t>(kN, key.size()); k > 0; --k) {
      mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1664525u)) + key[j] + static_cast<uint32_t>(j);
      if (++i >= kN) mt_[0] = mt_[kN - 1], i = 1;
      if (++j >= key.size()) j = 0;
    }
    for (size_t k = kN - 1; k > 0; --k) {
      mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1566083941u)) - static_cast<uint32_t>(i);
      if (++i >= kN) mt_[0] = mt_[kN - 1], i = 1;
    }
    mt_[0] = 0x80000000u;
  }

  template <class T>
  void shuffle(std::vector<T>& x) {
    for (size_t i = x.size(); i-- > 1;) std::swap(x[i], x[below(i + 1)]);
  }

 private:
  static constexpr size_t kN = 624, kM = 397;

  void init(uint32_t s) {
    mt_[0] = s;
    for (size_t i = 1; i < kN; ++i) mt_[i] = 1812433253u * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + static_cast<uint32_t>(i);
    index_ = kN;
  }

  uint32_t next() {
    if (index_ >= kN) {
      for (size_t k = 0; k < kN; ++k) {
        const uint32_t y = (mt_[k] & 0x80000000u) | (mt_[(k + 1) % kN] & 0x7fffffffu);
        mt_[k] = mt_[(k + kM) % kN] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
      }
      index_ = 0;
    }
    uint32_t y = mt_[index_++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
  }

  size_t below(size_t n) {  // n < 2^32
    int k = 0;
    while ((size_t{1} << k) <= n) ++k;  // n.bit_length()
    size_t r;
    do r = next() >> (32 - k);
    while (r >= n);
    return r;
  }

  std::array<uint32_t, kN> mt_{};
  size_t index_ = kN;
};

bool is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f'); }

std::string strip(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && is_space(s[a])) ++a;
  while (b > a && is_space(s[b - 1])) --b;
  return s.substr(a, b - a);
}

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  std::string word;
  for (char c : s + " ") {
    if (!is_space(c)) word += c;
    else if (!word.empty()) out.push_back(word), word.clear();
  }
  return out;
}

// Lower case, letters, digits and apostrophes only, one space between words:
// the comparison key of utterances.
std::string normalise(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    const char l = static_cast<char>(std::tolower(c < 128 ? c : ' '));
    const bool kept = (l >= 'a' && l <= 'z') || (l >= '0' && l <= '9') || l == '\'' || l == ' ';
    out += kept && c < 128 ? l : ' ';
  }
  std::string joined;
  for (const auto& w : words(out)) joined += (joined.empty() ? "" : " ") + w;
  return joined;
}

// The quoted usage examples of every WordNet 3.0 synset (Debian
// wordnet-base), 3 to 20 words of ASCII.
std::vector<std::string> wordnet_examples() {
  std::set<std::string> out;
  for (const char* part : {"noun", "verb", "adj", "adv"}) {
    const std::string path = std::string(kWordnet) + "/data." + part;
    std::ifstream in(path, std::ios::binary);
    if (!in) throw DataError(path + ": cannot open (install wordnet-base: scripts/setup.sh)");
    for (std::string line; std::getline(in, line);) {
      const auto bar = line.find('|');
      if (line.rfind("  ", 0) == 0 || bar == std::string::npos) continue;
      const std::string gloss = line.substr(bar + 1);
      for (size_t open = gloss.find('"'); open != std::string::npos;) {
        const size_t close = gloss.find('"', open + 1);
        if (close == std::string::npos) break;
        const std::string example = gloss.substr(open + 1, close - open - 1);
        if (example.empty()) {  // "" is no example; its second quote may open one
          open = close;
          continue;
        }
        const auto n = words(example).size();
        const bool ascii = std::all_of(example.begin(), example.end(), [](char c) { return c >= 0; });
        if (n >= 3 && n <= 20 && ascii) out.insert(strip(example));
        open = gloss.find('"', close + 1);
      }
    }
  }
  return {out.begin(), out.end()};
}

struct SlurpLine {
  int64_t id;
  std::string sentence, intent;
};

std::vector<SlurpLine> read_slurp(const std::string& path) {
  std::vector<SlurpLine> out;
  const auto lines = read_lines(path);
  for (size_t i = 0; i < lines.size(); ++i) {
    try {
      const auto j = json::parse(lines[i]);
      out.push_back({j.at("slurp_id").get<int64_t>(), j.at("sentence").get<std::string>(), j.at("intent").get<std::string>()});
    } catch (const json::exception& e) {
      throw DataError(path + ":" + std::to_string(i + 1) + ": not a SLURP line (" + e.what() + ")");
    }
  }
  return out;
}

struct Sources {
  std::vector<SlurpLine> devel, test;
  std::vector<std::string> keywords, lm;
};

Sources read_sources(const CorpusOptions& o) {
  auto file = [&](const std::string& relative) {
    return o.data.empty() ? data_file(relative) : (fs::path(o.data) / relative).string();
  };
  Sources s;
  s.devel = read_slurp(file("slurp/devel.jsonl"));
  s.test = read_slurp(file("slurp/test.jsonl"));
  for (const auto& w : read_lines(file("keywords/speech_commands_v2.txt")))
    if (!strip(w).empty()) s.keywords.push_back(strip(w));
  s.lm = read_lines(file("slurp/lm.txt"));
  return s;
}

// SLURP training text plus WordNet examples, de-duplicated, without any
// utterance of SLURP devel or test or any Speech Commands word.
json write_training_text(const Sources& s, const fs::path& out) {
  std::set<std::string> excluded, seen;
  for (const auto* part : {&s.devel, &s.test})
    for (const auto& d : *part) excluded.insert(normalise(d.sentence));
  for (const auto& w : s.keywords) excluded.insert(normalise(w));
  json stats = {{"slurp", 0}, {"wordnet", 0}, {"excluded", 0}, {"duplicates", 0}};
  std::string text;
  auto add = [&](const std::string& utterance, const char* source) {
    const auto key = normalise(utterance);
    if (key.empty()) return;
    if (excluded.count(key)) return void(stats["excluded"] = stats["excluded"].get<int64_t>() + 1);
    if (!seen.insert(key).second) return void(stats["duplicates"] = stats["duplicates"].get<int64_t>() + 1);
    text += utterance + "\n";
    stats[source] = stats[source].get<int64_t>() + 1;
  };
  for (const auto& line : s.lm) add(strip(line), "slurp");
  auto examples = wordnet_examples();
  PythonRandom(0).shuffle(examples);
  for (const auto& e : examples) {
    if (stats["wordnet"].get<size_t>() >= kWordnetExamples) break;
    add(e, "wordnet");
  }
  write_text_atomically((out / "train_text.txt").string(), text);
  stats["train_total"] = stats["slurp"].get<int64_t>() + stats["wordnet"].get<int64_t>();
  stats["wordnet_candidates"] = examples.size();
  return stats;
}

std::string voice_name(const std::string& voice) { return voice.substr(voice.find(':') + 1); }

// The manifests of the labelled sets: SLURP test, each sentence one flite
// voice by its id; SLURP devel (validation, held-out espeak-ng voices);
// every Speech Commands word by every flite voice (kws10: the standard ten).
void write_test_manifests(const Sources& s, const fs::path& out) {
  std::string test, devel, kws;
  for (const auto& d : s.test)
    test += json{{"id", "t" + std::to_string(d.id)}, {"text", d.sentence}, {"intent", d.intent},
                 {"voice", kFliteVoices[static_cast<size_t>(d.id) % kFliteVoices.size()]}}.dump() + "\n";
  for (const auto& d : s.devel)
    devel += json{{"id", "d" + std::to_string(d.id)}, {"text", d.sentence}, {"intent", d.intent}}.dump() + "\n";
  for (size_t i = 0; i < s.keywords.size(); ++i)
    for (const auto& voice : kFliteVoices)
      kws += json{{"id", "kw-" + s.keywords[i] + "-" + voice_name(voice)}, {"text", s.keywords[i]},
                  {"keyword", s.keywords[i]}, {"kws10", i < 10}, {"voice", voice}}.dump() + "\n";
  write_text_atomically((out / "slurp_test.jsonl").string(), test);
  write_text_atomically((out / "slurp_devel.jsonl").string(), devel);
  write_text_atomically((out / "kws_test.jsonl").string(), kws);
}

// Sorted .ogg files of one folder, by stem.
std::vector<fs::path> recordings(const fs::path& folder) {
  if (!fs::is_directory(folder))
    throw DataError(folder.string() + ": no such folder (recorded speech comes from Debian's klettres-data: "
                    "scripts/setup.sh installs it)");
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(folder))
    if (e.path().extension() == ".ogg") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// The recorded sets (never trained on): real_words, each word a class (its
// text the word), and real_letters, the 26 letter names (the text the letter,
// as a transcript writes it).
json write_real_speech_manifests(const fs::path& root, const fs::path& out) {
  std::string words, letters;
  json counts = {{"words", 0}, {"letters", 0}};
  for (const auto& [folder, speaker] : kRealSpeakers) {
    for (const auto& f : recordings(root / folder / "syllab")) {
      const auto word = lower(f.stem().string());
      if (kNotWords.count(word)) continue;
      words += json{{"id", "rw-" + word + "-" + speaker}, {"audio", f.string()}, {"text", word}, {"word", word},
                    {"speaker", speaker}}.dump() + "\n";
      counts["words"] = counts["words"].get<int64_t>() + 1;
    }
    for (const auto& f : recordings(root / folder / "alpha")) {
      const auto letter = lower(f.stem().string());
      letters += json{{"id", "rl-" + letter + "-" + speaker}, {"audio", f.string()}, {"text", letter},
                      {"letter", letter}, {"speaker", speaker}}.dump() + "\n";
      counts["letters"] = counts["letters"].get<int64_t>() + 1;
    }
  }
  for (const auto& [part, text] : {std::pair{"real_words", &words}, {"real_letters", &letters}}) {
    fs::create_directories(out / part);
    write_text_atomically((out / part / "manifest.jsonl").string(), *text);
  }
  return counts;
}

bool has_lines(const fs::path& file) { return fs::exists(file) && fs::file_size(file) > 0; }

// One part of the corpus, synthesised unless its manifest is there.
json synthesise_part(const fs::path& input, const fs::path& folder, const std::vector<std::string>& voices,
                     const CorpusOptions& o, const std::function<void(const std::string&)>& log) {
  if (has_lines(folder / "manifest.jsonl")) return {{"reused", true}};
  SynthOptions so;
  so.voices = voices;
  so.workers = o.workers;
  so.out_dir = folder.string();
  log("synthesising " + input.string() + " into " + folder.string());
  const auto report = synthesize(synth_items(read_text_inputs(input.string())), so);
  if (report.failed > 0)
    throw DataError(folder.string() + ": " + std::to_string(report.failed) + " utterances failed to synthesise (first: " +
                    report.failures.front() + ")");
  return {{"utterances", report.total}, {"audio_seconds", report.audio_seconds}, {"seconds", report.wall_seconds}};
}

}  // namespace

std::string build_corpus(const CorpusOptions& o, const std::function<void(const std::string&)>& log_fn) {
  const auto log = log_fn ? log_fn : [](const std::string&) {};
  const fs::path out(o.out);
  fs::create_directories(out);
  const auto sources = read_sources(o);
  json report = {{"corpus", o.out}};
  if (!has_lines(out / "train_text.txt")) report["texts"] = write_training_text(sources, out);
  write_test_manifests(sources, out);
  report["recorded"] = write_real_speech_manifests(o.recorded_speech, out);
  if (o.texts_only) return report.dump();
  report["train"] = synthesise_part(out / "train_text.txt", out / "train", kTrainVoices, o, log);
  report["devel"] = synthesise_part(out / "slurp_devel.jsonl", out / "devel", kDevelVoices, o, log);
  report["slurp_test"] = synthesise_part(out / "slurp_test.jsonl", out / "slurp_test", kFliteVoices, o, log);
  report["kws_test"] = synthesise_part(out / "kws_test.jsonl", out / "kws_test", kFliteVoices, o, log);
  return report.dump();
}

}  // namespace cwcl
