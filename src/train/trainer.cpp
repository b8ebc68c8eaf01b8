// The training loop and what it needs around it: resume checks, the loss
// options from the data (centre, calibration), optimizer groups, metrics,
// ranks of a distributed job and GradCache accumulation.
#include <cwcl/error.h>
#include <cwcl/io/files.h>
#include <cwcl/runtime.h>
#include <cwcl/seeds.h>
#include <cwcl/train/checkpoint.h>
#include <cwcl/train/schedule.h>
#include <cwcl/train/trainer.h>

#include "sources.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <limits>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

namespace cwcl {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using detail::Batch;
using detail::DataSource;
using detail::Log;
using Clock = std::chrono::steady_clock;

// Restores torch's thread count however train() leaves.
class ThreadCountGuard {
 public:
  explicit ThreadCountGuard(int threads) : previous_(torch::get_num_threads()) { set_num_threads(threads); }
  ~ThreadCountGuard() { set_num_threads(previous_); }
  ThreadCountGuard(const ThreadCountGuard&) = delete;
  ThreadCountGuard& operator=(const ThreadCountGuard&) = delete;

 private:
  int previous_;
};

// Keys a resumed run may change: the length, values set by calibration, and
// how the batch is computed (chunks, timeouts, the device), which leaves the
// result alone up to rounding.
bool may_differ_on_resume(const std::string& key) {
  return key == "run.steps" || key == "loss.kernel_tau" || key == "loss.gamma" || key == "run.accum_steps" ||
         key == "run.dist_timeout" || key == "run.device" || key == "run.eval_every" || key.rfind("eval.", 0) == 0;
}

// The newest checkpoint when resuming (its config must match), else nothing;
// refuses to overwrite an earlier run's checkpoints without --resume.
std::optional<ModelFile> resume_point(TrainConfig& c, bool resume, const Log& log) {
  const auto checkpoints = list_checkpoints(c.run.out);
  if (checkpoints.empty()) {
    if (resume) log("resume: no checkpoint in " + c.run.out + ", starting at step 0");
    return std::nullopt;
  }
  if (!resume)
    throw UsageError(c.run.out + ": holds checkpoints of an earlier run; pass --resume to continue it or choose "
                     "another run.out");
  auto file = ModelFile::open(checkpoints.back());
  const auto& saved_config = file.header().config;
  std::map<std::string, std::string> saved, now;
  for (const auto& kv : saved_config.values()) saved.insert(kv);
  for (const auto& kv : c.values()) now.insert(kv);
  for (const auto& [key, value] : now) {
    const auto it = saved.find(key);
    const std::string before = it == saved.end() ? "absent" : it->second;
    if (before != value && !may_differ_on_resume(key))
      throw ConfigError(file.path() + ": config key '" + key + "' is " + before + " in the run being resumed but " +
                        value + " now");
  }
  c.loss.kernel_tau = saved_config.loss.kernel_tau;
  c.loss.gamma = saved_config.loss.gamma;
  log("resume: from " + file.path());
  return file;
}

// Sharpness from the frozen side's statistics: the median over a few global
// batches (calibrate_weights; docs/method.md, "Calibration").
void calibrate(TrainConfig& c, WeightOptions& weights, DataSource& source, dist::Group& group, const Log& log) {
  std::vector<double> picks;
  for (int64_t b = 0; b < std::min<int64_t>(8, source.batches_per_epoch()); ++b) {
    auto w = calibrate_weights(group.all_gather(source.batch(0, b).p), weights, c.loss.calibrate);
    picks.push_back(c.loss.weights == WeightMap::Kernel ? w.kernel_tau : w.gamma);
  }
  std::sort(picks.begin(), picks.end());
  const double pick = picks[picks.size() / 2];
  const bool kernel = c.loss.weights == WeightMap::Kernel;
  (kernel ? c.loss.kernel_tau : c.loss.gamma) = pick;
  (kernel ? weights.kernel_tau : weights.gamma) = pick;
  log("calibrate: " + std::string(kernel ? "kernel_tau" : "gamma") + " = " + std::to_string(pick) + " for " +
      std::to_string(c.loss.calibrate) + " effective positives per row");
}

// The loss options, complete before the loss module is built. Ranks score
// their rows against every rank's columns.
LossOptions loss_options(TrainConfig& c, DataSource& source, dist::Group& group, bool resuming,
                         const torch::Device& device, const Log& log) {
  auto o = c.loss_options();
  if (c.loss.center) {
    namespace F = torch::nn::functional;
    o.weights.center = F::normalize(source.frozen(), F::NormalizeFuncOptions().dim(1)).mean(0).detach().to(device);
  }
  if (c.loss.calibrate > 0 && !resuming) calibrate(c, o.weights, source, group, log);
  if (group.distributed()) {
    o.gather = group.gather_fn();
    o.rank = group.rank();
  }
  return o;
}

// AdamW with one group per (tower group, decay or not): decay on matrices,
// none on vectors and scalars (biases, norms, the logit scale), as CLIP trains.
struct Optimizer {
  std::unique_ptr<torch::optim::AdamW> adamw;
  std::vector<double> base_lr;        // per param group
  std::vector<torch::Tensor> trained;  // every trained tensor (clipping)
  std::vector<ParameterGroup> named;   // the tower's groups and the criterion, by name (gradient norms)
};

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

void set_learning_rates(Optimizer& o, double factor) {
  auto& groups = o.adamw->param_groups();
  for (size_t g = 0; g < groups.size(); ++g)
    dynamic_cast<torch::optim::AdamWOptions&>(groups[g].options()).lr(o.base_lr[g] * factor);
}

// metrics.jsonl keeps the lines up to the step a run resumes from.
std::unique_ptr<std::ofstream> open_step_log(const fs::path& path, int64_t start) {
  std::vector<std::string> kept;
  if (start > 0 && fs::exists(path)) {
    for (const auto& line : read_lines(path.string())) {
      try {
        if (json::parse(line).at("step").get<int64_t>() <= start) kept.push_back(line);
      } catch (const std::exception&) {
        // a line cut by the crash: dropped
      }
    }
  }
  {
    std::ofstream out(path, std::ios::trunc);
    for (const auto& line : kept) out << line << "\n";
  }
  return std::make_unique<std::ofstream>(path, std::ios::app);
}

// run.device for this rank: "auto" and "cuda" give each rank of a machine
// its own GPU (LOCAL_RANK, round robin), as torchrun jobs expect; "cuda:<i>"
// is taken as written.
torch::Device run_device(const DeviceSpec& spec, const dist::Group& group) {
  auto device = resolve_device(spec, "run.device");
  if (device.is_cuda() && group.distributed() && spec.index < 0)  // auto or cuda, no index named
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(group.local_rank() % cuda_device_count()));
  return device;
}

// Everything one run holds while it trains.
struct Run {
  TrainConfig config;
  TrainedTower tower;
  ContrastiveLoss criterion{nullptr};
  std::unique_ptr<DataSource> source;
  Optimizer optimizer;
  bool needs_labels = false;
  ModelFileHeader header;
  std::shared_ptr<dist::Group> group;
  torch::Device device = torch::kCPU;  // run.device, resolved
  bool writer = true;            // rank 0: writes the run directory
  int64_t nonfinite = 0;         // steps skipped for a non-finite loss or gradient
  int64_t nonfinite_in_row = 0;
};

// A run gives up after this many non-finite steps in a row.
constexpr int64_t kMaxNonfiniteInRow = 20;

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

// The batch on the run's device (the sources build batches on the CPU).
Batch on_device(const Batch& b, const torch::Device& device) {
  auto move = [&](const torch::Tensor& t) { return t.defined() ? t.to(device) : t; };
  return {move(b.x), move(b.lengths), move(b.p), move(b.labels)};
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

// One optimizer step at `lr_factor` times every group's base rate;
// `grad_norms` (when given) receives each group's gradient norm before
// clipping. A non-finite loss or gradient skips the step on every rank.
double train_step(Run& r, const Batch& batch, int64_t step, double lr_factor, json* grad_norms = nullptr) {
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
      throw InternalError("train: the loss or gradient was not finite for " + std::to_string(kMaxNonfiniteInRow) +
                          " steps in a row, up to step " + std::to_string(step + 1) +
                          " (lower optim.lr?); the last checkpoint is kept");
    r.optimizer.adamw->zero_grad();
    return value;
  }
  r.nonfinite_in_row = 0;
  r.optimizer.adamw->step();
  return value;
}

void save(Run& r, const std::string& path, int64_t step, bool with_optimizer) {
  r.header.step = step;
  r.header.config = r.config;
  write_model_file(path, r.header, *r.tower, *r.criterion, with_optimizer ? r.optimizer.adamw.get() : nullptr);
}

void checkpoint(Run& r, int64_t step) {
  if (!r.writer) return;
  save(r, checkpoint_path(r.config.run.out, step), step, true);
  auto all = list_checkpoints(r.config.run.out);
  for (size_t i = 0; i + static_cast<size_t>(r.config.run.keep_checkpoints) < all.size(); ++i) fs::remove(all[i]);
}

double logit_scale(const Run& r) {
  return r.criterion->logit_scale.defined() ? r.criterion->logit_scale.exp().item<double>()
                                            : 1.0 / r.config.loss.temperature;
}

// run.eval_every: each validation a line of results.jsonl, the best model so
// far best.pt. Rank 0 validates; the others wait for it on the store rather
// than in a collective, so a long validation does not trip run.dist_timeout.
class Validator {
 public:
  Validator(const Run& r, const TrainOptions& options, int64_t start)
      : validate_(options.validate), every_(r.config.run.eval_every), steps_(r.config.run.steps) {
    if (every_ == 0 || !r.writer) return;
    if (!validate_) throw InternalError("train: run.eval_every is set but no validation was given");
    const auto dir = fs::path(r.config.run.out);
    best_path_ = (dir / "best.pt").string();
    results_ = open_step_log(dir / "results.jsonl", start);  // keeps the lines up to `start`
    for (const auto& line : read_lines((dir / "results.jsonl").string()))
      best_ = std::max(best_, json::parse(line).at("score").get<double>());
  }

  bool due(int64_t done) const { return every_ > 0 && (done % every_ == 0 || done == steps_); }

  void run(Run& r, const TextTower& text, int64_t done, const Log& log) {
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
    *results_ << line.dump() << "\n" << std::flush;
    if (v.score > best_) {
      best_ = v.score;
      save(r, best_path_, done, false);
    }
    log("validation at step " + std::to_string(done) + ": score " + std::to_string(v.score) + " (best " +
        std::to_string(best_) + ")");
    r.group->set(key, "1");
  }

 private:
  std::function<Validation(TrainedModel&, const TextTower&)> validate_;
  int64_t every_, steps_;
  std::string best_path_;
  std::unique_ptr<std::ofstream> results_;
  double best_ = -std::numeric_limits<double>::infinity();
};

// The steps since the last metrics line: throughput and what the
// collectives cost (rank 0's view).
struct MetricsWindow {
  Clock::time_point start = Clock::now();
  int64_t steps = 0;
  dist::Group::Traffic traffic_at_start;

  json close(const Run& r) {
    const double seconds = std::max(std::chrono::duration<double>(Clock::now() - start).count(), 1e-9);
    const auto t = r.group->traffic();
    const auto n = static_cast<double>(std::max<int64_t>(steps, 1));
    json out{{"samples_per_s", static_cast<double>(steps * r.config.run.batch_size) / seconds},
             {"ranks", r.group->world_size()}};
    if (r.group->distributed()) {
      out["comm_bytes_per_step"] = static_cast<double>(t.bytes_sent - traffic_at_start.bytes_sent) / n;
      out["comm_fraction"] = (t.seconds - traffic_at_start.seconds) / seconds;
    }
    *this = MetricsWindow{};
    traffic_at_start = t;
    return out;
  }
};

// Runs steps [start, steps): metrics every log_every, checkpoints every
// checkpoint_every (rank 0 only: `metrics` is null elsewhere).
double run_steps(Run& r, const TextTower& text, int64_t start, std::ofstream* metrics,
                 const TrainOptions& options) {
  const auto& c = r.config;
  const int64_t per_epoch = r.source->batches_per_epoch();
  const auto t0 = Clock::now();
  MetricsWindow window;
  window.traffic_at_start = r.group->traffic();
  Validator validator(r, options, start);
  const Log log = options.log ? options.log : [](const std::string&) {};
  double last = 0;
  const ScheduleOptions schedule{c.run.steps, c.optim.warmup, c.optim.lr, c.optim.min_lr};
  r.tower->train();
  for (int64_t step = start; step < c.run.steps; ++step) {
    const int64_t epoch = step / per_epoch;
    const bool log_step = (step + 1) % c.run.log_every == 0 || step + 1 == c.run.steps;
    const double lr_factor = learning_rate_factor(schedule, step);
    json grad_norms;
    last = train_step(r, on_device(r.source->batch(epoch, step % per_epoch), r.device), step, lr_factor,
                      log_step ? &grad_norms : nullptr);
    ++window.steps;
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    TrainProgress pr{step + 1, c.run.steps, last, logit_scale(r),
                     c.optim.lr * lr_factor,
                     static_cast<double>((step + 1 - start) * c.run.batch_size) / std::max(elapsed, 1e-9),
                     static_cast<double>(c.run.steps - step - 1) * elapsed / static_cast<double>(step + 1 - start)};
    if (log_step && metrics) {
      json line{{"step", pr.step}, {"epoch", epoch}, {"loss", last}, {"logit_scale", pr.logit_scale},
                {"lr", pr.lr}, {"skipped", r.source->skipped}, {"nonfinite_steps", r.nonfinite},
                {"grad_norm", grad_norms}};
      line.update(window.close(r));
      *metrics << line.dump() << "\n" << std::flush;
    }
    if (options.progress) options.progress(pr);
    // Validation first: a crash before the checkpoint repeats it on resume.
    if (validator.due(step + 1)) validator.run(r, text, step + 1, log);
    if ((step + 1) % c.run.checkpoint_every == 0 || step + 1 == c.run.steps) checkpoint(r, step + 1);
  }
  return last;
}

// The data source of this rank. Rank 0 builds the caches (features, pooled
// outputs, text stores) first; the others wait for it, then read them.
std::unique_ptr<DataSource> prepare_data(Run& r, const TextTower& text, const Log& log) {
  auto& g = *r.group;
  const Shard shard{g.rank(), g.world_size()};
  // Preparing a large corpus can take long; rank 0 failing ends the wait at once.
  constexpr auto kPreparation = std::chrono::hours(6);
  if (!r.writer) {
    log("waiting for rank 0 to prepare the data");
    g.wait_for("prepared", kPreparation);
  }
  auto source = detail::make_data_source(r.config, *r.tower, text, log, shard);
  if (r.writer) g.set("prepared", "1");
  return source;
}

// The tower, the data, the loss and the optimizer of a run, on its device,
// from the checkpoint when resuming. Returns the step to start at.
// Checkpoints load on the CPU, then the tower, the loss and the optimizer
// state move to run.device.
int64_t build(Run& r, const TextTower& text, ModelFile* resume_from, const Log& log) {
  const auto& c = r.config;
  r.header.out_dim = text.encode({"a"}).size(1);
  r.tower = make_tower(c.model, r.header.out_dim, TowerWeights::Pretrained);
  r.header.architecture = r.tower->architecture();
  if (resume_from) resume_from->load("tower", *r.tower);
  r.tower->to(r.device);
  r.source = prepare_data(r, text, log);
  TORCH_CHECK(r.source->batches_per_epoch() >= 1, "train: no full batch in the training data");
  r.criterion = ContrastiveLoss(loss_options(r.config, *r.source, *r.group, resume_from != nullptr, r.device, log),
                                c.loss.learn_temperature);
  if (resume_from) resume_from->load("criterion", *r.criterion);
  r.criterion->to(r.device);
  r.needs_labels = c.loss.kind == LossKind::SupCon || c.loss.weights == WeightMap::Labels;
  r.optimizer = make_optimizer(*r.tower, *r.criterion, c);
  if (!resume_from) return 0;
  resume_from->load_optimizer(*r.optimizer.adamw);
  move_optimizer_state(*r.optimizer.adamw, r.device);
  return resume_from->header().step;
}

// Every rank starts from rank 0's weights (identical already when they were
// seeded alike or loaded from one checkpoint; this makes it certain).
void synchronise_weights(Run& r) {
  if (!r.group->distributed()) return;
  std::vector<torch::Tensor> tensors;
  for (auto& p : r.tower->parameters()) tensors.push_back(p);
  for (auto& b : r.tower->buffers()) tensors.push_back(b);
  for (auto& p : r.criterion->parameters()) tensors.push_back(p);
  r.group->broadcast(tensors, 0, "initial weights");
}

}  // namespace

TrainSummary train(const TrainConfig& given, const TrainOptions& options) {
  given.validate();
  Run r;
  r.config = given;
  auto& c = r.config;
  r.group = options.group ? options.group : dist::Group::single();
  r.writer = r.group->rank() == 0;
  c.validate_split(r.group->world_size());
  const Log log = options.log ? options.log : [](const std::string&) {};
  r.device = run_device(c.run.device, *r.group);
  log("device: " + r.device.str() + (c.run.precision == Precision::Bf16 ? ", bf16 autocast" : ""));
  auto resume_from = resume_point(c, options.resume, log);
  fs::create_directories(fs::path(c.run.out) / "checkpoints");
  ThreadCountGuard threads(static_cast<int>(c.run.threads));
  torch::manual_seed(derive_seed(static_cast<uint64_t>(c.run.seed), SeedStream::Initialisation));

  const auto text = load_text_tower(c.text_tower_options());
  const int64_t start = build(r, text, resume_from ? &*resume_from : nullptr, log);
  synchronise_weights(r);
  std::unique_ptr<std::ofstream> metrics;
  if (r.writer) {
    std::ofstream(fs::path(c.run.out) / "config.toml") << c.to_toml();
    metrics = open_step_log(fs::path(c.run.out) / "metrics.jsonl", start);
  }

  TrainSummary summary;
  summary.run_dir = c.run.out;
  summary.start_step = start;
  summary.skipped = r.source->skipped;
  summary.world_size = r.group->world_size();
  const auto t0 = Clock::now();
  summary.final_loss = run_steps(r, text, start, metrics.get(), options);
  const auto model = (fs::path(c.run.out) / "model.pt").string();
  if (r.writer) save(r, model, c.run.steps, false);
  summary.steps = c.run.steps;
  summary.nonfinite_steps = r.nonfinite;
  summary.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (r.writer) log("model: " + model);
  return summary;
}

}  // namespace cwcl
