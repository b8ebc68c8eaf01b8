// Label files, label arguments and prompt templates.
#include <cwcl/error.h>
#include <cwcl/eval/eval.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_set>

namespace cwcl {

LabelSet LabelSet::read_tsv(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw DataError(path + ": cannot open");
  LabelSet out;
  std::unordered_set<std::string> names, texts;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string where = path + ":" + std::to_string(number);
    if (number == 1) continue;  // header
    if (line.empty()) throw DataError(where + ": empty line");
    auto tab = line.find('\t');
    if (tab == std::string::npos || line.find('\t', tab + 1) != std::string::npos)
      throw DataError(where + ": expected two tab-separated columns");
    auto name = line.substr(0, tab), text = line.substr(tab + 1);
    if (name.empty() || text.empty()) throw DataError(where + ": empty class name or label text");
    if (!names.insert(name).second) throw DataError(where + ": duplicate class '" + name + "'");
    if (!texts.insert(text).second)
      throw DataError(where + ": label text '" + text + "' is used twice (classes would be indistinguishable)");
    out.names.push_back(name);
    out.texts.push_back(text);
  }
  if (out.names.empty()) throw DataError(path + ": no classes");
  return out;
}

int64_t LabelSet::index_of(const std::string& name) const {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<int64_t>(i);
  return -1;
}

LabelSet LabelSet::subset(const std::vector<std::string>& wanted, const std::string& source) const {
  LabelSet out;
  for (const auto& name : wanted) {
    auto i = index_of(name);
    if (i < 0) throw DataError(source + ": class '" + name + "' has no label text");
    out.names.push_back(name);
    out.texts.push_back(texts[static_cast<size_t>(i)]);
  }
  return out;
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

LabelSet LabelSet::read(const std::string& argument) {
  namespace fs = std::filesystem;
  if (ends_with(argument, ".tsv")) return read_tsv(argument);
  const bool from_file = fs::is_regular_file(argument);
  if (!from_file && ends_with(argument, ".txt")) throw DataError(argument + ": cannot open");
  std::vector<std::string> items, where;
  if (from_file) {
    std::ifstream in(argument);
    std::string line;
    for (int64_t number = 1; std::getline(in, line); ++number) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      items.push_back(line);
      where.push_back(argument + ":" + std::to_string(number));
    }
  } else {
    std::stringstream in(argument);
    for (std::string item; std::getline(in, item, ',');) {
      items.push_back(item);
      where.push_back("--labels item " + std::to_string(items.size()));
    }
  }
  // A bad label file is bad data; a bad comma list a bad argument.
  auto bad = [&](const std::string& why) {
    if (from_file) throw DataError(why);
    throw UsageError(why);
  };
  LabelSet out;
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].empty()) bad(where[i] + ": empty label");
    if (!seen.insert(items[i]).second) bad(where[i] + ": duplicate label '" + items[i] + "'");
    out.names.push_back(items[i]);
    out.texts.push_back(items[i]);
  }
  if (out.names.empty()) bad(argument + ": no labels");
  return out;
}

std::vector<std::string> read_templates(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw DataError(path + ": cannot open");
  std::vector<std::string> out;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty() || line[0] == '#') continue;
    if (line.find("{}") == std::string::npos)
      throw DataError(path + ":" + std::to_string(number) + ": a template needs {} for the label");
    out.push_back(line);
  }
  if (out.empty()) throw DataError(path + ": no templates");
  return out;
}

}  // namespace cwcl
