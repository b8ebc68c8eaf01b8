// cwcl eval: zero-shot evaluations.
#include "commands.h"

#include <cwcl/eval.h>
#include <cwcl/text_encoder.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <set>
#include <stdexcept>

namespace cwcl::app {

int run_eval_text_intent(const EvalTextIntentOptions& o) {
  if (o.tower != "minilm") throw std::invalid_argument("--tower: unknown tower '" + o.tower + "' (accepted: minilm)");
  const auto data = read_text_inputs(o.data, o.text_field, "", o.label_field);
  // The candidates are the classes that occur in the data (77 for SLURP test).
  const std::set<std::string> present(data.labels.begin(), data.labels.end());
  const auto labels = LabelSet::read_tsv(o.labels).subset({present.begin(), present.end()}, o.labels);
  std::vector<int64_t> targets;
  for (const auto& l : data.labels) targets.push_back(labels.index_of(l));

  auto encoder = SentenceEncoder::from_folder(o.model.empty() ? model_folder("all-MiniLM-L6-v2") : o.model);
  auto result = zero_shot_classify(encoder.encode(data.texts), encoder.encode(labels.texts),
                                   torch::tensor(targets, torch::kLong));
  nlohmann::json out = {{"task", "text-intent"}, {"tower", o.tower},       {"data", o.data},
                        {"labels", o.labels},    {"n", result.n},          {"classes", labels.names.size()},
                        {"top1", result.top1},   {"top5", result.top5}};
  nlohmann::json per_class = nlohmann::json::object();
  for (size_t c = 0; c < labels.names.size(); ++c) per_class[labels.names[c]] = result.per_class_accuracy[c];
  out["per_class_top1"] = per_class;
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace cwcl::app
