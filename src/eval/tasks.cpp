#include <cwcl/data/fashion_mnist.h>
#include <cwcl/error.h>
#include <cwcl/eval/tasks.h>
#include <cwcl/io/files.h>

#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <unordered_map>

namespace cwcl {
namespace {

using json = nlohmann::json;

// Every line of a JSONL manifest by id (bad lines are skipped by the manifest
// reader already; here they are ignored).
std::unordered_map<std::string, json> lines_by_id(const std::string& path) {
  std::unordered_map<std::string, json> out;
  for (const auto& line : read_lines(path)) {
    try {
      auto j = json::parse(line);
      if (j.is_object() && j.contains("id") && j["id"].is_string()) out.emplace(j["id"].get<std::string>(), j);
    } catch (const json::exception&) {
    }
  }
  return out;
}

TaskResult classify(const std::string& task, const torch::Tensor& inputs, const torch::Tensor& classes,
                    const torch::Tensor& targets, const std::vector<std::string>& names) {
  TaskResult r;
  r.task = task;
  r.classification = zero_shot_classify(inputs, classes, targets, 5);
  r.class_names = names;
  r.inputs = inputs;
  r.class_embeddings = classes;
  r.targets = targets;
  return r;
}

Validation validation_of(const TaskResult& r) {
  Validation v;
  v.score = r.classification.top1;
  v.values = {{"top1", r.classification.top1}, {"top5", r.classification.top5}};
  if (r.retrieval) {
    v.values.emplace_back("r1_to_text", r.retrieval->a_to_b[0]);
    v.values.emplace_back("r1_from_text", r.retrieval->b_to_a[0]);
  }
  return v;
}

}  // namespace

SpeechTaskData SpeechTaskData::load(const SpeechTaskSpec& spec) {
  SpeechTaskData d;
  d.spec = spec;
  auto manifest = read_speech_manifest(spec.manifest);
  d.skipped = manifest.skipped;
  const auto fields = lines_by_id(spec.manifest);
  std::vector<std::pair<SpeechExample, std::string>> kept;
  std::set<std::string> classes;
  for (const auto& e : manifest.examples) {
    const auto& j = fields.at(e.id);
    if (!spec.filter_field.empty() && !(j.contains(spec.filter_field) && j[spec.filter_field] == true)) continue;
    if (!j.contains(spec.label_field) || !j[spec.label_field].is_string()) {
      ++d.skipped;
      continue;
    }
    const auto label = j[spec.label_field].get<std::string>();
    kept.emplace_back(e, label);
    classes.insert(label);
  }
  if (kept.empty()) throw DataError(spec.manifest + ": no line has a '" + spec.label_field + "' label");
  std::vector<std::string> names(classes.begin(), classes.end());
  if (spec.labels.empty()) {
    d.labels.names = names;
    d.labels.texts = names;
  } else {
    d.labels = LabelSet::read(spec.labels).subset(names, spec.manifest);
  }
  for (auto& [e, label] : kept) {
    d.examples.push_back(e);
    d.targets.push_back(d.labels.index_of(label));
  }
  if (!spec.templates.empty()) d.templates = read_templates(spec.templates);
  return d;
}

TaskResult evaluate_speech(TrainedModel& model, const TextTower& text, const SpeechTaskData& data) {
  const auto front = model.tower().front_end();
  const bool trimmed = model.config().data.trim_silence;
  const auto path = feature_cache_path(data.spec.manifest, front, 0, {}, trimmed);
  const auto cache = FeatureCache::open_or_build(path, data.examples, front, {}, {}, silence_trim(trimmed));
  auto all = model.embed_cache(cache, path + ".pooled.safetensors");
  std::unordered_map<std::string, int64_t> row_of;
  for (int64_t i = 0; i < cache.size(); ++i) row_of.emplace(cache.id(i), i);
  std::vector<int64_t> rows, targets;
  std::vector<std::string> texts, ids;
  for (size_t i = 0; i < data.examples.size(); ++i) {
    auto it = row_of.find(data.examples[i].id);
    // Unreadable audio (not in the cache) and clips the tower cannot take
    // whole are left out and counted in skipped.
    if (it == row_of.end() || !model.tower().accepts(cache.frames(it->second))) continue;
    rows.push_back(it->second);
    targets.push_back(data.targets[i]);
    texts.push_back(data.examples[i].text);
    ids.push_back(data.examples[i].id);
  }
  auto inputs = all.index_select(0, torch::tensor(rows, torch::kLong));
  auto classes = class_embeddings(text.encode, data.labels.texts, data.templates);
  auto r = classify(data.spec.name, inputs, classes, torch::tensor(targets, torch::kLong), data.labels.names);
  r.skipped = data.skipped + static_cast<int64_t>(data.examples.size() - rows.size());
  r.item_ids = std::move(ids);
  // Retrieval: each utterance against the ground-truth texts (repeated texts are one item).
  std::unordered_map<std::string, int64_t> group_of;
  std::vector<int64_t> groups;
  for (const auto& t : texts) groups.push_back(group_of.emplace(t, static_cast<int64_t>(group_of.size())).first->second);
  r.retrieval = retrieval(inputs, text.encode(texts), torch::tensor(groups, torch::kLong));
  return r;
}

TaskResult evaluate_text_bound(const TextTower& text, const SpeechTaskData& data) {
  std::vector<std::string> texts;
  for (const auto& e : data.examples) texts.push_back(e.text);
  auto classes = class_embeddings(text.encode, data.labels.texts, data.templates);
  auto r = classify(data.spec.name, text.encode(texts), classes, torch::tensor(data.targets, torch::kLong),
                    data.labels.names);
  r.skipped = data.skipped;
  return r;
}

TaskResult evaluate_images(TrainedModel& model, const TextTower& text, const ImageTaskSpec& spec) {
  const auto& c = model.config();
  if (c.image_manifests())
    throw UsageError(model.source() + ": a colour tower trained on an image manifest; evaluate it on one (--manifest)");
  const auto names = ClassNames::read(c.class_names_file()).names;
  const auto problem = classes_problem(spec.classes, static_cast<int64_t>(names.size()));
  if (!problem.empty()) throw UsageError(spec.name + " classes: " + problem);
  const auto train = [&] { return read_fashion_mnist(c.data.train, FashionMnistSplit::Train); };
  ImageSet set = spec.validation
                     ? split_training_images(train(), c.data.classes, c.data.valid_fraction,
                                             static_cast<uint64_t>(c.run.seed)).valid.only(spec.classes)
                     : read_fashion_mnist(c.data.train, FashionMnistSplit::Test).only(spec.classes);
  if (set.size() == 0) throw UsageError(spec.name + ": no images of the requested classes");
  std::vector<std::string> label_texts;
  for (auto k : spec.classes) label_texts.push_back(names.at(static_cast<size_t>(k)));
  // Targets are positions within spec.classes.
  std::vector<int64_t> position(names.size(), -1);
  for (size_t i = 0; i < spec.classes.size(); ++i) position[static_cast<size_t>(spec.classes[i])] = static_cast<int64_t>(i);
  auto targets = set.labels.clone();
  auto t = targets.accessor<int64_t, 1>();
  for (int64_t i = 0; i < targets.size(0); ++i) t[i] = position[static_cast<size_t>(t[i])];
  auto classes = class_embeddings(text.encode, label_texts, read_templates(c.templates_file()), spec.k);
  return classify(spec.name, model.embed_images(set.images), classes, targets, label_texts);
}

ImageManifestTaskData ImageManifestTaskData::load(const ImageManifestTaskSpec& spec) {
  ImageManifestTaskData d;
  d.spec = spec;
  auto manifest = read_image_manifest(spec.manifest, ImageManifestNeeds::Label);
  d.skipped = manifest.skipped;
  if (spec.labels.empty()) {
    std::set<std::string> present;
    for (const auto& e : manifest.examples) present.insert(e.label);
    d.labels.names.assign(present.begin(), present.end());
    d.labels.texts = d.labels.names;
  } else {
    d.labels = LabelSet::read(spec.labels);
  }
  for (auto& e : manifest.examples) {
    const auto k = d.labels.index_of(e.label);
    if (k < 0) {
      ++d.skipped;  // a class outside the label set cannot be scored
      continue;
    }
    d.targets.push_back(k);
    d.examples.push_back(std::move(e));
  }
  if (d.examples.empty())
    throw DataError(spec.manifest + ": no line has a label" + (spec.labels.empty() ? "" : " of " + spec.labels));
  if (!spec.templates.empty()) d.templates = read_templates(spec.templates);
  return d;
}

TaskResult evaluate_image_manifest(TrainedModel& model, const TextTower& text, const ImageManifestTaskData& data) {
  std::vector<torch::Tensor> images;
  std::vector<int64_t> targets;
  std::vector<std::string> ids;
  int64_t unreadable = 0;
  for (size_t i = 0; i < data.examples.size(); ++i) {
    try {
      images.push_back(model.read_image(data.examples[i].image));
    } catch (const DataError&) {
      ++unreadable;
      continue;
    }
    targets.push_back(data.targets[i]);
    ids.push_back(data.examples[i].id);
  }
  if (images.empty()) throw DataError(data.spec.manifest + ": no image could be read");
  const auto inputs = model.embed_images(torch::stack(images));
  const auto classes = class_embeddings(text.encode, data.labels.texts, data.templates);
  const auto target = torch::tensor(targets, torch::kLong);
  auto r = classify(data.spec.name, inputs, classes, target, data.labels.names);
  // Each image against its class's own text, without templates.
  r.retrieval = retrieval(inputs, text.encode(data.labels.texts).index_select(0, target), target);
  r.item_ids = std::move(ids);
  r.skipped = data.skipped + unreadable;
  return r;
}

Top1Intervals top1_intervals(const TaskResult& r, const TaskResult* baseline) {
  const auto mine = correct_top1(r.classification, r.targets);
  Top1Intervals out;
  out.top1 = bootstrap_accuracy(mine);
  if (baseline) {
    out.difference = r.classification.top1 - baseline->classification.top1;
    out.difference_ci = bootstrap_difference(mine, correct_top1(baseline->classification, baseline->targets));
  }
  return out;
}

std::vector<GroupTop1> top1_by_field(const TaskResult& r, const std::string& manifest, const std::string& field) {
  TORCH_CHECK(r.item_ids.size() == static_cast<size_t>(r.targets.size(0)), "top1_by_field: a speech result needed");
  const auto lines = lines_by_id(manifest);
  const auto correct = correct_top1(r.classification, r.targets);
  std::map<std::string, std::pair<int64_t, int64_t>> counts;  // value -> (right, n)
  for (size_t i = 0; i < r.item_ids.size(); ++i) {
    const auto it = lines.find(r.item_ids[i]);
    if (it == lines.end()) throw DataError(manifest + ": no line with id '" + r.item_ids[i] + "'");
    const auto& j = it->second;
    const std::string value = !j.contains(field)       ? "(none)"
                              : j[field].is_string() ? j[field].get<std::string>()
                                                     : j[field].dump();
    counts[value].first += correct[i] ? 1 : 0;
    counts[value].second += 1;
  }
  std::vector<GroupTop1> out;
  for (const auto& [value, c] : counts)
    out.push_back({value, c.second, static_cast<double>(c.first) / static_cast<double>(c.second)});
  return out;
}

Validator make_validator(const TrainConfig& c) {
  if (c.run.eval_every == 0) return {};
  if (c.modality() == Modality::Speech) {
    const SpeechTaskSpec spec{"validation", c.eval.manifest, c.eval.label_field, c.eval.labels, "", c.eval.templates};
    auto data = std::make_shared<SpeechTaskData>(SpeechTaskData::load(spec));
    return [data](TrainedModel& m, const TextTower& text) { return validation_of(evaluate_speech(m, text, *data)); };
  }
  if (c.image_manifests()) {
    const ImageManifestTaskSpec spec{"validation", c.eval.manifest, c.eval.labels, c.eval.templates};
    auto data = std::make_shared<ImageManifestTaskData>(ImageManifestTaskData::load(spec));
    return [data](TrainedModel& m, const TextTower& text) {
      return validation_of(evaluate_image_manifest(m, text, *data));
    };
  }
  const ImageTaskSpec spec{"fmnist-valid", c.data.classes, 1, true};
  return [spec](TrainedModel& m, const TextTower& text) { return validation_of(evaluate_images(m, text, spec)); };
}

}  // namespace cwcl
