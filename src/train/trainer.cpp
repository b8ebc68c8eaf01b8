// The training loop and what it needs around it: resume checks, the loss
// options from the data (centre, calibration), metrics, checkpoints and
// validation, ranks of a distributed job (steps.cpp: one step).
#include <cwcl/error.h>
#include <cwcl/io/files.h>
#include <cwcl/runtime.h>
#include <cwcl/seeds.h>
#include <cwcl/threads.h>
#include <cwcl/model/model_file.h>
#include <cwcl/train/schedule.h>
#include <cwcl/train/trainer.h>

#include "run.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <limits>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

namespace cwcl {
namespace detail {

void save(Run& r, const std::string& path, int64_t step, bool with_optimizer) {
  // No file ever holds non-finite weights (train_step stops a run first).
  if (!weights_finite(r)) throw InternalError(path + ": not written: the weights at step " + std::to_string(step) +
                                              " are not finite");
  r.header.step = step;
  r.header.config = r.config;
  write_model_file(path, r.header, *r.tower, *r.criterion, with_optimizer ? r.optimizer.adamw.get() : nullptr);
}

}  // namespace detail

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace detail;
using Clock = std::chrono::steady_clock;

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
    if (before != value && !TrainConfig::may_change_on_resume(key))
      throw ConfigError(file.path() + ": config key '" + key + "' is " + shorten(before) +
                        " in the run being resumed but " + shorten(value) + " now");
  }
  c.loss.kernel_tau = saved_config.loss.kernel_tau;
  c.loss.gamma = saved_config.loss.gamma;
  c.loss.path = saved_config.loss.path;
  log("resume: from " + file.path());
  return file;
}

// Sharpness from the frozen side's statistics: the median over a few global
// batches (calibrate_weights; docs/method.md, "Calibration").
void calibrate(TrainConfig& c, WeightOptions& weights, DataSource& source, dist::Group& group, const Log& log) {
  std::vector<double> picks;
  for (int64_t b = 0; b < std::min<int64_t>(8, source.batches_per_epoch()); ++b) {
    const auto p = group.all_gather(source.batch(0, b).p);
    WeightOptions w;
    try {
      w = calibrate_weights(p, weights, c.loss.calibrate);
    } catch (const c10::Error& e) {
      // Reachable only through the data: a batch whose texts are too alike.
      throw DataError(c.data.train + ": loss.calibrate = " + std::to_string(c.loss.calibrate) +
                      " cannot be met on training batch " + std::to_string(b) + " (" + e.msg() +
                      "); its texts are too alike: lower loss.calibrate or use more varied texts");
    }
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
  if (c.loss.path == LossPath::Auto && !resuming && !group.distributed()) {
    // The faster implementation on this machine for this batch (the trained
    // side's values do not change the time: random rows of its shape).
    const auto first = source.batch(0, 0);
    const auto p = first.p.to(device);
    auto probe = o;
    if (first.labels.defined()) probe.labels = first.labels.to(device);
    probe.logit_scale = torch::tensor(std::log(1.0 / c.loss.temperature), p.options()).requires_grad_(true);
    c.loss.path = o.tiling.path = measure_loss_path(p, torch::randn_like(p), probe);
    log("loss: the " + std::string(name_of(c.loss.path)) + " path, measured faster for a batch of " +
        std::to_string(p.size(0)));
  }
  if (group.distributed()) {
    o.gather = group.gather_fn();
    o.rank = group.rank();
  }
  return o;
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

// A checkpoint of finite weights taken at a finite step; within a run of
// non-finite steps none is written (resuming from there would diverge
// again). The older ones beyond run.keep_checkpoints go once it is written.
void checkpoint(Run& r, int64_t step, const Log& log) {
  if (!r.writer) return;
  if (r.nonfinite_in_row > 0) {
    log("checkpoint at step " + std::to_string(step) + " skipped: the loss has not been finite for " +
        std::to_string(r.nonfinite_in_row) + " steps");
    return;
  }
  const auto path = checkpoint_path(r.config.run.out, step);
  save(r, path, step, true);
  r.last_checkpoint = path;
  auto all = list_checkpoints(r.config.run.out);
  for (size_t i = 0; i + static_cast<size_t>(r.config.run.keep_checkpoints) < all.size(); ++i) fs::remove(all[i]);
}

double logit_scale(const Run& r) {
  return r.criterion->logit_scale.defined() ? r.criterion->logit_scale.exp().item<double>()
                                            : 1.0 / r.config.loss.temperature;
}

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
double run_steps(Run& r, const TextTower& text, int64_t start, AppendLog* metrics,
                 const TrainOptions& options, Validator validate) {
  const auto& c = r.config;
  const int64_t per_epoch = r.source->batches_per_epoch();
  const auto t0 = Clock::now();
  MetricsWindow window;
  window.traffic_at_start = r.group->traffic();
  RunValidator validator(r, start, std::move(validate));
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
      metrics->write_line(line.dump());
    }
    if (options.progress) options.progress(pr);
    // Validation first: a crash before the checkpoint repeats it on resume.
    if (validator.due(step + 1)) validator.run(r, text, step + 1, log);
    if ((step + 1) % c.run.checkpoint_every == 0 || step + 1 == c.run.steps) checkpoint(r, step + 1, log);
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
  r.header.out_dim = text.dim;
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
  // The validation set loads now: its errors surface before any training.
  auto validate = r.writer ? make_validator(c) : Validator{};
  const Log log = options.log ? options.log : [](const std::string&) {};
  r.device = run_device(c.run.device, *r.group);
  // Resolved before the resume check and the run's config.toml, which
  // records what ran.
  c.run.precision = resolve_precision(c.run.precision, r.device);
  // One owner per run directory (rank 0 writes it), held until train()
  // returns; nothing is written before it is taken.
  std::optional<FolderLock> owner;
  if (r.writer) owner.emplace(c.run.out);
  log("device: " + r.device.str() + (c.run.precision == Precision::Bf16 ? ", bf16 autocast" : ""));
  if (c.run.precision == Precision::Bf16 && r.device.is_cpu() && !cpu_has_bf16_instructions())
    log("precision: this CPU has no bf16 instructions; libtorch's bf16 convolutions and batched products round "
        "their sums in bfloat16 here (the Whisper tower's embeddings: 10 % from float32; docs/performance.md), "
        "run.precision = \"auto\" keeps float32");
  auto resume_from = resume_point(c, options.resume, log);
  if (resume_from) r.last_checkpoint = resume_from->path();
  fs::create_directories(fs::path(c.run.out) / "checkpoints");
  ThreadCountScope threads(static_cast<int>(c.run.threads));
  torch::manual_seed(derive_seed(static_cast<uint64_t>(c.run.seed), SeedStream::Initialisation));

  const auto text = load_text_tower(c.text_tower_options());
  const int64_t start = build(r, text, resume_from ? &*resume_from : nullptr, log);
  synchronise_weights(r);
  std::unique_ptr<AppendLog> metrics;
  if (r.writer) {
    write_text_atomically((fs::path(c.run.out) / "config.toml").string(), c.to_toml());
    metrics = std::make_unique<AppendLog>((fs::path(c.run.out) / "metrics.jsonl").string(), start);
  }

  TrainSummary summary;
  summary.run_dir = c.run.out;
  summary.start_step = start;
  summary.skipped = r.source->skipped;
  summary.world_size = r.group->world_size();
  const auto t0 = Clock::now();
  summary.final_loss = run_steps(r, text, start, metrics.get(), options, std::move(validate));
  // A run that ends in non-finite steps has no model to give.
  if (r.nonfinite_in_row > 0)
    diverged(r, c.run.steps + 1 - r.nonfinite_in_row, "the loss was not finite from there to the last step");
  const auto model = (fs::path(c.run.out) / "model.pt").string();
  if (r.writer) save(r, model, c.run.steps, false);
  summary.steps = c.run.steps;
  summary.nonfinite_steps = r.nonfinite;
  summary.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (r.writer) log("model: " + model);
  return summary;
}

}  // namespace cwcl
