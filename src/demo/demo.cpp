// cwcl demo: the experiments of DESIGN.md (docs/experiments.md). Reads the
// preset, runs the parts asked for, keeps the others from the previous
// summary of the same preset, and writes summary.json and summary.md.
#include <cwcl/demo/demo.h>

#include "experiment.h"

#include <algorithm>
#include <chrono>

namespace cwcl {

std::string run_demo_protocol(const DemoOptions& o) {
  using namespace demo;
  const auto start = std::chrono::steady_clock::now();
  Demo d;
  d.preset = load_preset(o.preset);
  auto has = [&](DemoPart part) {
    switch (part) {
      case DemoPart::Speech: return d.preset.speech_frozen.has_value();
      case DemoPart::Image: return d.preset.image.has_value();
      case DemoPart::Batch: return d.preset.speech_batch.has_value() || d.preset.image_batch.has_value();
    }
    return false;
  };
  auto want = [&](DemoPart part) {
    return has(part) && (o.only.empty() || std::find(o.only.begin(), o.only.end(), part) != o.only.end());
  };
  for (auto part : o.only)
    if (!has(part)) throw UsageError("--only " + std::string(name_of(part)) + ": preset " + d.preset.name + " has no such part");
  d.out = o.out;
  d.corpus = o.corpus;
  d.data = o.data;
  // Intermediate runs per preset: a rerun reuses finished runs, another preset starts its own.
  d.runs = d.out / "runs" / d.preset.name;
  d.log = o.log ? o.log : [](const std::string&) {};
  d.progress = o.progress;
  d.summary.preset = d.preset.name;
  // A training set the corpus step does not build is there before anything runs.
  if (want(DemoPart::Speech))
    for (const auto* stage : {&*d.preset.speech_frozen, &*d.preset.speech_finetuned}) training_manifest(d, *stage);
  if (want(DemoPart::Batch) && d.preset.speech_batch) training_manifest(d, *d.preset.speech_batch);
  d.text = load_text_tower(TextTowerOptions{});
  fs::create_directories(d.runs);
  const auto summary_json = (d.out / "summary.json").string();
  auto previous = DemoSummary::read_parts(summary_json, d.preset.name, part_of, d.log);
  for (const auto& [part, name] : Names<DemoPart>::table) {
    if (!want(part)) {
      if (previous.count(part) && has(part)) d.summary.parts[part] = previous[part];
      continue;
    }
    auto& summary = d.summary.parts[part];
    switch (part) {
      case DemoPart::Speech: speech_experiments(d, summary); break;
      case DemoPart::Image: image_experiments(d, summary); break;
      case DemoPart::Batch: batch_experiments(d, summary); break;
    }
  }
  d.summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  d.summary.write_json(summary_json);
  d.summary.write_markdown((d.out / "summary.md").string());
  return summary_json + " and summary.md written in " + std::to_string(static_cast<int64_t>(d.summary.seconds)) + " s";
}

std::vector<DemoStagePlan> plan_demo(const std::string& name) {
  using namespace demo;
  const auto preset = load_preset(name);
  std::vector<DemoStagePlan> out;
  for (const auto& [stage_name, stage] :
       {std::pair<const char*, const std::optional<Stage>*>{"speech_frozen", &preset.speech_frozen},
        {"speech_finetuned", &preset.speech_finetuned},
        {"image", &preset.image},
        {"speech_batch", &preset.speech_batch},
        {"image_batch", &preset.image_batch}}) {
    if (!stage->has_value()) continue;
    DemoStagePlan plan{stage_name, (*stage)->base, {}, (*stage)->train_part};
    // The fine-tuned stage trains CL and the map the frozen stage chooses.
    auto variants = (*stage)->variants;
    if (stage == &preset.speech_finetuned) {
      variants = {preset.variant("cl")};
      for (const auto& v : preset.speech_frozen->variants)
        if (v.method == DemoMethod::CWCL) variants.push_back(v);
    }
    for (const auto& v : variants) {
      auto c = (*stage)->config;
      c.apply(v.overlay);
      if (stage == &preset.speech_batch || stage == &preset.image_batch) {
        const auto& axis = stage == &preset.speech_batch ? preset.batch_axis : preset.image_batch_axis;
        for (const auto batch : axis.batches)
          plan.runs.emplace_back(v.name + ", batch " + std::to_string(batch), batch_config(c, axis, batch));
      } else {
        plan.runs.emplace_back(v.name, c);
      }
    }
    out.push_back(plan);
  }
  return out;
}

}  // namespace cwcl
