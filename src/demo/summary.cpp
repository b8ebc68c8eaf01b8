#include "summary.h"

#include <cwcl/io/files.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

namespace cwcl::demo {
namespace {

using json = nlohmann::json;

json interval_json(const Interval& i) { return {i.low, i.high}; }
Interval interval_of(const json& j) { return {j.at(0).get<double>(), j.at(1).get<double>()}; }
json recall_json(const double (&r)[3]) { return {{"r1", r[0]}, {"r5", r[1]}, {"r10", r[2]}}; }
void recall_of(const json& j, double (&r)[3]) {
  r[0] = j.at("r1").get<double>();
  r[1] = j.at("r5").get<double>();
  r[2] = j.at("r10").get<double>();
}

json row_json(const ResultRow& r) {
  json j = {{"task", r.task}, {"method", r.method}, {"top1", r.top1}, {"top5", r.top5}, {"n", r.n}};
  if (!r.weights.empty()) j["weights"] = r.weights;
  if (r.top1_ci) j["top1_ci"] = interval_json(*r.top1_ci);
  if (r.vs_cl) {
    j["vs_cl"] = *r.vs_cl;
    j["vs_cl_ci"] = interval_json(r.vs_cl_ci);
  }
  return j;
}

ResultRow row_of(const json& j) {
  ResultRow r;
  r.task = j.at("task").get<std::string>();
  r.method = j.at("method").get<std::string>();
  r.weights = j.value("weights", "");
  r.top1 = j.at("top1").get<double>();
  r.top5 = j.at("top5").get<double>();
  r.n = j.at("n").get<int64_t>();
  if (j.contains("top1_ci")) r.top1_ci = interval_of(j["top1_ci"]);
  if (j.contains("vs_cl")) {
    r.vs_cl = j["vs_cl"].get<double>();
    r.vs_cl_ci = interval_of(j.at("vs_cl_ci"));
  }
  return r;
}

json calibration_json(const CalibrationReport& c) {
  return {{"kernel_tau", c.kernel_tau}, {"calibrated_top1", c.calibrated_top1},
          {"best_hand_picked", c.best_hand_picked}, {"best_hand_picked_top1", c.best_hand_picked_top1},
          {"gap", c.gap}};
}

CalibrationReport calibration_of(const json& j) {
  return {j.at("kernel_tau").get<double>(), j.at("calibrated_top1").get<double>(),
          j.at("best_hand_picked_top1").get<double>(), j.at("gap").get<double>(),
          j.at("best_hand_picked").get<std::string>()};
}

// One part's entries read back from a summary.
json optional_json(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }
std::optional<double> optional_of(const json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? std::optional<double>(j[key].get<double>()) : std::nullopt;
}

json batch_row_json(const BatchRow& r) {
  return {{"axis", name_of(r.axis)},
          {"batch", r.batch},
          {"steps", r.steps},
          {"variant", r.variant},
          {"effective_positives", r.effective_positives},
          {"devel_top1", r.devel_top1},
          {"devel_r1", r.devel_r1},
          {"test_top1", r.test_top1},
          {"test_r1", r.test_r1},
          {"second_top1", r.second_top1},
          {"test_top1_vs_cl", optional_json(r.test_top1_vs_cl)},
          {"test_top1_vs_cl_ci", interval_json(r.test_top1_vs_cl_ci)},
          {"test_r1_vs_cl", optional_json(r.test_r1_vs_cl)},
          {"test_r1_vs_cl_ci", interval_json(r.test_r1_vs_cl_ci)},
          {"second_vs_cl", optional_json(r.second_vs_cl)},
          {"second_vs_cl_ci", interval_json(r.second_vs_cl_ci)}};
}

// Summaries before the image axis named the second test kws35 and had no axis.
BatchRow batch_row_of(const json& j) {
  const bool old = !j.contains("axis");
  const char* second = old ? "kws35_top1" : "second_top1";
  const char* second_vs = old ? "kws35_vs_cl" : "second_vs_cl";
  BatchRow r;
  r.axis = old ? Modality::Speech : parse_name<Modality>(j.at("axis").get<std::string>());
  r.batch = j.at("batch").get<int64_t>();
  r.steps = j.at("steps").get<int64_t>();
  r.variant = j.at("variant").get<std::string>();
  r.effective_positives = j.at("effective_positives").get<double>();
  r.devel_top1 = j.at("devel_top1").get<double>();
  r.devel_r1 = j.at("devel_r1").get<double>();
  r.test_top1 = j.at("test_top1").get<double>();
  r.test_r1 = j.at("test_r1").get<double>();
  r.second_top1 = j.at(second).get<double>();
  r.test_top1_vs_cl = optional_of(j, "test_top1_vs_cl");
  r.test_r1_vs_cl = optional_of(j, "test_r1_vs_cl");
  r.second_vs_cl = optional_of(j, second_vs);
  r.test_top1_vs_cl_ci = interval_of(j.at("test_top1_vs_cl_ci"));
  r.test_r1_vs_cl_ci = interval_of(j.at("test_r1_vs_cl_ci"));
  r.second_vs_cl_ci = interval_of(j.at(std::string(second_vs) + "_ci"));
  return r;
}

json choice_json(const BatchChoice& c) { return {{"batch", c.batch}, {"variant", c.variant}, {"rule", c.rule}}; }

BatchChoice choice_of(const json& j) {
  return {j.at("batch").get<int64_t>(), j.at("variant").get<std::string>(), j.at("rule").get<std::string>()};
}

PartSummary part_from(const json& all, DemoPart part,
                      const std::function<std::optional<DemoPart>(const std::string&, const std::string&)>& part_of) {
  PartSummary p;
  const std::string name = name_of(part);
  auto ours = [&](const std::string& task) { return part_of(task, "") == part; };
  for (const auto& r : all.value("results", json::array()))
    if (part_of(r.at("task").get<std::string>(), r.value("weights", "")) == part) p.results.push_back(row_of(r));
  if (part == DemoPart::Batch) {
    for (const auto& r : all.value("batch", json::array())) p.batch_table.push_back(batch_row_of(r));
    if (all.contains("batch_choice")) p.batch_choice = choice_of(all["batch_choice"]);
    if (all.contains("image_batch_choice")) p.image_batch_choice = choice_of(all["image_batch_choice"]);
  }
  if (all.contains("chosen") && all["chosen"].contains(name)) p.chosen = all["chosen"][name].get<std::string>();
  const auto validation = all.value("validation", json::object());  // a named value: items() refers to it
  for (const auto& [task, by] : validation.items())
    if (ours(task))
      for (const auto& [variant, v] : by.items()) p.validation[task][variant] = v.get<double>();
  if (all.contains("calibration") && all["calibration"].contains(name))
    p.calibration = calibration_of(all["calibration"][name]);
  for (const auto& t : all.value("templates", json::array()))
    if (ours(t.at("task").get<std::string>()))
      p.templates.push_back({t["task"].get<std::string>(), t.at("method").get<std::string>(), t.at("k").get<int64_t>(),
                             t.at("top1").get<double>()});
  const auto retrieval = all.value("retrieval", json::object());
  for (const auto& [task, by] : retrieval.items())
    if (ours(task))
      for (const auto& [method, r] : by.items()) {
        // Summaries before the image part had retrieval name the inputs speech.
        recall_of(r.contains("input_to_text") ? r["input_to_text"] : r.at("speech_to_text"),
                  p.retrieval[task][method].a_to_b);
        recall_of(r.contains("text_to_input") ? r["text_to_input"] : r.at("text_to_speech"),
                  p.retrieval[task][method].b_to_a);
      }
  const auto finetuned = all.value("finetuned", json::object());
  if (part == DemoPart::Speech)
    for (const auto& [method, f] : finetuned.items())
      // Summaries written before trained_on and precision were recorded trained on "train" in float32.
      p.finetuned[method] = {f.at("run").get<std::string>(), f.at("model").get<std::string>(),
                             f.at("weights").get<std::string>(), f.at("train_seconds").get<double>(),
                             f.value("trained_on", "train"), f.value("precision", "fp32")};
  for (const auto& plot : all.value("plots", json::array()))
    if (plot.get<std::string>().rfind(name + "_", 0) == 0) p.plots.push_back(plot.get<std::string>());
  return p;
}

std::string pct(double v) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(1) << 100 * v;
  return s.str();
}

std::string interval_text(const Interval& i) { return pct(i.low) + " to " + pct(i.high); }

void markdown_results(std::ostream& md, const std::vector<const ResultRow*>& rows) {
  md << "| task | method | weights | top-1 | 95 % CI | vs CL (95 % CI) | top-5 | n |\n"
        "| --- | --- | --- | ---: | --- | --- | ---: | ---: |\n";
  for (const auto* r : rows) {
    const std::string vs = r->vs_cl ? pct(*r->vs_cl) + " (" + interval_text(r->vs_cl_ci) + ")" : "";
    md << "| " << r->task << " | " << r->method << " | " << r->weights << " | " << pct(r->top1) << " | "
       << (r->top1_ci ? interval_text(*r->top1_ci) : "") << " | " << vs << " | " << pct(r->top5) << " | " << r->n
       << " |\n";
  }
}

}  // namespace

std::map<DemoPart, PartSummary> DemoSummary::read_parts(
    const std::string& path, const std::string& preset,
    const std::function<std::optional<DemoPart>(const std::string&, const std::string&)>& part_of,
    const std::function<void(const std::string&)>& log) {
  std::map<DemoPart, PartSummary> out;
  if (!std::filesystem::exists(path)) return out;
  try {
    const auto all = json::parse(std::ifstream(path));
    if (all.value("preset", "") != preset) {
      log(path + " is of preset '" + all.value("preset", "") + "'; its results are not kept");
      return out;
    }
    for (const auto& [part, name] : Names<DemoPart>::table) out[part] = part_from(all, part, part_of);
  } catch (const json::exception& e) {
    log(path + " unreadable (" + std::string(e.what()) + "); its results are not kept");
    out.clear();
  }
  return out;
}

void DemoSummary::write_json(const std::string& path) const {
  json results = json::array(), templates = json::array(), plots = json::array();
  json chosen = json::object(), validation = json::object(), calibration = json::object();
  json finetuned = json::object(), retrieval = json::object(), batch = json::array(), batch_choice, image_batch_choice;
  for (const auto& [part, p] : parts) {
    const std::string name = name_of(part);
    for (const auto& r : p.results) results.push_back(row_json(r));
    if (!p.chosen.empty()) chosen[name] = p.chosen;
    for (const auto& [task, by] : p.validation) validation[task] = by;
    if (p.calibration) calibration[name] = calibration_json(*p.calibration);
    for (const auto& t : p.templates)
      templates.push_back({{"task", t.task}, {"method", t.method}, {"k", t.k}, {"top1", t.top1}});
    for (const auto& [method, f] : p.finetuned)
      finetuned[method] = {{"run", f.run},
                           {"model", f.model},
                           {"weights", f.weights},
                           {"train_seconds", f.train_seconds},
                           {"trained_on", f.trained_on},
                           {"precision", f.precision}};
    for (const auto& [task, by] : p.retrieval)
      for (const auto& [method, r] : by)
        retrieval[task][method] = {{"input_to_text", recall_json(r.a_to_b)}, {"text_to_input", recall_json(r.b_to_a)}};
    for (const auto& plot : p.plots) plots.push_back(plot);
    for (const auto& r : p.batch_table) batch.push_back(batch_row_json(r));
    if (p.batch_choice) batch_choice = choice_json(*p.batch_choice);
    if (p.image_batch_choice) image_batch_choice = choice_json(*p.image_batch_choice);
  }
  json j = {{"preset", preset}, {"results", results}, {"chosen", chosen}, {"validation", validation},
            {"plots", plots}, {"seconds", seconds}};
  if (!calibration.empty()) j["calibration"] = calibration;
  if (!templates.empty()) j["templates"] = templates;
  if (!finetuned.empty()) j["finetuned"] = finetuned;
  if (!retrieval.empty()) j["retrieval"] = retrieval;
  if (!batch.empty()) j["batch"] = batch;
  if (!batch_choice.is_null()) j["batch_choice"] = batch_choice;
  if (!image_batch_choice.is_null()) j["image_batch_choice"] = image_batch_choice;
  write_text_atomically(path, j.dump(2) + "\n");
}

namespace {

// One batch axis's table: its sets named, each setting against CL at its batch.
void markdown_batch_table(std::ostringstream& md, const PartSummary& p, Modality axis) {
  std::vector<const BatchRow*> rows;
  for (const auto& r : p.batch_table)
    if (r.axis == axis) rows.push_back(&r);
  if (rows.empty()) return;
  const bool speech = axis == Modality::Speech;
  const auto& choice = speech ? p.batch_choice : p.image_batch_choice;
  md << "\nThe " << (speech ? "speech" : "image") << " batch axis ("
     << (speech ? "frozen encoder" : "the ResNet tower, larger batches through GradCache chunks")
     << "; every run sees the same samples at its batch): top-1 and R@1 (%), "
     << (speech ? "SLURP devel (the choice set) and test, kws-35" : "emoji-devel (the choice set), emoji-unseen, emoji-style")
     << "; against CL at the same batch, paired over the test items."
     << (choice ? " Chosen on devel: `" + choice->variant + "` at batch " + std::to_string(choice->batch) + " (" +
                      choice->rule + ")."
                : std::string())
     << "\n\n| batch | variant | steps | positives per row | devel top-1 | devel R@1 | test top-1 | vs CL | test R@1 | "
        "vs CL | "
     << (speech ? "kws-35" : "style") << " | vs CL |\n| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: | --- |\n";
  auto vs = [](const std::optional<double>& d, const Interval& ci) {
    return d ? pct(*d) + " (" + interval_text(ci) + ")" : std::string();
  };
  for (const auto* r : rows)
    md << "| " << r->batch << " | " << r->variant << " | " << r->steps << " | " << std::setprecision(3)
       << r->effective_positives << " | " << pct(r->devel_top1) << " | " << pct(r->devel_r1) << " | "
       << pct(r->test_top1) << " | " << vs(r->test_top1_vs_cl, r->test_top1_vs_cl_ci) << " | " << pct(r->test_r1)
       << " | " << vs(r->test_r1_vs_cl, r->test_r1_vs_cl_ci) << " | " << pct(r->second_top1) << " | "
       << vs(r->second_vs_cl, r->second_vs_cl_ci) << " |\n";
}

}  // namespace

void DemoSummary::write_markdown(const std::string& path) const {
  std::ostringstream md;
  auto chosen_of = [&](DemoPart part) {
    const auto it = parts.find(part);
    return it == parts.end() || it->second.chosen.empty() ? std::string("-") : it->second.chosen;
  };
  md << "# cwcl demo: CL vs CWCL (preset `" << preset << "`)\n\n"
     << "Zero-shot top-1 / top-5 accuracy (%) on test sets; `cwcl` uses the weight map chosen on validation "
     << "(speech: `" << chosen_of(DemoPart::Speech) << "`, image: `" << chosen_of(DemoPart::Image) << "`). "
     << "Rows with a variant name are the ablation: weight maps, the directions they weight (-f2t: frozen to "
        "trained only, -t2f: trained to frozen only) and the regression baseline (cosine, cl+cosine). Speech: the "
        "main rows use the fine-tuned Whisper tower; the ablation rows (\", frozen\") the frozen encoder, each "
        "against the frozen CL row.\n\n"
     << "Intervals: 95 % percentile bootstrap over the test items (2,000 resamplings); the difference from CL is "
        "paired (both models judged on the same resampled items).\n\n";
  std::vector<const ResultRow*> rows;
  for (const auto& [part, p] : parts)
    for (const auto& r : p.results) rows.push_back(&r);
  markdown_results(md, rows);
  bool header = false;
  for (const auto& [part, p] : parts)
    for (const auto& [task, by] : p.validation)
      for (const auto& [variant, v] : by) {
        if (!header)
          md << "\nValidation score (%) that chose the map (speech: devel top-1; image: devel top-1 + image->text "
                "R@1):\n\n| task | variant | score |\n| --- | --- | ---: |\n";
        header = true;
        md << "| " << task << " | " << variant << " | " << pct(v) << " |\n";
      }
  header = false;
  for (const auto& [part, p] : parts) {
    if (!p.calibration) continue;
    if (!header)
      md << "\nAutomatic calibration (kernel bandwidth for 4 effective positives per row) against the best "
            "hand-picked map, validation top-1 (%):\n\n| part | calibrated tau | calibrated | best hand-picked | its "
            "top-1 |\n| --- | ---: | ---: | --- | ---: |\n";
    header = true;
    const auto& c = *p.calibration;
    md << "| " << name_of(part) << " | " << std::setprecision(3) << c.kernel_tau << " | " << pct(c.calibrated_top1)
       << " | " << c.best_hand_picked << " | " << pct(c.best_hand_picked_top1) << " |\n";
  }
  header = false;
  for (const auto& [part, p] : parts)
    for (const auto& t : p.templates) {
      if (!header)
        md << "\nTop-1 (%) by number of prompt templates k:\n\n| task | method | k | top-1 |\n| --- | --- | ---: | ---: |\n";
      header = true;
      md << "| " << t.task << " | " << t.method << " | " << t.k << " | " << pct(t.top1) << " |\n";
    }
  header = false;
  for (const auto& [part, p] : parts)
    for (const auto& [task, by] : p.retrieval)
      for (const auto& [method, r] : by) {
        if (!header)
          md << "\nRetrieval (%): each input's own text among the set's texts (an image's: its concept's label), and "
                "back:\n\n| task | method | input->text R@1 | R@10 | text->input R@1 | R@10 |\n"
                "| --- | --- | ---: | ---: | ---: | ---: |\n";
        header = true;
        md << "| " << task << " | " << method << " | " << pct(r.a_to_b[0]) << " | " << pct(r.a_to_b[2]) << " | "
           << pct(r.b_to_a[0]) << " | " << pct(r.b_to_a[2]) << " |\n";
      }
  header = false;
  for (const auto& [part, p] : parts)
    for (const auto& [method, f] : p.finetuned) {
      if (!header)
        md << "\nSpeech main rows: the fine-tuned Whisper tower (configs/speech_top2.toml), the model at the best "
              "SLURP devel top-1; the rows marked frozen are the map ablation on the frozen encoder.\n\n"
              "| method | weights | trained on | precision | model | train s |\n| --- | --- | --- | --- | --- | ---: |\n";
      header = true;
      md << "| " << method << " | " << f.weights << " | " << f.trained_on << " | " << f.precision << " | " << f.model
         << " | " << static_cast<int64_t>(f.train_seconds) << " |\n";
    }
  for (const auto& [part, p] : parts)
    for (const auto axis : {Modality::Speech, Modality::Image}) markdown_batch_table(md, p, axis);
  md << "\nPlots:";
  for (const auto& [part, p] : parts)
    for (const auto& plot : p.plots) md << " [" << plot << "](" << plot << ")";
  md << "\n\nTotal time: " << static_cast<int64_t>(seconds) << " s.\n";
  write_text_atomically(path, md.str());
}

}  // namespace cwcl::demo
