// cwcl eval: zero-shot evaluations.
#include "commands.h"

#include <cwcl/eval/eval.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <set>
#include <stdexcept>

namespace cwcl::app {

int run_eval_text_intent(const EvalTextIntentOptions& o) {
  const auto data = read_text_inputs(o.data, o.text_field, "", o.label_field);
  // The candidates are the classes that occur in the data (77 for SLURP test).
  const std::set<std::string> present(data.labels.begin(), data.labels.end());
  const auto labels = LabelSet::read_tsv(o.labels).subset({present.begin(), present.end()}, o.labels);
  std::vector<int64_t> targets;
  for (const auto& l : data.labels) targets.push_back(labels.index_of(l));

  const auto tower = load_text_tower(o.tower);
  auto result = zero_shot_classify(tower.encode(data.texts), tower.encode(labels.texts),
                                   torch::tensor(targets, torch::kLong));
  nlohmann::json out = {{"task", "text-intent"}, {"tower", tower.name},    {"data", o.data},
                        {"labels", o.labels},    {"n", result.n},          {"classes", labels.names.size()},
                        {"top1", result.top1},   {"top5", result.top5}};
  nlohmann::json per_class = nlohmann::json::object();
  for (size_t c = 0; c < labels.names.size(); ++c) per_class[labels.names[c]] = result.per_class_accuracy[c];
  out["per_class_top1"] = per_class;
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace cwcl::app
