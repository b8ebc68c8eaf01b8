#include <cwcl/error.h>
#include <cwcl/io/files.h>

#include "run.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <limits>

namespace cwcl::detail {
namespace {
using json = nlohmann::json;
}  // namespace

RunValidator::RunValidator(const Run& r, int64_t start, Validator validate)
    : validate_(std::move(validate)),
      every_(r.config.run.eval_every),
      steps_(r.config.run.steps),
      best_(-std::numeric_limits<double>::infinity()) {
  if (every_ == 0 || !r.writer) return;
  if (!validate_) throw InternalError("train: run.eval_every is set but rank 0 has no validation");
  const auto dir = std::filesystem::path(r.config.run.out);
  best_path_ = (dir / "best.pt").string();
  const auto results = (dir / "results.jsonl").string();
  results_ = std::make_unique<AppendLog>(results, start);  // keeps the lines up to `start`
  for (const auto& line : read_lines(results)) best_ = std::max(best_, json::parse(line).at("score").get<double>());
}

void RunValidator::run(Run& r, const TextTower& text, int64_t done, const Log& log) {
  const std::string key = "validated-" + std::to_string(done);
  if (!r.writer) {
    r.group->wait_for(key, std::chrono::hours(6));
    return;
  }
  r.tower->eval();
  auto model = TrainedModel::of_tower(r.config, r.tower, done);
  const auto v = validate_(model, text);
  r.tower->train();
  json line{{"step", done}, {"score", v.score}};
  for (const auto& [name, value] : v.values) line[name] = value;
  results_->write_line(line.dump());
  if (v.score > best_) {
    best_ = v.score;
    save(r, best_path_, done, false);
  }
  log("validation at step " + std::to_string(done) + ": score " + std::to_string(v.score) + " (best " +
      std::to_string(best_) + ")");
  r.group->set(key, "1");
}

}  // namespace cwcl::detail
