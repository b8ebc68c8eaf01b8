// The speech part of the demo: the weight-map ablation on the frozen Whisper
// encoder (the map chosen on SLURP devel), then CL and the chosen map
// fine-tune Whisper's top blocks for the main rows.
#include "experiment.h"

#include <cwcl/error.h>
#include <cwcl/eval/plot.h>

namespace cwcl::demo {
namespace {

// Trains the fine-tuned tower with CL and with the chosen map, evaluates
// each kept model on every test (main[i][method]) and records the runs.
std::map<std::string, Run> train_finetuned(Demo& d, PartSummary& part, const std::string& labels,
                                           const std::vector<SpeechTaskData>& tests,
                                           std::vector<std::map<std::string, TaskResult>>& main) {
  auto tuned = d.preset.speech_finetuned->config;
  tuned.data.train = training_manifest(d, *d.preset.speech_finetuned);
  tuned.eval.manifest = manifest(d, "devel");
  tuned.eval.label_field = "intent";
  tuned.eval.labels = labels;
  std::map<std::string, Run> runs;
  for (const auto& [method, name] : {std::pair<std::string, std::string>{"cl", "cl"}, {"cwcl", part.chosen}}) {
    auto run = train_run(d, tuned, (d.runs / ("speech-finetuned-" + name)).string(), d.preset.variant(name));
    auto model = TrainedModel::load(kept_model(run));
    for (size_t i = 0; i < tests.size(); ++i) main[i].emplace(method, evaluate_speech(model, d.text, tests[i]));
    part.finetuned[method] = {run.dir, kept_model(run), name, run.train_seconds,
                              d.preset.speech_finetuned->train_part, std::string(name_of(run.config.run.precision))};
    runs.emplace(method, run);
  }
  return runs;
}

// Training curves of the two main runs, and SLURP test utterances against
// their own texts (6 per intent, first 12 intents).
void speech_plots(Demo& d, PartSummary& part, const std::map<std::string, Run>& runs,
                  const std::map<std::string, TaskResult>& slurp, const SpeechTaskData& slurp_data) {
  curves_plot((d.out / "speech_curves.png").string(), "speech: training loss", runs.at("cl"), runs.at("cwcl"));
  std::vector<std::string> texts;
  for (const auto& e : slurp_data.examples) texts.push_back(e.text);
  const auto frozen_side = d.text.encode(texts);
  write_heatmaps_png((d.out / "speech_similarity.png").string(),
                     {sorted_similarity(slurp.at("cl"), frozen_side, 6, 12),
                      sorted_similarity(slurp.at("cwcl"), frozen_side, 6, 12)},
                     {"CL: speech x text", "CWCL: speech x text"}, 6);
  part.plots = {"speech_curves.png", "speech_similarity.png"};
}

}  // namespace

void speech_experiments(Demo& d, PartSummary& part) {
  ensure_corpus(d);
  const auto devel = speech_validation(d);
  const auto tests = speech_tests(d);
  const std::string labels = data_path(d, "slurp/intent_labels.tsv");
  auto frozen_base = d.preset.speech_frozen->config;
  frozen_base.data.train = training_manifest(d, *d.preset.speech_frozen);
  std::vector<std::map<std::string, TaskResult>> frozen(tests.size());  // per test: variant -> result
  auto a = train_and_choose(
      d, part, *d.preset.speech_frozen, frozen_base, "speech-", kSpeechValidation,
      [&](TrainedModel& m) { return evaluate_speech(m, d.text, devel).classification.top1; },
      [&](const std::string& name, TrainedModel& m) {
        for (size_t i = 0; i < tests.size(); ++i) frozen[i].emplace(name, evaluate_speech(m, d.text, tests[i]));
      });
  part.chosen = a.chosen;
  if (a.trained.count("kernel-calibrated"))
    part.calibration = calibration_report(part.validation[kSpeechValidation], d.preset,
                                          a.trained.at("kernel-calibrated").config.loss.kernel_tau);

  std::vector<std::map<std::string, TaskResult>> main(tests.size());  // per test: cl / cwcl -> result
  const auto runs = train_finetuned(d, part, labels, tests, main);
  for (size_t i = 0; i < tests.size(); ++i) {
    const auto& name = tests[i].spec.name;
    add_main_rows(part, name, main[i].at("cl"), main[i].at("cwcl"));
    add_ablation_rows(part, d.preset, name, frozen[i], {}, ", frozen");
    part.results.push_back(row(name, "text-bound", evaluate_text_bound(d.text, tests[i])));
    for (const char* method : {"cl", "cwcl"})
      if (main[i].at(method).retrieval) part.retrieval[name][method] = *main[i].at(method).retrieval;
  }
  publish(runs.at("cl"), d.out / "speech-cl");
  publish(runs.at("cwcl"), d.out / "speech-cwcl");
  speech_plots(d, part, runs, main[0], tests[0]);
}

}  // namespace cwcl::demo
