// cwcl demo: the experiments of DESIGN.md end to end. CL and CWCL get the
// same data, tower, seed, steps and schedule; only the loss differs. The
// weight map of the main CWCL row is chosen on validation data (SLURP devel
// spoken by held-out espeak-ng voices; held-out Fashion-MNIST training
// images), never on test.
#include "commands.h"
#include "tasks.h"

#include <cwcl/eval/plot.h>

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
  int64_t speech_limit, speech_steps, speech_batch;
  int64_t image_limit, image_steps, image_batch;
  bool tower_ablation;  // from scratch and Whisper top/full (slow)
  int64_t ablation_steps, ablation_batch;
};

Preset preset(const std::string& name) {
  if (name == "quick") return {8000, 300, 256, 12000, 200, 256, false, 0, 0};
  if (name == "full") return {0, 800, 256, 0, 1000, 256, true, 600, 32};
  if (name == "smoke") return {0, 4, 8, 256, 4, 32, false, 0, 0};  // tests: every step, tiny inputs
  throw UsageError("--preset: '" + name + "' is not quick, full or smoke");
}

// One CWCL variant of the ablation: a name and the config keys it sets.
struct Variant {
  std::string name;  // cl, or the weight map
  std::vector<std::string> set;
};

// The ablation: the paper's affine map, centred, sharper maps, the automatic
// calibration (the kernel's bandwidth set for 4 effective positives per
// row), and class labels where the data has them.
std::vector<Variant> variants(bool with_labels) {
  std::vector<Variant> v = {
      {"cl", {"loss.kind=cl"}},
      {"affine", {"loss.kind=cwcl", "loss.weights=affine"}},
      {"affine-centred", {"loss.kind=cwcl", "loss.weights=affine", "loss.center=true"}},
      {"power-8", {"loss.kind=cwcl", "loss.weights=power", "loss.gamma=8"}},
      {"kernel-0.05", {"loss.kind=cwcl", "loss.weights=kernel", "loss.kernel_tau=0.05"}},
      {"kernel-0.2", {"loss.kind=cwcl", "loss.weights=kernel", "loss.kernel_tau=0.2"}},
      {"kernel-calibrated", {"loss.kind=cwcl", "loss.weights=kernel", "loss.calibrate=4"}},
  };
  if (with_labels) v.push_back({"labels", {"loss.kind=cwcl", "loss.weights=labels"}});
  return v;
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
  train(c, console_train_options(/*resume=*/true, "  "));
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
    if (name != "cl" && name != "kernel-calibrated" && v.get<double>() > best_top1) best = name, best_top1 = v.get<double>();
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
     << "`). Rows with a map name are the ablation.\n\n";
  md << "| task | method | weights | top-1 | top-5 | n |\n| --- | --- | --- | ---: | ---: | ---: |\n";
  for (const auto& r : summary["results"])
    md << "| " << r["task"].get<std::string>() << " | " << r["method"].get<std::string>() << " | "
       << r.value("weights", "") << " | " << pct(r["top1"].get<double>()) << " | " << pct(r["top5"].get<double>())
       << " | " << r["n"].get<int64_t>() << " |\n";
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
  if (summary.contains("speech_towers")) {
    md << "\nSpeech tower (same data and loss, CWCL with the chosen map), SLURP intents on flite voices:\n\n"
       << "| tower | steps x batch | top-1 | top-5 | train s |\n| --- | --- | ---: | ---: | ---: |\n";
    for (const auto& r : summary["speech_towers"])
      md << "| " << r["tower"].get<std::string>() << " | " << r["steps"].get<int64_t>() << " x " << r["batch"].get<int64_t>()
         << " | " << pct(r["top1"].get<double>()) << " | " << pct(r["top5"].get<double>()) << " | "
         << static_cast<int64_t>(r["train_seconds"].get<double>()) << " |\n";
  }
  md << "\nPlots: ";
  for (const auto& p : summary["plots"]) md << "[" << p.get<std::string>() << "](" << p.get<std::string>() << ") ";
  md << "\n\nTotal time: " << static_cast<int64_t>(summary["seconds"].get<double>()) << " s.\n";
}

// Moves a finished run to its published name (replacing an older one).
void publish(const std::string& from, const std::string& to) {
  fs::remove_all(to);
  fs::create_directories(to);
  for (const auto* f : {"config.toml", "metrics.jsonl", "model.pt"}) fs::copy_file(fs::path(from) / f, fs::path(to) / f);
}

}  // namespace

int run_demo(const DemoOptions& o) {
  const auto p = preset(o.preset);
  const auto start = std::chrono::steady_clock::now();
  auto want = [&](const std::string& part) {
    return o.only.empty() || std::find(o.only.begin(), o.only.end(), part) != o.only.end();
  };
  // Intermediate runs per preset: a rerun reuses finished runs, another preset starts its own.
  const fs::path out = o.out, corpus = o.corpus, runs = out / "runs" / o.preset;
  fs::create_directories(runs);
  json summary = {{"preset", o.preset}, {"results", json::array()}, {"chosen", json::object()},
                  {"validation", json::object()}, {"plots", json::array()}};
  TextTowerOptions tto;
  const auto text = load_text_tower(tto);

  if (want("speech")) {
    for (const char* part : {"train", "devel", "slurp_test", "kws_test"})
      if (!fs::exists(corpus / part / "manifest.jsonl"))
        throw DataError((corpus / part / "manifest.jsonl").string() +
                                    ": missing; build the corpus with scripts/make_corpus.sh " + corpus.string());
    TrainConfig base;
    base.model = WhisperTowerSpec{};  // frozen encoder, mean pooling, MLP head
    base.data.train = (corpus / "train" / "manifest.jsonl").string();
    base.data.limit = p.speech_limit;
    base.run.steps = p.speech_steps;
    base.run.batch_size = p.speech_batch;
    base.run.checkpoint_every = 500;
    base.optim.warmup = 100;
    base.optim.lr = 1e-3;
    base.optim.weight_decay = 0.05;
    const std::string labels = (fs::path(o.data) / "slurp" / "intent_labels.tsv").string();
    auto devel = SpeechTaskData::load({"slurp-devel", (corpus / "devel" / "manifest.jsonl").string(), "intent", labels, "", ""});
    std::vector<SpeechTaskData> tests = {
        SpeechTaskData::load({"slurp-intent", (corpus / "slurp_test" / "manifest.jsonl").string(), "intent", labels, "", ""}),
        SpeechTaskData::load({"kws-35", (corpus / "kws_test" / "manifest.jsonl").string(), "keyword", "", "", ""}),
        SpeechTaskData::load({"kws-10", (corpus / "kws_test" / "manifest.jsonl").string(), "keyword", "", "kws10", ""}),
    };
    std::map<std::string, Run> trained;
    std::map<std::string, std::vector<TaskResult>> results;
    double best = -1;
    std::string chosen;
    for (const auto& v : variants(/*with_labels=*/false)) {
      auto run = train_run(base, (runs / ("speech-" + v.name)).string(), v.name, v.set);
      auto model = TrainedModel::load(run.dir);
      const double valid = evaluate_speech(model, text, devel).classification.top1;
      summary["validation"]["slurp-devel"][v.name] = valid;
      std::cerr << "demo: speech " << v.name << " devel top-1 " << valid << "\n";
      if (v.name != "cl" && valid > best) best = valid, chosen = v.name;
      for (const auto& t : tests) results[v.name].push_back(evaluate_speech(model, text, t));
      trained.emplace(v.name, run);
    }
    summary["chosen"]["speech"] = chosen;
    summary["calibration"]["speech"] =
        calibration_report(summary["validation"]["slurp-devel"], trained.at("kernel-calibrated").config.loss.kernel_tau);
    for (size_t i = 0; i < tests.size(); ++i) {
      summary["results"].push_back(row(tests[i].spec.name, "cl", results["cl"][i]));
      summary["results"].push_back(row(tests[i].spec.name, "cwcl", results[chosen][i]));
      for (const auto& [name, rs] : results)
        if (name != "cl" && name != chosen) {
          auto r = row(tests[i].spec.name, "cwcl", rs[i]);
          r["weights"] = name;
          summary["results"].push_back(r);
        }
      summary["results"].push_back(row(tests[i].spec.name, "text-bound", evaluate_text_bound(text, tests[i])));
      if (results[chosen][i].has_retrieval)
        summary["retrieval"][tests[i].spec.name] = {{"cl", results["cl"][i].to_json(false)["retrieval"]},
                                                    {"cwcl", results[chosen][i].to_json(false)["retrieval"]}};
    }
    publish(trained.at("cl").dir, (out / "speech-cl").string());
    publish(trained.at(chosen).dir, (out / "speech-cwcl").string());
    curves_plot((out / "speech_curves.png").string(), "speech: training loss", trained.at("cl"), trained.at(chosen));
    {
      // SLURP test utterances against their own texts, 6 per intent, first 12 intents.
      std::vector<std::string> texts;
      for (const auto& e : tests[0].examples) texts.push_back(e.text);
      auto frozen = text.encode(texts);
      write_heatmaps_png((out / "speech_similarity.png").string(),
                         {sorted_similarity(results["cl"][0], frozen, 6, 12), sorted_similarity(results[chosen][0], frozen, 6, 12)},
                         {"CL: speech x text", "CWCL: speech x text"}, 6);
    }
    summary["plots"].push_back("speech_curves.png");
    summary["plots"].push_back("speech_similarity.png");

    if (p.tower_ablation) {
      summary["speech_towers"] = json::array();
      const auto& best_run = trained.at(chosen);
      const auto& r0 = results[chosen][0].classification;
      summary["speech_towers"].push_back({{"tower", "whisper-frozen"}, {"steps", best_run.config.run.steps},
                                          {"batch", best_run.config.run.batch_size}, {"top1", r0.top1}, {"top5", r0.top5},
                                          {"train_seconds", best_run.train_seconds}});
      TrainConfig ab = best_run.config;
      ab.run.steps = p.ablation_steps;
      ab.run.batch_size = p.ablation_batch;
      ab.optim.warmup = 50;
      ab.run.checkpoint_every = 100;
      for (const auto& [tower, set] : std::vector<std::pair<std::string, std::vector<std::string>>>{
               {"whisper-top2", {"model.whisper_training=top", "model.top_blocks=2"}},
               {"whisper-full", {"model.whisper_training=full"}},
               {"scratch-small", {"model.tower=scratch", "model.scratch_size=small", "run.batch_size=64"}}}) {
        auto run = train_run(ab, (runs / ("speech-tower-" + tower)).string(), tower, set);
        auto model = TrainedModel::load(run.dir);
        auto r = evaluate_speech(model, text, tests[0]).classification;
        summary["speech_towers"].push_back({{"tower", tower}, {"steps", run.config.run.steps},
                                            {"batch", run.config.run.batch_size}, {"top1", r.top1}, {"top5", r.top5},
                                            {"train_seconds", run.train_seconds}});
        std::cerr << "demo: speech tower " << tower << " SLURP top-1 " << r.top1 << "\n";
      }
    }
  }

  if (want("image")) {
    TrainConfig base;
    base.model = ImageTowerSpec{};
    base.data.train = "/usr/share/datasets/fashion-mnist";
    base.data.limit = p.image_limit;
    base.run.steps = p.image_steps;
    base.run.batch_size = p.image_batch;
    base.run.threads = 2;
    base.run.checkpoint_every = 500;
    base.optim.warmup = 50;
    base.optim.lr = 2e-3;
    base.data.text_store = (runs / "fmnist-captions.store.safetensors").string();
    base.data.class_names = (fs::path(o.data) / "fashion-mnist" / "classes.tsv").string();
    base.data.templates = (fs::path(o.data) / "fashion-mnist" / "templates.txt").string();
    const auto seen = base.data.classes;
    std::vector<int64_t> unseen, everything;
    for (int64_t k = 0; k < ClassNames::read(base.class_names_file()).size(); ++k) {
      everything.push_back(k);
      if (std::find(seen.begin(), seen.end(), k) == seen.end()) unseen.push_back(k);
    }
    std::map<std::string, Run> trained;
    std::map<std::string, std::map<std::string, TaskResult>> results;  // variant -> "task/k"
    double best = -1;
    std::string chosen;
    summary["templates"] = json::array();
    for (const auto& v : variants(/*with_labels=*/true)) {
      auto run = train_run(base, (runs / ("image-" + v.name)).string(), v.name, v.set);
      auto model = TrainedModel::load(run.dir);
      const double valid = evaluate_images(model, text, {"fmnist-valid", seen, 0, true}).classification.top1;
      summary["validation"]["fmnist-valid"][v.name] = valid;
      std::cerr << "demo: image " << v.name << " validation top-1 " << valid << "\n";
      if (v.name != "cl" && valid > best) best = valid, chosen = v.name;
      for (const auto& [task, classes] : std::vector<std::pair<std::string, std::vector<int64_t>>>{{"fmnist-all", everything},
                                                                                                 {"fmnist-unseen", unseen}})
        for (int64_t k : {1, 5, 10})
          results[v.name].emplace(task + "/" + std::to_string(k), evaluate_images(model, text, {task, classes, k, false}));
      trained.emplace(v.name, run);
    }
    summary["chosen"]["image"] = chosen;
    summary["calibration"]["image"] =
        calibration_report(summary["validation"]["fmnist-valid"], trained.at("kernel-calibrated").config.loss.kernel_tau);
    for (const char* task : {"fmnist-all", "fmnist-unseen"}) {
      const std::string key = std::string(task) + "/10";
      summary["results"].push_back(row(task, "cl", results["cl"].at(key)));
      summary["results"].push_back(row(task, "cwcl", results[chosen].at(key)));
      for (const auto& [name, rs] : results)
        if (name != "cl" && name != chosen) {
          auto r = row(task, "cwcl", rs.at(key));
          r["weights"] = name;
          summary["results"].push_back(r);
        }
      std::vector<PlotSeries> series;
      for (const auto& name : {std::string("cl"), chosen}) {
        PlotSeries s;
        s.name = name == "cl" ? "CL" : "CWCL (" + name + ")";
        for (int64_t k : {1, 5, 10}) {
          const double top1 = results[name].at(std::string(task) + "/" + std::to_string(k)).classification.top1;
          s.x.push_back(static_cast<double>(k));
          s.y.push_back(top1);
          summary["templates"].push_back({{"task", task}, {"method", name == "cl" ? "cl" : "cwcl"}, {"k", k}, {"top1", top1}});
        }
        series.push_back(s);
      }
      const std::string plot = std::string(task) + "_templates.png";
      write_line_plot_png((out / plot).string(), std::string(task) + ": top-1 vs prompt templates", "templates k", "top-1", series);
      summary["plots"].push_back(plot);
    }
    publish(trained.at("cl").dir, (out / "image-cl").string());
    publish(trained.at(chosen).dir, (out / "image-cwcl").string());
    curves_plot((out / "image_curves.png").string(), "image: training loss", trained.at("cl"), trained.at(chosen));
    {
      // Test images against one caption of their own class ("a photo of a <name>."), 10 per class.
      const auto& cl_all = results["cl"].at("fmnist-all/1");
      const auto& cw_all = results[chosen].at("fmnist-all/1");
      auto frozen = cl_all.class_embeddings.index_select(0, cl_all.targets);
      write_heatmaps_png((out / "image_similarity.png").string(),
                         {sorted_similarity(cl_all, frozen, 10, 10), sorted_similarity(cw_all, frozen, 10, 10)},
                         {"CL: image x caption", "CWCL: image x caption"}, 5);
    }
    summary["plots"].push_back("image_curves.png");
    summary["plots"].push_back("image_similarity.png");
  }

  summary["seconds"] = seconds_since(start);
  {
    std::ofstream(out / "summary.json.tmp") << summary.dump(2) << "\n";
    fs::rename(out / "summary.json.tmp", out / "summary.json");
  }
  write_markdown((out / "summary.md").string(), summary);
  std::cout << "demo: " << (out / "summary.json").string() << " and summary.md written in "
            << static_cast<int64_t>(summary["seconds"].get<double>()) << " s\n";
  return 0;
}

}  // namespace cwcl::app
