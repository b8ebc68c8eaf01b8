// The image part of the demo: Fashion-MNIST, the seen classes in training,
// every map of the preset (the map chosen on held-out training images), and
// zero-shot on all classes and on the unseen ones, with 1, 5 and 10 prompt
// templates.
#include "experiment.h"

#include <cwcl/data/fashion_mnist.h>
#include <cwcl/eval/plot.h>

#include <algorithm>

namespace cwcl::demo {
namespace {

using ByTemplates = std::map<int64_t, TaskResult>;  // k -> result

// Top-1 against k = 1, 5, 10 templates for CL and the chosen CWCL: a plot and summary rows.
void template_plot(Demo& d, PartSummary& part, const std::string& task,
                   const std::map<std::string, ByTemplates>& by_k, const std::string& chosen) {
  std::vector<PlotSeries> series;
  for (const auto& name : {std::string("cl"), chosen}) {
    PlotSeries s;
    s.name = name == "cl" ? "CL" : "CWCL (" + name + ")";
    for (const auto& [k, r] : by_k.at(name)) {
      s.x.push_back(static_cast<double>(k));
      s.y.push_back(r.classification.top1);
      part.templates.push_back({task, name == "cl" ? "cl" : "cwcl", k, r.classification.top1});
    }
    series.push_back(s);
  }
  const std::string plot = "image_" + task + "_templates.png";
  write_line_plot_png((d.out / plot).string(), task + ": top-1 vs prompt templates", "templates k", "top-1", series);
  part.plots.push_back(plot);
}

TrainConfig image_base(const Demo& d) {
  auto base = d.preset.image->config;
  base.data.text_store = (d.runs / "fmnist-captions.store.safetensors").string();
  if (!d.data.empty()) {
    base.data.class_names = data_path(d, "fashion-mnist/classes.tsv");
    base.data.templates = data_path(d, "fashion-mnist/templates.txt");
  }
  return base;
}

}  // namespace

void image_experiments(Demo& d, PartSummary& part) {
  const auto base = image_base(d);
  const auto& seen = base.data.classes;
  std::map<std::string, std::vector<int64_t>> tasks;  // task -> classes
  for (int64_t k = 0; k < ClassNames::read(base.class_names_file()).size(); ++k) {
    tasks[kImageTasks[0]].push_back(k);
    if (std::find(seen.begin(), seen.end(), k) == seen.end()) tasks[kImageTasks[1]].push_back(k);
  }
  std::map<std::string, std::map<std::string, ByTemplates>> results;  // task -> variant -> k -> result
  auto a = train_and_choose(
      d, part, *d.preset.image, base, "image-", kImageValidation,
      [&](TrainedModel& m) {
        return evaluate_images(m, d.text, {kImageValidation, seen, 0, true}).classification.top1;
      },
      [&](const std::string& name, TrainedModel& m) {
        for (const auto& [task, classes] : tasks)
          for (int64_t k : {1, 5, 10}) results[task][name].emplace(k, evaluate_images(m, d.text, {task, classes, k, false}));
      });
  part.chosen = a.chosen;
  if (a.trained.count("kernel-calibrated"))
    part.calibration = calibration_report(part.validation[kImageValidation], d.preset,
                                          a.trained.at("kernel-calibrated").config.loss.kernel_tau);
  for (const auto& [task, by_variant] : results) {
    std::map<std::string, TaskResult> with_all_templates;
    for (const auto& [name, by_k] : by_variant) with_all_templates.emplace(name, by_k.at(10));
    add_main_rows(part, task, with_all_templates.at("cl"), with_all_templates.at(a.chosen));
    add_ablation_rows(part, d.preset, task, with_all_templates, {"cl", a.chosen}, "");
    template_plot(d, part, task, by_variant, a.chosen);
  }
  publish(a.trained.at("cl"), d.out / "image-cl");
  publish(a.trained.at(a.chosen), d.out / "image-cwcl");
  curves_plot((d.out / "image_curves.png").string(), "image: training loss", a.trained.at("cl"), a.trained.at(a.chosen));
  // Test images against one caption of their own class ("a photo of a <name>."), 10 per class.
  const auto& cl_all = results[kImageTasks[0]]["cl"].at(1);
  const auto& cw_all = results[kImageTasks[0]][a.chosen].at(1);
  const auto frozen = cl_all.class_embeddings.index_select(0, cl_all.targets);
  write_heatmaps_png((d.out / "image_similarity.png").string(),
                     {sorted_similarity(cl_all, frozen, 10, 10), sorted_similarity(cw_all, frozen, 10, 10)},
                     {"CL: image x caption", "CWCL: image x caption"}, 5);
  part.plots.push_back("image_curves.png");
  part.plots.push_back("image_similarity.png");
}

}  // namespace cwcl::demo
