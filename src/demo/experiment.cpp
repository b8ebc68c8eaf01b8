// The pieces the demo's parts share: training a variant, rows of the
// results table, choosing a map on validation, plots, publishing a model.
#include "experiment.h"

#include <cwcl/demo/emoji.h>

#include <cwcl/error.h>
#include <cwcl/eval/plot.h>
#include <cwcl/io/files.h>
#include <cwcl/runtime.h>

#include <nlohmann/json.hpp>

#include <algorithm>

namespace cwcl::demo {
namespace {

std::vector<double> metric_series(const std::string& run_dir, const std::string& key, std::vector<double>& steps) {
  std::vector<double> out;
  steps.clear();
  for (const auto& line : read_lines((fs::path(run_dir) / "metrics.jsonl").string())) {
    const auto j = nlohmann::json::parse(line);
    steps.push_back(j.at("step").get<double>());
    out.push_back(j.at(key).get<double>());
  }
  return out;
}

// Seconds of training steps, from the run's metrics (so that a reused run
// reports them too): each line covers the steps since the previous one.
double training_seconds(const std::string& dir, int64_t batch_size) {
  double seconds = 0;
  int64_t previous = 0;
  for (const auto& line : read_lines((fs::path(dir) / "metrics.jsonl").string())) {
    const auto j = nlohmann::json::parse(line);
    const auto step = j.at("step").get<int64_t>();
    seconds += static_cast<double>((step - previous) * batch_size) / j.at("samples_per_s").get<double>();
    previous = step;
  }
  return seconds;
}

}  // namespace

std::optional<DemoPart> part_of(const std::string& task, const std::string& weights) {
  if (weights.find(", batch ") != std::string::npos) return DemoPart::Batch;
  auto in = [&](const std::vector<std::string>& v) { return std::find(v.begin(), v.end(), task) != v.end(); };
  if (task == kSpeechValidation || in(kSpeechTasks)) return DemoPart::Speech;
  if (task == kImageValidation || in(kImageTasks)) return DemoPart::Image;
  return std::nullopt;
}

// Trains (or, when the run directory already holds its model, reuses) one
// run of a variant on a stage's configuration.
Run train_run(const Demo& d, TrainConfig c, const std::string& dir, const Variant& variant) {
  c.apply(variant.overlay);
  c.run.out = dir;
  d.log("training " + dir);
  TrainOptions options;
  options.resume = true;
  options.progress = d.progress;
  options.log = [&d](const std::string& m) { d.log("  " + m); };
  train(c, options);
  return {variant.name, dir, TrainConfig::from_file((fs::path(dir) / "config.toml").string()),
          training_seconds(dir, c.run.batch_size)};
}

ResultRow row(const std::string& task, const std::string& method, const TaskResult& r) {
  ResultRow out;
  out.task = task;
  out.method = method;
  out.top1 = r.classification.top1;
  out.top5 = r.classification.top5;
  out.n = r.classification.n;
  return out;
}

// A results row with its 95 % bootstrap interval of top-1 and, against CL on
// the same test items, the paired difference and its interval.
ResultRow row_with_intervals(const std::string& task, const std::string& method, const TaskResult& r,
                             const TaskResult* cl) {
  auto out = row(task, method, r);
  const auto iv = top1_intervals(r, cl);
  out.top1_ci = iv.top1;
  out.vs_cl = iv.difference;
  out.vs_cl_ci = iv.difference_ci;
  return out;
}

void curves_plot(const std::string& path, const std::string& title, const Run& cl, const Run& cwcl) {
  std::vector<PlotSeries> series;
  for (const auto* r : {&cl, &cwcl}) {
    PlotSeries s;
    s.name = r == &cl ? "CL" : "CWCL (" + r->name + ")";
    s.y = metric_series(r->dir, "loss", s.x);
    series.push_back(s);
  }
  write_line_plot_png(path, title, "step", "training loss", series);
}

// The cross-modal similarity of a few items per class, sorted by class.
torch::Tensor sorted_similarity(const TaskResult& r, const torch::Tensor& frozen_side, int64_t per_class,
                                int64_t max_classes) {
  std::vector<int64_t> rows;
  auto t = r.targets.accessor<int64_t, 1>();
  const int64_t classes = std::min<int64_t>(max_classes, r.class_embeddings.size(0));
  for (int64_t k = 0; k < classes; ++k) {
    int64_t taken = 0;
    for (int64_t i = 0; i < r.targets.size(0) && taken < per_class; ++i)
      if (t[i] == k) rows.push_back(i), ++taken;
  }
  auto idx = torch::tensor(rows, torch::kLong);
  return torch::mm(r.inputs.index_select(0, idx), frozen_side.index_select(0, idx).t());
}

// Does the automatic calibration match the best hand-picked map on validation?
CalibrationReport calibration_report(const std::map<std::string, double>& validation, const Preset& p, double tau) {
  CalibrationReport c;
  c.kernel_tau = tau;
  c.best_hand_picked_top1 = -1;
  for (const auto& [name, top1] : validation)
    if (p.variant(name).method == DemoMethod::CWCL && name != "kernel-calibrated" && top1 > c.best_hand_picked_top1)
      c.best_hand_picked = name, c.best_hand_picked_top1 = top1;
  c.calibrated_top1 = validation.at("kernel-calibrated");
  c.gap = c.best_hand_picked_top1 - c.calibrated_top1;
  return c;
}

// The model a run keeps: best.pt where validation chose one, else the last.
std::string kept_model(const Run& run) {
  const auto best = fs::path(run.dir) / "best.pt";
  return fs::exists(best) ? best.string() : run.dir;
}

// Copies a finished run to its published name (replacing an older one); the
// model it keeps becomes model.pt there.
void publish(const Run& run, const fs::path& to) {
  fs::remove_all(to);
  fs::create_directories(to);
  for (const auto* f : {"config.toml", "metrics.jsonl", "results.jsonl"})
    if (fs::exists(fs::path(run.dir) / f)) fs::copy_file(fs::path(run.dir) / f, to / f);
  const auto model = kept_model(run);
  fs::copy_file(fs::is_directory(model) ? fs::path(model) / "model.pt" : fs::path(model), to / "model.pt");
}

// A file of --data, or of cwcl's bundled data when --data is not given.
std::string data_path(const Demo& d, const std::string& relative) {
  return d.data.empty() ? data_file(relative) : (d.data / relative).string();
}

Ablation train_and_choose(Demo& d, PartSummary& part, const Stage& stage, const TrainConfig& base,
                          const std::string& prefix, const std::string& validation_set,
                          const std::function<double(TrainedModel&)>& validate,
                          const std::function<void(const std::string&, TrainedModel&)>& evaluate) {
  Ablation a;
  double best = -1;
  for (const auto& v : stage.variants) {
    auto run = train_run(d, base, (d.runs / (prefix + v.name)).string(), v);
    auto model = TrainedModel::load(run.dir);
    const double valid = validate(model);
    part.validation[validation_set][v.name] = valid;
    d.log(prefix + v.name + " validation score (" + validation_set + ") " + std::to_string(valid));
    if (v.method == DemoMethod::CWCL && valid > best) best = valid, a.chosen = v.name;
    evaluate(v.name, model);
    a.trained.emplace(v.name, run);
  }
  if (a.chosen.empty()) throw ConfigError(stage.base + ": the preset's variants include no CWCL map to choose");
  return a;
}

// The main rows: CL and the chosen CWCL, with the difference between them.
void add_main_rows(PartSummary& part, const std::string& task, const TaskResult& cl, const TaskResult& cwcl) {
  part.results.push_back(row_with_intervals(task, "cl", cl, nullptr));
  part.results.push_back(row_with_intervals(task, "cwcl", cwcl, &cl));
}

// One ablation row per variant not in `skip`, against the variants' own CL;
// `tag` says which tower they trained (the "weights" column).
void add_ablation_rows(PartSummary& part, const Preset& p, const std::string& task,
                       const std::map<std::string, TaskResult>& by_variant, const std::vector<std::string>& skip,
                       const std::string& tag) {
  const auto& cl = by_variant.at("cl");
  for (const auto& [name, r] : by_variant)
    if (std::find(skip.begin(), skip.end(), name) == skip.end()) {
      auto row = row_with_intervals(task, name_of(p.variant(name).method), r, &r == &cl ? nullptr : &cl);
      row.weights = name + tag;
      part.results.push_back(row);
    }
}

std::string manifest(const Demo& d, const std::string& part) {
  return (d.corpus / part / "manifest.jsonl").string();
}

std::string training_manifest(const Demo& d, const Stage& stage) {
  const auto path = manifest(d, stage.train_part);
  if (stage.train_part != "train" && !fs::exists(path))
    throw DataError("preset " + d.preset.name + ": train = \"" + stage.train_part + "\" needs " + path +
                    ", which is missing; build it with `make piper-corpus CORPUS=" + d.corpus.string() +
                    "` (docs/corpus.md)");
  return path;
}

SpeechTaskData speech_validation(const Demo& d) { return speech_tests(d, {kSpeechValidation}).front(); }

std::vector<SpeechTaskData> speech_tests(const Demo& d, const std::vector<std::string>& tasks) {
  struct Where {
    const char* part;
    const char* label_field;
    bool intent_labels;  ///< classes named by data/slurp/intent_labels.tsv, else the labels are the texts
    const char* filter_field;
  };
  static const std::map<std::string, Where> where = {
      {kSpeechValidation, {"devel", "intent", true, ""}},    {"slurp-intent", {"slurp_test", "intent", true, ""}},  {"kws-35", {"kws_test", "keyword", false, ""}},
      {"kws-10", {"kws_test", "keyword", false, "kws10"}},   {"real-words", {"real_words", "word", false, ""}},
      {"real-letters", {"real_letters", "letter", false, ""}}};
  std::vector<SpeechTaskData> out;
  for (const auto& task : tasks) {
    const auto& w = where.at(task);
    out.push_back(SpeechTaskData::load({task, manifest(d, w.part), w.label_field,
                                        w.intent_labels ? data_path(d, "slurp/intent_labels.tsv") : "",
                                        w.filter_field, ""}));
  }
  return out;
}

// The corpus, built first when a part of it is missing (cwcl corpus).
void ensure_corpus(const Demo& d) {
  for (const char* part : {"train", "devel", "slurp_test", "kws_test", "real_words", "real_letters"})
    if (!fs::exists(manifest(d, part))) {
      d.log(manifest(d, part) + " missing: building the corpus in " + d.corpus.string());
      CorpusOptions o;
      o.out = d.corpus.string();
      o.data = d.data.string();
      d.log(build_corpus(o, d.log));
      return;
    }
}

EmojiFiles emoji_benchmark(const Demo& d) {
  EmojiFiles e{d.corpus / "emoji", data_path(d, "emoji/templates.txt")};
  if (fs::exists(e.file("counts.json"))) return e;
  d.log(e.file("counts.json") + " missing: writing the emoji manifests in " + e.folder.string());
  EmojiBenchmarkOptions o;
  o.out = e.folder.string();
  o.templates = e.templates;
  build_emoji_benchmark(o, d.log);
  return e;
}

TrainConfig emoji_config(const Demo& d, const Stage& stage, const EmojiFiles& e) {
  auto c = stage.config;
  if (!c.image_manifests())
    throw ConfigError(stage.base + ": the demo's image stages train the colour tower (model.tower = \"resnet\")");
  c.data.train = e.file("train.jsonl");
  c.data.text_store = (d.runs / "emoji-captions.store.safetensors").string();
  c.eval.manifest = e.file("devel.jsonl");
  c.eval.labels = e.file("labels-devel.tsv");
  c.eval.templates = e.templates;
  return c;
}

TrainConfig batch_config(TrainConfig c, const BatchAxis& axis, int64_t batch) {
  c.run.batch_size = batch;
  c.run.steps = axis.steps(batch);
  c.optim.warmup = c.run.steps / 10;
  c.run.checkpoint_every = c.run.steps;
  c.run.accum_steps = axis.chunk > 0 && batch > axis.chunk ? batch / axis.chunk : 1;
  return c;
}

}  // namespace cwcl::demo
