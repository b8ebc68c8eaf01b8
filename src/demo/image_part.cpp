// The image part of the demo: the emoji benchmark (docs/emoji.md). The
// ResNet tower trains on Apple and Google drawings of train concepts with
// every map of the preset; the CWCL map is chosen on the Twitter drawings
// of devel concepts by devel top-1 plus image->text R@1; the tests are
// concepts never seen (every vendor) and seen concepts in a drawing style
// never seen (Twitter).
#include "experiment.h"

#include <cwcl/eval/plot.h>

#include <algorithm>

namespace cwcl::demo {
namespace {

// A few unseen concepts: their drawings with the label CL and CWCL give them.
void prediction_grid(Demo& d, PartSummary& part, const ImageManifestTaskData& data, const TaskResult& cl,
                     const TaskResult& cwcl, TrainedModel& model) {
  std::vector<GridCell> cells;
  const auto& names = data.labels.texts;
  auto t = cl.targets.accessor<int64_t, 1>();
  const int64_t n = cl.targets.size(0), wanted = 18, stride = std::max<int64_t>(1, n / wanted);
  for (int64_t i = 0; i < n && static_cast<int64_t>(cells.size()) < wanted; i += stride) {
    const auto truth = static_cast<size_t>(t[i]);
    const auto a = static_cast<size_t>(cl.classification.predictions[static_cast<size_t>(i)]);
    const auto b = static_cast<size_t>(cwcl.classification.predictions[static_cast<size_t>(i)]);
    const auto row = std::find_if(data.examples.begin(), data.examples.end(),
                                  [&](const ImageExample& e) { return e.id == cl.item_ids[static_cast<size_t>(i)]; });
    cells.push_back({model.read_image(row->image), {names[truth], "CL: " + names[a], "CWCL: " + names[b]},
                     {0, a == truth ? 1 : -1, b == truth ? 1 : -1}});
  }
  write_image_grid_png((d.out / "image_emoji-unseen_predictions.png").string(),
                       "emoji-unseen: label, CL's and CWCL's top-1", cells);
  part.plots.push_back("image_emoji-unseen_predictions.png");
}

}  // namespace

void image_experiments(Demo& d, PartSummary& part) {
  const auto emoji = emoji_benchmark(d);
  const auto base = emoji_config(d, *d.preset.image, emoji);
  const auto& templates = emoji.templates;
  const auto devel = ImageManifestTaskData::load(
      {kImageValidation, base.eval.manifest, base.eval.labels, templates});
  std::map<std::string, ImageManifestTaskData> tasks;
  tasks.emplace(kImageTasks[0], ImageManifestTaskData::load({kImageTasks[0], emoji.file("unseen.jsonl"),
                                                             emoji.file("labels-test.tsv"), templates}));
  tasks.emplace(kImageTasks[1], ImageManifestTaskData::load({kImageTasks[1], emoji.file("style.jsonl"),
                                                             emoji.file("labels-train.tsv"), templates}));
  std::map<std::string, std::map<std::string, TaskResult>> results;  // task -> variant -> result
  auto a = train_and_choose(
      d, part, *d.preset.image, base, "image-", kImageValidation,
      // The choice rule (docs/emoji.md): devel top-1 plus devel image->text R@1.
      [&](TrainedModel& m) {
        const auto r = evaluate_image_manifest(m, d.text, devel);
        return r.classification.top1 + r.retrieval->a_to_b[0];
      },
      [&](const std::string& name, TrainedModel& m) {
        for (const auto& [task, data] : tasks) results[task].emplace(name, evaluate_image_manifest(m, d.text, data));
      });
  part.chosen = a.chosen;
  if (a.trained.count("kernel-calibrated"))
    part.calibration = calibration_report(part.validation[kImageValidation], d.preset,
                                          a.trained.at("kernel-calibrated").config.loss.kernel_tau);
  for (const auto& [task, by_variant] : results) {
    add_main_rows(part, task, by_variant.at("cl"), by_variant.at(a.chosen));
    add_ablation_rows(part, d.preset, task, by_variant, {"cl", a.chosen}, "");
    part.retrieval[task] = {{"cl", *by_variant.at("cl").retrieval}, {"cwcl", *by_variant.at(a.chosen).retrieval}};
  }
  publish(a.trained.at("cl"), d.out / "image-cl");
  publish(a.trained.at(a.chosen), d.out / "image-cwcl");
  curves_plot((d.out / "image_curves.png").string(), "image: training loss", a.trained.at("cl"), a.trained.at(a.chosen));
  // Unseen concepts' drawings against their own label text, 3 per concept.
  const auto& cl = results.at(kImageTasks[0]).at("cl");
  const auto& cw = results.at(kImageTasks[0]).at(a.chosen);
  const auto frozen = cl.class_embeddings.index_select(0, cl.targets);
  write_heatmaps_png((d.out / "image_similarity.png").string(),
                     {sorted_similarity(cl, frozen, 3, 16), sorted_similarity(cw, frozen, 3, 16)},
                     {"CL: drawing x label", "CWCL: drawing x label"}, 8);
  auto model = TrainedModel::load(kept_model(a.trained.at("cl")));
  prediction_grid(d, part, tasks.at(kImageTasks[0]), cl, cw, model);
  part.plots.push_back("image_curves.png");
  part.plots.push_back("image_similarity.png");
}

}  // namespace cwcl::demo
