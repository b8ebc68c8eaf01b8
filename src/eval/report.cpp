#include <cwcl/eval/report.h>

#include <nlohmann/json.hpp>

#include <cmath>

namespace cwcl {
namespace {

using json = nlohmann::json;

json recall(const double (&r)[3]) { return {{"r1", r[0]}, {"r5", r[1]}, {"r10", r[2]}}; }

json groups_json(const TaskResult& r, const std::string& manifest, const std::string& field) {
  json out = json::object();
  for (const auto& g : top1_by_field(r, manifest, field)) out[g.value] = {{"n", g.n}, {"top1", g.top1}};
  return out;
}

json details_json(const TaskResult& r) {
  const auto& c = r.classification;
  json per_class = json::object();
  for (size_t i = 0; i < r.class_names.size(); ++i) {
    const double a = c.per_class_accuracy[i];
    per_class[r.class_names[i]] = std::isnan(a) ? json(nullptr) : json(a);
  }
  std::vector<std::vector<int64_t>> confusion;
  auto m = c.confusion.accessor<int64_t, 2>();
  for (int64_t i = 0; i < c.confusion.size(0); ++i) {
    confusion.emplace_back();
    for (int64_t k = 0; k < c.confusion.size(1); ++k) confusion.back().push_back(m[i][k]);
  }
  return {{"per_class", per_class}, {"classes", r.class_names}, {"confusion", confusion}};
}

}  // namespace

std::string eval_report_json(const TaskResult& r, const EvalReportOptions& o) {
  const auto& c = r.classification;
  json j = {{"task", r.task}, {"n", c.n}, {"top1", c.top1}, {"top5", c.top5}, {"skipped", r.skipped}};
  if (r.retrieval)
    j["retrieval"] = {{"input_to_text", recall(r.retrieval->a_to_b)}, {"text_to_input", recall(r.retrieval->b_to_a)}};
  if (o.details) j.update(details_json(r));
  const auto intervals = top1_intervals(r, o.against);
  j["top1_ci"] = {intervals.top1.low, intervals.top1.high};
  const bool grouped = !o.group_by.empty();
  if (o.against) {
    j["difference"] = *intervals.difference;
    j["difference_ci"] = {intervals.difference_ci.low, intervals.difference_ci.high};
    const auto theirs = top1_intervals(*o.against);
    j["against"] = {{"model", o.against_name},
                    {"top1", o.against->classification.top1},
                    {"top1_ci", {theirs.top1.low, theirs.top1.high}}};
    if (grouped) j["against"]["groups"] = groups_json(*o.against, o.manifest, o.group_by);
  }
  if (grouped) j["groups"] = groups_json(r, o.manifest, o.group_by);
  return j.dump();
}

}  // namespace cwcl
