// cwcl demo: the experiments of DESIGN.md end to end. CL and CWCL get the
// same data, tower, seed, steps and schedule; only the loss differs. The
// weight map of the main CWCL row is chosen on validation data (SLURP devel
// spoken by held-out espeak-ng voices; held-out Fashion-MNIST training
// images), never on test. Speech: the ablation of maps runs on the frozen
// Whisper encoder (seconds per variant), then CL and the chosen map train
// the fine-tuned tower of the main rows.
#include "commands.h"
#include "tasks.h"

#include <cwcl/eval/plot.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

namespace cwcl::app {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Preset {
  int64_t speech_limit, speech_steps, speech_batch;  // the map ablation on the frozen encoder
  // The main speech rows: Whisper fine-tuned on every training utterance,
  // validated on devel every finetune_eval_every steps (the best is kept).
  int64_t finetune_steps, finetune_batch, finetune_eval_every, audio_copies;
  int64_t image_limit, image_steps, image_batch;
  bool every_image_variant;  // else the image ablation keeps only the maps without directions
};

Preset preset(const std::string& name) {
  if (name == "quick") return {8000, 300, 256, 500, 64, 250, 0, 12000, 200, 256, false};
  if (name == "full") return {0, 800, 256, 1500, 64, 500, 0, 0, 1000, 256, true};
  if (name == "smoke") return {0, 4, 8, 2, 8, 1, 1, 256, 4, 32, false};  // tests: every stage, tiny inputs
  throw UsageError("--preset: '" + name + "' is not quick, full or smoke");
}

// One variant of the ablation: a name, the table's method (cl, cwcl or the
// cosine baseline) and the config keys it sets.
struct Variant {
  std::string name;  // cl, or the weight map
  std::string method;
  std::vector<std::string> set;
};

// The ablation: the paper's affine map, centred, sharper maps, the automatic
// calibration (the kernel's bandwidth set for 4 effective positives per
// row), class labels where the data has them; which directions the affine,
// kernel and calibrated maps weight (-f2t: rows of the frozen side only,
// -t2f: rows of the trained side only; plain CL in the other); and the
// regression baseline (cosine alone, and added to CL). Without
// every_variant: the maps alone (both directions, no baselines).
std::vector<Variant> variants(bool with_labels, bool every_variant) {
  std::vector<Variant> v = {
      {"cl", "cl", {"loss.kind=cl"}},
      {"affine", "cwcl", {"loss.kind=cwcl", "loss.weights=affine"}},
      {"affine-centred", "cwcl", {"loss.kind=cwcl", "loss.weights=affine", "loss.center=true"}},
      {"power-8", "cwcl", {"loss.kind=cwcl", "loss.weights=power", "loss.gamma=8"}},
      {"kernel-0.05", "cwcl", {"loss.kind=cwcl", "loss.weights=kernel", "loss.kernel_tau=0.05"}},
      {"kernel-0.2", "cwcl", {"loss.kind=cwcl", "loss.weights=kernel", "loss.kernel_tau=0.2"}},
      {"kernel-calibrated", "cwcl", {"loss.kind=cwcl", "loss.weights=kernel", "loss.calibrate=4"}},
  };
  if (with_labels) v.push_back({"labels", "cwcl", {"loss.kind=cwcl", "loss.weights=labels"}});
  if (!every_variant) return v;
  for (const std::string base : {"affine", "kernel-0.2", "kernel-calibrated"}) {
    const auto keys = std::find_if(v.begin(), v.end(), [&](const Variant& x) { return x.name == base; })->set;
    for (const auto& [suffix, directions] : {std::pair{"-f2t", "frozen_to_trained"}, {"-t2f", "trained_to_frozen"}}) {
      auto set = keys;
      set.push_back(std::string("loss.directions=") + directions);
      v.push_back({base + suffix, "cwcl", set});
    }
  }
  v.push_back({"cosine", "cosine", {"loss.kind=cosine"}});
  v.push_back({"cl+cosine", "cl+cosine", {"loss.kind=cl", "loss.cosine_weight=1"}});
  return v;
}

// The table's method of a variant name.
std::string method_of(const std::string& name) {
  for (const auto& v : variants(true, true))
    if (v.name == name) return v.method;
  return "cwcl";
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Run {
  std::string name, dir;
  TrainConfig config;
  double train_seconds = 0;
};

// Trains (or, when the run directory already holds its model, reuses) one run.
Run train_run(const TrainConfig& base, const std::string& dir, const std::string& name,
              const std::vector<std::string>& set) {
  TrainConfig c = base;
  for (const auto& s : set) c.set(s);
  c.run.out = dir;
  std::cerr << "demo: training " << dir << "\n";
  auto options = console_train_options(/*resume=*/true, "  ");
  options.validate = make_validation(c);
  train(c, options);
  // Training time from the run's own metrics, so that a reused run reports it too.
  double seconds = 0;
  for (const auto& line : read_lines((fs::path(dir) / "metrics.jsonl").string())) {
    auto j = nlohmann::json::parse(line);
    seconds += static_cast<double>(c.run.log_every * c.run.batch_size) / j["samples_per_s"].get<double>();
  }
  return {name, dir, TrainConfig::from_file((fs::path(dir) / "config.toml").string()), seconds};
}

json row(const std::string& task, const std::string& method, const TaskResult& r) {
  return {{"task", task}, {"method", method}, {"top1", r.classification.top1}, {"top5", r.classification.top5},
          {"n", r.classification.n}};
}

// A results row with its 95 % bootstrap interval of top-1 and, against CL on
// the same test items, the paired difference and its interval (so that a
// 1-point difference is not read as a result).
json row_with_intervals(const std::string& task, const std::string& method, const TaskResult& r,
                        const TaskResult& cl) {
  auto j = row(task, method, r);
  const auto iv = top1_intervals(r, &r == &cl ? nullptr : &cl);
  j["top1_ci"] = iv["top1_ci"];
  if (iv.contains("difference")) {
    j["vs_cl"] = iv["difference"];
    j["vs_cl_ci"] = iv["difference_ci"];
  }
  return j;
}

std::vector<double> metric_series(const std::string& run_dir, const std::string& key, std::vector<double>& steps) {
  std::vector<double> out;
  steps.clear();
  for (const auto& line : read_lines((fs::path(run_dir) / "metrics.jsonl").string())) {
    auto j = json::parse(line);
    steps.push_back(j["step"].get<double>());
    out.push_back(j[key].get<double>());
  }
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
torch::Tensor sorted_similarity(const TaskResult& r, const torch::Tensor& frozen_side, int64_t per_class, int64_t max_classes) {
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
json calibration_report(const json& validation, double tau) {
  std::string best;
  double best_top1 = -1;
  for (const auto& [name, v] : validation.items())
    if (method_of(name) == "cwcl" && name != "kernel-calibrated" && v.get<double>() > best_top1)
      best = name, best_top1 = v.get<double>();
  const double calibrated = validation.at("kernel-calibrated").get<double>();
  return {{"kernel_tau", tau}, {"calibrated_top1", calibrated}, {"best_hand_picked", best},
          {"best_hand_picked_top1", best_top1}, {"gap", best_top1 - calibrated}};
}

std::string pct(double v) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(1) << 100 * v;
  return s.str();
}

void write_markdown(const std::string& path, const json& summary) {
  std::ofstream md(path);
  md << "# cwcl demo: CL vs CWCL (preset `" << summary["preset"].get<std::string>() << "`)\n\n";
  md << "Zero-shot top-1 / top-5 accuracy (%) on test sets; `cwcl` uses the weight map chosen on validation ("
     << "speech: `" << summary["chosen"].value("speech", "-") << "`, image: `" << summary["chosen"].value("image", "-")
     << "`). Rows with a variant name are the ablation: weight maps, the directions they weight (-f2t: frozen to trained only, -t2f: trained to frozen only) and the regression baseline (cosine, cl+cosine). "
     << "Speech: the main rows use the fine-tuned Whisper tower; the ablation rows (\", frozen\") the frozen encoder, "
     << "each against the frozen CL row.\n\n";
  md << "Intervals: 95 % percentile bootstrap over the test items (2,000 resamplings); the difference from CL is "
        "paired (both models judged on the same resampled items).\n\n";
  md << "| task | method | weights | top-1 | 95 % CI | vs CL (95 % CI) | top-5 | n |\n"
        "| --- | --- | --- | ---: | --- | --- | ---: | ---: |\n";
  auto interval = [](const json& r, const char* key) {
    return r.contains(key) ? pct(r[key][0].get<double>()) + " to " + pct(r[key][1].get<double>()) : std::string();
  };
  for (const auto& r : summary["results"]) {
    const std::string vs = r.contains("vs_cl") ? pct(r["vs_cl"].get<double>()) + " (" + interval(r, "vs_cl_ci") + ")"
                                               : std::string();
    md << "| " << r["task"].get<std::string>() << " | " << r["method"].get<std::string>() << " | "
       << r.value("weights", "") << " | " << pct(r["top1"].get<double>()) << " | " << interval(r, "top1_ci") << " | "
       << vs << " | " << pct(r["top5"].get<double>()) << " | " << r["n"].get<int64_t>() << " |\n";
  }
  if (summary.contains("validation")) {
    md << "\nValidation top-1 (%) used to choose the map:\n\n| task | variant | top-1 |\n| --- | --- | ---: |\n";
    for (const auto& [task, by] : summary["validation"].items())
      for (const auto& [name, v] : by.items()) md << "| " << task << " | " << name << " | " << pct(v.get<double>()) << " |\n";
  }
  if (summary.contains("calibration")) {
    md << "\nAutomatic calibration (kernel bandwidth for 4 effective positives per row) against the best hand-picked map, "
       << "validation top-1 (%):\n\n| task | calibrated tau | calibrated | best hand-picked | its top-1 |\n| --- | ---: | ---: | --- | ---: |\n";
    for (const auto& [task, c] : summary["calibration"].items())
      md << "| " << task << " | " << std::setprecision(3) << c["kernel_tau"].get<double>() << " | "
         << pct(c["calibrated_top1"].get<double>()) << " | " << c["best_hand_picked"].get<std::string>() << " | "
         << pct(c["best_hand_picked_top1"].get<double>()) << " |\n";
  }
  if (summary.contains("templates")) {
    md << "\nFashion-MNIST top-1 (%) by number of prompt templates k:\n\n| task | method | k | top-1 |\n| --- | --- | ---: | ---: |\n";
    for (const auto& r : summary["templates"])
      md << "| " << r["task"].get<std::string>() << " | " << r["method"].get<std::string>() << " | " << r["k"].get<int64_t>()
         << " | " << pct(r["top1"].get<double>()) << " |\n";
  }
  if (summary.contains("finetuned")) {
    md << "\nSpeech main rows: Whisper, top 2 blocks fine-tuned (bf16, attention pooling), the model at the best "
          "SLURP devel top-1; the rows marked frozen are the map ablation on the frozen encoder.\n\n"
       << "| method | weights | model | train s |\n| --- | --- | --- | ---: |\n";
    for (const auto& [method, f] : summary["finetuned"].items())
      md << "| " << method << " | " << f["weights"].get<std::string>() << " | " << f["model"].get<std::string>()
         << " | " << static_cast<int64_t>(f["train_seconds"].get<double>()) << " |\n";
  }
  md << "\nPlots: ";
  for (const auto& p : summary["plots"]) md << "[" << p.get<std::string>() << "](" << p.get<std::string>() << ") ";
  md << "\n\nTotal time: " << static_cast<int64_t>(summary["seconds"].get<double>()) << " s.\n";
}

// The model a run keeps: best.pt where validation chose one, else the last.
std::string kept_model(const Run& run) {
  const auto best = fs::path(run.dir) / "best.pt";
  return fs::exists(best) ? best.string() : run.dir;
}

// Copies a finished run to its published name (replacing an older one); the
// model it keeps becomes model.pt there.
void publish(const Run& run, const std::string& to) {
  fs::remove_all(to);
  fs::create_directories(to);
  for (const auto* f : {"config.toml", "metrics.jsonl"}) fs::copy_file(fs::path(run.dir) / f, fs::path(to) / f);
  const auto model = kept_model(run);
  fs::copy_file(fs::is_directory(model) ? fs::path(model) / "model.pt" : fs::path(model), fs::path(to) / "model.pt");
  if (fs::exists(fs::path(run.dir) / "results.jsonl"))
    fs::copy_file(fs::path(run.dir) / "results.jsonl", fs::path(to) / "results.jsonl");
}

// What every experiment of one demo run shares.
struct Demo {
  Preset preset;
  fs::path out, corpus, runs, data;
  TextTower text;
  json summary;
};

// A file of --data, or of cwcl's bundled data when --data is not given.
std::string data_path(const Demo& d, const std::string& relative) {
  return d.data.empty() ? data_file(relative) : (d.data / relative).string();
}

// Trains every variant, validates each, and picks the best CWCL variant on
// validation (never on test). evaluate(run, model) fills that variant's test
// results; returns the runs by variant name and the chosen name.
struct Ablation {
  std::map<std::string, Run> trained;
  std::string chosen;
};

Ablation train_and_choose(Demo& d, const TrainConfig& base, const std::string& prefix,
                          const std::vector<Variant>& variants, const std::string& validation_key,
                          const std::function<double(TrainedModel&)>& validate,
                          const std::function<void(const std::string&, TrainedModel&)>& evaluate) {
  Ablation a;
  double best = -1;
  for (const auto& v : variants) {
    auto run = train_run(base, (d.runs / (prefix + v.name)).string(), v.name, v.set);
    auto model = TrainedModel::load(run.dir);
    const double valid = validate(model);
    d.summary["validation"][validation_key][v.name] = valid;
    std::cerr << "demo: " << prefix << v.name << " validation top-1 " << valid << "\n";
    if (v.method == "cwcl" && valid > best) best = valid, a.chosen = v.name;
    evaluate(v.name, model);
    a.trained.emplace(v.name, run);
  }
  return a;
}

// The main rows: CL and the chosen CWCL, with the difference between them.
void add_main_rows(json& summary, const std::string& task, const TaskResult& cl, const TaskResult& cwcl) {
  summary["results"].push_back(row_with_intervals(task, "cl", cl, cl));
  summary["results"].push_back(row_with_intervals(task, "cwcl", cwcl, cl));
}

// One ablation row per variant not in `skip`, against the variants' own CL;
// `tag` says which tower they trained (the "weights" column).
void add_ablation_rows(json& summary, const std::string& task, const std::map<std::string, TaskResult>& by_variant,
                       const std::vector<std::string>& skip, const std::string& tag) {
  const auto& cl = by_variant.at("cl");
  for (const auto& [name, r] : by_variant)
    if (std::find(skip.begin(), skip.end(), name) == skip.end()) {
      auto j = row_with_intervals(task, method_of(name), r, cl);
      j["weights"] = name + tag;
      summary["results"].push_back(j);
    }
}

TrainConfig speech_base(const Demo& d) {
  TrainConfig base;
  base.model = WhisperTowerSpec{};  // frozen encoder, mean pooling, MLP head
  base.data.train = (d.corpus / "train" / "manifest.jsonl").string();
  base.data.limit = d.preset.speech_limit;
  base.run.steps = d.preset.speech_steps;
  base.run.batch_size = d.preset.speech_batch;
  base.run.checkpoint_every = 500;
  base.optim.warmup = 100;
  base.optim.lr = 1e-3;
  base.optim.weight_decay = 0.05;
  return base;
}

// The tower of the main speech rows (configs/speech_top2.toml): Whisper's top
// 2 blocks fine-tuned in bf16 autocast with attention pooling, validated on
// SLURP devel; the model evaluated is best.pt, the step with the best devel top-1.
TrainConfig speech_finetuned(const Demo& d, const std::string& labels) {
  TrainConfig c;
  WhisperTowerSpec w;
  w.training = WhisperTraining::TopBlocks;
  w.top_blocks = 2;
  w.pooling = Pooling::Attention;
  c.model = w;
  c.data.train = (d.corpus / "train" / "manifest.jsonl").string();
  c.data.audio_copies = d.preset.audio_copies;
  c.run.steps = d.preset.finetune_steps;
  c.run.batch_size = d.preset.finetune_batch;
  c.run.eval_every = d.preset.finetune_eval_every;
  c.run.precision = Precision::Bf16;
  c.run.threads = 2;
  c.run.checkpoint_every = 250;
  c.eval.manifest = (d.corpus / "devel" / "manifest.jsonl").string();
  c.eval.label_field = "intent";
  c.eval.labels = labels;
  c.optim.lr = 1e-3;
  c.optim.warmup = std::min<int64_t>(100, d.preset.finetune_steps / 10);
  return c;
}


// Trains the fine-tuned tower with CL and with the chosen map, evaluates
// each kept model on every test (main[i]["cl" | "cwcl"]) and records the
// runs in summary["finetuned"]. Returns the runs by method.
std::map<std::string, Run> train_finetuned(Demo& d, const std::string& labels, const std::string& chosen,
                                           const std::vector<SpeechTaskData>& tests,
                                           std::vector<std::map<std::string, TaskResult>>& main) {
  const auto tuned = speech_finetuned(d, labels);
  const auto all = variants(/*with_labels=*/false, /*every_variant=*/true);
  std::map<std::string, Run> runs;
  for (const auto& [method, name] : {std::pair<std::string, std::string>{"cl", "cl"}, {"cwcl", chosen}}) {
    const auto& v = *std::find_if(all.begin(), all.end(), [&](const Variant& x) { return x.name == name; });
    auto run = train_run(tuned, (d.runs / ("speech-finetuned-" + name)).string(), name, v.set);
    auto model = TrainedModel::load(kept_model(run));
    for (size_t i = 0; i < tests.size(); ++i) main[i].emplace(method, evaluate_speech(model, d.text, tests[i]));
    d.summary["finetuned"][method] = {{"run", run.dir}, {"model", kept_model(run)}, {"weights", name},
                                      {"train_seconds", run.train_seconds}};
    runs.emplace(method, run);
  }
  return runs;
}

// Training curves of the two main runs, and SLURP test utterances against
// their own texts (6 per intent, first 12 intents).
void speech_plots(Demo& d, const std::map<std::string, Run>& runs, const std::map<std::string, TaskResult>& slurp,
                  const SpeechTaskData& slurp_data) {
  curves_plot((d.out / "speech_curves.png").string(), "speech: training loss", runs.at("cl"), runs.at("cwcl"));
  std::vector<std::string> texts;
  for (const auto& e : slurp_data.examples) texts.push_back(e.text);
  auto frozen_side = d.text.encode(texts);
  write_heatmaps_png((d.out / "speech_similarity.png").string(),
                     {sorted_similarity(slurp.at("cl"), frozen_side, 6, 12),
                      sorted_similarity(slurp.at("cwcl"), frozen_side, 6, 12)},
                     {"CL: speech x text", "CWCL: speech x text"}, 6);
  d.summary["plots"].push_back("speech_curves.png");
  d.summary["plots"].push_back("speech_similarity.png");
}

// Frozen-encoder ablation of every map (chosen on devel), then the
// fine-tuned tower trained with CL and with the chosen map: the main rows.
void speech_experiments(Demo& d) {
  for (const char* part : {"train", "devel", "slurp_test", "kws_test"})
    if (!fs::exists(d.corpus / part / "manifest.jsonl"))
      throw DataError((d.corpus / part / "manifest.jsonl").string() +
                      ": missing; build the corpus with scripts/make_corpus.sh " + d.corpus.string());
  const std::string labels = data_path(d, "slurp/intent_labels.tsv");
  auto manifest = [&](const char* part) { return (d.corpus / part / "manifest.jsonl").string(); };
  auto devel = SpeechTaskData::load({"slurp-devel", manifest("devel"), "intent", labels, "", ""});
  std::vector<SpeechTaskData> tests = {
      SpeechTaskData::load({"slurp-intent", manifest("slurp_test"), "intent", labels, "", ""}),
      SpeechTaskData::load({"kws-35", manifest("kws_test"), "keyword", "", "", ""}),
      SpeechTaskData::load({"kws-10", manifest("kws_test"), "keyword", "", "kws10", ""}),
  };
  std::vector<std::map<std::string, TaskResult>> frozen(tests.size());  // per test: variant -> result
  auto a = train_and_choose(
      d, speech_base(d), "speech-", variants(/*with_labels=*/false, /*every_variant=*/true), "slurp-devel",
      [&](TrainedModel& m) { return evaluate_speech(m, d.text, devel).classification.top1; },
      [&](const std::string& name, TrainedModel& m) {
        for (size_t i = 0; i < tests.size(); ++i) frozen[i].emplace(name, evaluate_speech(m, d.text, tests[i]));
      });
  auto& summary = d.summary;
  summary["chosen"]["speech"] = a.chosen;
  summary["calibration"]["speech"] =
      calibration_report(summary["validation"]["slurp-devel"], a.trained.at("kernel-calibrated").config.loss.kernel_tau);

  // The main rows: the fine-tuned tower, CL and the chosen map.
  std::vector<std::map<std::string, TaskResult>> main(tests.size());  // per test: cl / cwcl -> result
  const auto runs = train_finetuned(d, labels, a.chosen, tests, main);
  for (size_t i = 0; i < tests.size(); ++i) {
    const auto& name = tests[i].spec.name;
    add_main_rows(summary, name, main[i].at("cl"), main[i].at("cwcl"));
    add_ablation_rows(summary, name, frozen[i], {}, ", frozen");
    summary["results"].push_back(row(name, "text-bound", evaluate_text_bound(d.text, tests[i])));
    if (main[i].at("cwcl").has_retrieval)
      summary["retrieval"][name] = {{"cl", main[i].at("cl").to_json(false)["retrieval"]},
                                    {"cwcl", main[i].at("cwcl").to_json(false)["retrieval"]}};
  }
  publish(runs.at("cl"), (d.out / "speech-cl").string());
  publish(runs.at("cwcl"), (d.out / "speech-cwcl").string());
  speech_plots(d, runs, main[0], tests[0]);
}

TrainConfig image_base(const Demo& d) {
  TrainConfig base;
  base.model = ImageTowerSpec{};
  base.data.train = "/usr/share/datasets/fashion-mnist";
  base.data.limit = d.preset.image_limit;
  base.run.steps = d.preset.image_steps;
  base.run.batch_size = d.preset.image_batch;
  base.run.threads = 2;
  base.run.checkpoint_every = 500;
  base.optim.warmup = 50;
  base.optim.lr = 2e-3;
  base.data.text_store = (d.runs / "fmnist-captions.store.safetensors").string();
  base.data.class_names = data_path(d, "fashion-mnist/classes.tsv");
  base.data.templates = data_path(d, "fashion-mnist/templates.txt");
  return base;
}

// Top-1 against k = 1, 5, 10 templates for CL and the chosen CWCL: a plot and summary rows.
void template_plot(Demo& d, const std::string& task, const std::map<std::string, std::map<int64_t, TaskResult>>& by_k,
                   const std::string& chosen) {
  std::vector<PlotSeries> series;
  for (const auto& name : {std::string("cl"), chosen}) {
    PlotSeries s;
    s.name = name == "cl" ? "CL" : "CWCL (" + name + ")";
    for (const auto& [k, r] : by_k.at(name)) {
      s.x.push_back(static_cast<double>(k));
      s.y.push_back(r.classification.top1);
      d.summary["templates"].push_back(
          {{"task", task}, {"method", name == "cl" ? "cl" : "cwcl"}, {"k", k}, {"top1", r.classification.top1}});
    }
    series.push_back(s);
  }
  const std::string plot = task + "_templates.png";
  write_line_plot_png((d.out / plot).string(), task + ": top-1 vs prompt templates", "templates k", "top-1", series);
  d.summary["plots"].push_back(plot);
}

void image_experiments(Demo& d) {
  const auto base = image_base(d);
  const auto& seen = base.data.classes;
  std::map<std::string, std::vector<int64_t>> tasks;  // task -> classes
  for (int64_t k = 0; k < ClassNames::read(base.class_names_file()).size(); ++k) {
    tasks["fmnist-all"].push_back(k);
    if (std::find(seen.begin(), seen.end(), k) == seen.end()) tasks["fmnist-unseen"].push_back(k);
  }
  // task -> variant -> k -> result
  std::map<std::string, std::map<std::string, std::map<int64_t, TaskResult>>> results;
  d.summary["templates"] = json::array();
  auto a = train_and_choose(
      d, base, "image-", variants(/*with_labels=*/true, d.preset.every_image_variant), "fmnist-valid",
      [&](TrainedModel& m) { return evaluate_images(m, d.text, {"fmnist-valid", seen, 0, true}).classification.top1; },
      [&](const std::string& name, TrainedModel& m) {
        for (const auto& [task, classes] : tasks)
          for (int64_t k : {1, 5, 10}) results[task][name].emplace(k, evaluate_images(m, d.text, {task, classes, k, false}));
      });
  d.summary["chosen"]["image"] = a.chosen;
  d.summary["calibration"]["image"] =
      calibration_report(d.summary["validation"]["fmnist-valid"], a.trained.at("kernel-calibrated").config.loss.kernel_tau);
  for (const auto& [task, by_variant] : results) {
    std::map<std::string, TaskResult> with_all_templates;
    for (const auto& [name, by_k] : by_variant) with_all_templates.emplace(name, by_k.at(10));
    add_main_rows(d.summary, task, with_all_templates.at("cl"), with_all_templates.at(a.chosen));
    add_ablation_rows(d.summary, task, with_all_templates, {"cl", a.chosen}, "");
    template_plot(d, task, by_variant, a.chosen);
  }
  publish(a.trained.at("cl"), (d.out / "image-cl").string());
  publish(a.trained.at(a.chosen), (d.out / "image-cwcl").string());
  curves_plot((d.out / "image_curves.png").string(), "image: training loss", a.trained.at("cl"),
              a.trained.at(a.chosen));
  // Test images against one caption of their own class ("a photo of a <name>."), 10 per class.
  const auto& cl_all = results["fmnist-all"]["cl"].at(1);
  const auto& cw_all = results["fmnist-all"][a.chosen].at(1);
  auto frozen = cl_all.class_embeddings.index_select(0, cl_all.targets);
  write_heatmaps_png((d.out / "image_similarity.png").string(),
                     {sorted_similarity(cl_all, frozen, 10, 10), sorted_similarity(cw_all, frozen, 10, 10)},
                     {"CL: image x caption", "CWCL: image x caption"}, 5);
  d.summary["plots"].push_back("image_curves.png");
  d.summary["plots"].push_back("image_similarity.png");
}

// With --only, the parts not rerun keep their figures from the summary a
// previous run of the same preset wrote, so that rerunning one modality
// loses nothing. A part's entries: its tasks' rows, its chosen map, its
// validation, calibration, template and plot entries.
void keep_other_parts(json& summary, const fs::path& previous_file, const std::string& kept_part) {
  if (!fs::exists(previous_file)) return;
  json previous;
  try {
    previous = json::parse(std::ifstream(previous_file));
  } catch (const json::exception& e) {
    std::cerr << "demo: " << previous_file.string() << " unreadable (" << e.what() << "); its results are not kept\n";
    return;
  }
  if (previous.value("preset", "") != summary["preset"].get<std::string>()) return;
  const bool image = kept_part == "image";
  auto ours = [&](const std::string& task) { return (task.rfind("fmnist", 0) == 0) == image; };
  for (const auto& r : previous.value("results", json::array()))
    if (ours(r.value("task", ""))) summary["results"].push_back(r);
  if (image)  // the template rows are image results
    for (const auto& r : previous.value("templates", json::array())) summary["templates"].push_back(r);
  for (const auto& p : previous.value("plots", json::array()))
    if ((p.get<std::string>().rfind("speech", 0) != 0) == image) summary["plots"].push_back(p);
  for (const char* key : {"chosen", "calibration"})
    if (previous.contains(key) && previous[key].contains(kept_part)) summary[key][kept_part] = previous[key][kept_part];
  if (previous.contains("validation"))
    for (const auto& [task, v] : previous["validation"].items())
      if (ours(task)) summary["validation"][task] = v;
  for (const char* key : {"retrieval", "finetuned"})
    if (!image && previous.contains(key)) summary[key] = previous[key];
}

}  // namespace

int run_demo(const DemoOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  auto want = [&](const std::string& part) {
    return o.only.empty() || std::find(o.only.begin(), o.only.end(), part) != o.only.end();
  };
  // Intermediate runs per preset: a rerun reuses finished runs, another preset starts its own.
  Demo d{preset(o.preset), o.out, o.corpus, fs::path(o.out) / "runs" / o.preset, o.data,
         load_text_tower(TextTowerOptions{}),
         {{"preset", o.preset}, {"results", json::array()}, {"chosen", json::object()},
          {"validation", json::object()}, {"plots", json::array()}}};
  fs::create_directories(d.runs);
  if (want("speech")) speech_experiments(d);
  if (want("image")) image_experiments(d);
  for (const char* part : {"speech", "image"})
    if (!want(part)) keep_other_parts(d.summary, d.out / "summary.json", part);
  d.summary["seconds"] = seconds_since(start);
  replace_file_atomically((d.out / "summary.json").string(),
                          [&](const std::string& tmp) { std::ofstream(tmp) << d.summary.dump(2) << "\n"; });
  write_markdown((d.out / "summary.md").string(), d.summary);
  std::cout << "demo: " << (d.out / "summary.json").string() << " and summary.md written in "
            << static_cast<int64_t>(d.summary["seconds"].get<double>()) << " s\n";
  return 0;
}

}  // namespace cwcl::app
