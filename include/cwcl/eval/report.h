// An evaluation as one JSON object (a line of `cwcl eval`).
#pragma once

#include <cwcl/eval/tasks.h>

#include <string>

namespace cwcl {

struct EvalReportOptions {
  bool details = false;              ///< per-class accuracy, class names and the confusion matrix
  const TaskResult* against = nullptr;  ///< a second model on the same items: paired difference
  std::string against_name;
  /// A manifest field to break top-1 down by (speech; both models).
  std::string group_by, manifest;
};

/// {"task", "n", "top1", "top5", "skipped", "top1_ci", ["retrieval"],
///  [details: "per_class", "classes", "confusion"], [against: "difference",
///  "difference_ci", "against": {"model", "top1", "top1_ci", ["groups"]}],
///  ["groups": {value: {"n", "top1"}}]}
std::string eval_report_json(const TaskResult& result, const EvalReportOptions& options = {});

}  // namespace cwcl
