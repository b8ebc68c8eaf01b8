// One training step: the tower on the batch (in GradCache chunks when
// run.accum_steps > 1), the loss over the global batch, gradients summed
// over ranks, clipping and the AdamW update.
#include <cwcl/error.h>
#include <cwcl/seeds.h>

#include "run.h"

#include <cmath>
#include <limits>
#include <sstream>

namespace cwcl::detail {
namespace {

using json = nlohmann::json;

void set_learning_rates(Optimizer& o, double factor) {
  auto& groups = o.adamw->param_groups();
  for (size_t g = 0; g < groups.size(); ++g)
    dynamic_cast<torch::optim::AdamWOptions&>(groups[g].options()).lr(o.base_lr[g] * factor);
}

// The L2 norm of each named group's gradients (before clipping).
json gradient_norms(const Optimizer& o) {
  json out = json::object();
  for (const auto& g : o.named) {
    double sum = 0;
    for (const auto& p : g.parameters)
      if (p.grad().defined()) sum += p.grad().pow(2).sum().item<double>();
    out[g.name] = std::sqrt(sum);
  }
  return out;
}

// The tower's noise (dropout) for one chunk of this rank's share of a step:
// GradCache's second pass recomputes a chunk with the noise of its first.
void seed_noise(const Run& r, int64_t step, int64_t chunk) {
  const auto slot = static_cast<uint64_t>(r.group->rank() * r.config.run.accum_steps + chunk);
  torch::manual_seed(derive_seed(static_cast<uint64_t>(r.config.run.seed), SeedStream::StepNoise,
                                 static_cast<uint64_t>(step), slot));
}

// The trained tower's forward pass, under bf16 autocast when run.precision
// says so; the loss always sees float32.
torch::Tensor embed(Run& r, const Batch& b) {
  AutocastScope autocast(r.config.run.precision, r.device);
  auto q = r.source->pooled() ? r.tower->head(b.x) : r.tower->forward(b.x, b.lengths);
  return q.to(torch::kFloat);
}

Batch chunk_of(const Batch& b, int64_t k, int64_t chunks) {
  const int64_t n = b.p.size(0) / chunks;
  auto cut = [&](const torch::Tensor& t) { return t.defined() ? t.narrow(0, k * n, n) : t; };
  return {cut(b.x), cut(b.lengths), cut(b.p), cut(b.labels)};
}

// GradCache pass 1 (Gao et al. 2021): the embeddings of every chunk without a
// graph. Buffers (BatchNorm's running statistics) are put back afterwards so
// that only the second pass updates them.
torch::Tensor embed_without_graph(Run& r, const Batch& batch, int64_t step) {
  std::vector<torch::Tensor> saved;
  for (const auto& b : r.tower->buffers()) saved.push_back(b.clone());
  std::vector<torch::Tensor> parts;
  {
    torch::NoGradGuard no_grad;
    for (int64_t k = 0; k < r.config.run.accum_steps; ++k) {
      seed_noise(r, step, k);
      parts.push_back(embed(r, chunk_of(batch, k, r.config.run.accum_steps)));
    }
    auto buffers = r.tower->buffers();
    for (size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(saved[i]);
  }
  return torch::cat(parts).requires_grad_(true);
}

// The loss over the global batch and, when every rank's share is finite, the
// gradients of this rank's tower (not yet summed over ranks). Returns the
// global loss. All ranks agree on it before any backward pass, whose
// collectives need every rank.
double loss_and_gradients(Run& r, const Batch& batch, int64_t step) {
  const int64_t chunks = r.config.run.accum_steps;
  torch::Tensor q;
  if (chunks == 1) {
    seed_noise(r, step, 0);
    q = embed(r, batch);
  } else {
    q = embed_without_graph(r, batch, step);
  }
  // The loss refuses non-finite embeddings: every rank skips when any has one.
  const std::string at = " of step " + std::to_string(step + 1);
  const double nonfinite_ranks =
      r.group->all_reduce_sum(torch::isfinite(q).all().item<bool>() ? 0.0 : 1.0, "finite embeddings" + at);
  if (nonfinite_ranks > 0) return std::numeric_limits<double>::quiet_NaN();
  auto loss = r.criterion->forward(batch.p, q, r.needs_labels ? batch.labels : torch::Tensor());
  const double value = r.group->all_reduce_sum(loss.item<double>(), "loss" + at);
  if (!std::isfinite(value)) return value;
  loss.backward();
  if (chunks > 1) {
    // GradCache pass 2: each chunk again, with its graph, fed its slice of dL/dq.
    const auto dq = q.grad();
    const int64_t n = dq.size(0) / chunks;
    for (int64_t k = 0; k < chunks; ++k) {
      seed_noise(r, step, k);
      embed(r, chunk_of(batch, k, chunks)).backward(dq.narrow(0, k * n, n));
    }
  }
  return value;
}

// Sums every trained tensor's gradient over ranks: the gradient of the
// global loss, identical on every rank.
void sum_gradients(Run& r) {
  if (!r.group->distributed()) return;
  std::vector<torch::Tensor> grads;
  for (auto& p : r.optimizer.trained) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
  }
  r.group->all_reduce_sum(grads, "gradients");
}

}  // namespace

Optimizer make_optimizer(TrainedTowerImpl& tower, ContrastiveLossImpl& criterion, const TrainConfig& c) {
  auto groups = tower.parameter_groups({c.optim.lr, c.optim.encoder_lr});
  groups.push_back({"criterion", criterion.parameters(), c.optim.lr});
  Optimizer out;
  out.named = groups;
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  for (const auto& g : groups) {
    std::vector<torch::Tensor> decay, plain;
    for (const auto& p : g.parameters)
      if (p.requires_grad()) (p.dim() >= 2 ? decay : plain).push_back(p);
    for (int k = 0; k < 2; ++k) {
      auto& list = k == 0 ? decay : plain;
      if (list.empty()) continue;
      auto o = std::make_unique<torch::optim::AdamWOptions>(g.learning_rate);
      o->weight_decay(k == 0 ? c.optim.weight_decay : 0.0);
      param_groups.emplace_back(list, std::move(o));
      out.base_lr.push_back(g.learning_rate);
      out.trained.insert(out.trained.end(), list.begin(), list.end());
    }
  }
  out.adamw = std::make_unique<torch::optim::AdamW>(std::move(param_groups), torch::optim::AdamWOptions(c.optim.lr));
  return out;
}

Batch on_device(const Batch& b, const torch::Device& device) {
  auto move = [&](const torch::Tensor& t) { return t.defined() ? t.to(device) : t; };
  return {move(b.x), move(b.lengths), move(b.p), move(b.labels)};
}

double train_step(Run& r, const Batch& batch, int64_t step, double lr_factor, json* grad_norms) {
  const auto& c = r.config;
  set_learning_rates(r.optimizer, lr_factor);
  r.optimizer.adamw->zero_grad();
  const double value = loss_and_gradients(r, batch, step);
  double norm = value;
  if (std::isfinite(value)) {
    sum_gradients(r);
    if (grad_norms) *grad_norms = gradient_norms(r.optimizer);
    norm = torch::nn::utils::clip_grad_norm_(r.optimizer.trained,
                                             c.optim.clip > 0 ? c.optim.clip : std::numeric_limits<double>::infinity());
  }
  if (!std::isfinite(norm)) {
    ++r.nonfinite;
    if (++r.nonfinite_in_row >= kMaxNonfiniteInRow)
      diverged(r, step + 2 - r.nonfinite_in_row,
               "the loss or gradient was not finite for " + std::to_string(kMaxNonfiniteInRow) + " steps in a row");
    r.optimizer.adamw->zero_grad();
    return value;
  }
  r.nonfinite_in_row = 0;
  r.optimizer.adamw->step();
  // An update can overflow the weights from a finite gradient (a huge
  // rate); nothing recovers from that, so the run stops here.
  if (!weights_finite(r)) diverged(r, step + 1, "the update left non-finite weights");
  return value;
}

bool weights_finite(Run& r) {
  std::vector<torch::Tensor> checks;
  for (const auto& p : r.tower->parameters()) checks.push_back(torch::isfinite(p).all());
  for (const auto& b : r.tower->buffers())
    if (b.is_floating_point()) checks.push_back(torch::isfinite(b).all());
  for (const auto& p : r.criterion->parameters()) checks.push_back(torch::isfinite(p).all());
  return checks.empty() || torch::stack(checks).all().item<bool>();
}

void diverged(const Run& r, int64_t since_step, const std::string& how) {
  std::ostringstream lr;
  lr << r.config.optim.lr;
  throw DivergedError("train: the run diverged at step " + std::to_string(since_step) + ": " + how +
                      " (optim.lr = " + lr.str() + "; a lower rate may help). " +
                      (r.last_checkpoint.empty() ? std::string("No checkpoint was written.")
                                                 : "The last checkpoint, with finite weights, is " + r.last_checkpoint +
                                                       "."));
}


}  // namespace cwcl::detail
