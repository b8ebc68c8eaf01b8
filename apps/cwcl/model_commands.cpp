// cwcl train, info, export, zeroshot, eval speech|image, demo, bench.
#include "commands.h"
#include "console.h"

#include <cwcl/dist.h>
#include <cwcl/eval/report.h>
#include <cwcl/eval/tasks.h>
#include <cwcl/io/files.h>
#include <cwcl/model/export.h>
#include <cwcl/train/trainer.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include <sys/resource.h>
#include <unistd.h>

namespace cwcl::app {
namespace {

using json = nlohmann::json;

std::string duration(double seconds) {
  const auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s / 60 % 60);
  else std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  return buf;
}

// This process's peak resident memory so far.
double peak_rss_mib() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// "step 12/500  loss ..." for a progress report.
std::string progress_text(const TrainProgress& p) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "step %lld/%lld  loss %.4f  scale %.1f  lr %.2e  %.0f samples/s  ETA %s",
                static_cast<long long>(p.step), static_cast<long long>(p.steps), p.loss, p.logit_scale, p.lr,
                p.samples_per_second, duration(p.eta_seconds).c_str());
  return buf;
}

// Progress as one line rewritten on a terminal, or as a line per
// progress_interval_seconds() on stderr when stdout is a log; messages on stderr.
TrainOptions console_train_options(bool resume, const std::string& prefix) {
  TrainOptions o;
  o.resume = resume;
  o.log = console_log(prefix);
  if (::isatty(STDOUT_FILENO)) {
    o.progress = [prefix](const TrainProgress& p) {
      std::printf("\r%s%s   ", prefix.c_str(), progress_text(p).c_str());
      if (p.step == p.steps) std::printf("\n");
      std::fflush(stdout);
    };
  } else {
    auto pacer = std::make_shared<ProgressPacer>(progress_interval_seconds());
    o.progress = [prefix, pacer](const TrainProgress& p) {
      if (pacer->due(p.step == p.steps)) std::cerr << prefix << progress_text(p) << std::endl;
    };
  }
  return o;
}

// This command again for each rank: the same arguments without --nproc.
std::vector<std::string> rank_command(const std::vector<std::string>& command_line) {
  std::vector<std::string> out{std::filesystem::canonical("/proc/self/exe").string()};
  for (size_t i = 1; i < command_line.size(); ++i) {
    if (command_line[i] == "--nproc") {
      ++i;
      continue;
    }
    if (command_line[i].rfind("--nproc=", 0) == 0) continue;
    out.push_back(command_line[i]);
  }
  return out;
}

// cwcl train --nproc N: N local ranks; rank 0's output here, the others' in
// <run.out>/logs/rank<k>.log.
int launch_ranks(const TrainCommandOptions& o, const TrainConfig& config) {
  config.validate_split(o.nproc);
  FolderLock::check_free(config.run.out);  // rank 0 takes it; a busy directory fails before any rank starts
  dist::LaunchOptions l;
  l.ranks = o.nproc;
  l.argv = rank_command(o.command_line);
  l.log_dir = (std::filesystem::path(config.run.out) / "logs").string();
  // A failed rank's peers notice within the timeout and say whom they miss.
  l.grace = std::chrono::milliseconds(static_cast<int64_t>(config.run.dist_timeout * 1000)) + std::chrono::seconds(2);
  std::cerr << "cwcl train: " << o.nproc << " ranks; ranks 1.." << o.nproc - 1 << " log to " << l.log_dir << "\n";
  const auto result = dist::launch_local(l);
  if (result.exit_code != 0)
    std::cerr << "cwcl train: " << result.message << " (its log: "
              << (result.failed_rank == 0 ? std::string("above")
                                          : l.log_dir + "/rank" + std::to_string(result.failed_rank) + ".log")
              << ")\n";
  return result.exit_code;
}

// A trained model on the device --device names (resolved first: a bad
// device fails before the model loads), run in --precision.
TrainedModel load_on(const std::string& path, const DeviceSpec& spec, Precision precision) {
  const auto device = resolve_device(spec, "--device");
  auto model = TrainedModel::load(path);
  model.to(device).set_precision(precision);
  return model;
}

TrainedModel load_speech_model(const std::string& path, const DeviceSpec& device, Precision precision) {
  auto model = load_on(path, device, precision);
  if (model.modality() != Modality::Speech) throw UsageError(path + ": an image model; use cwcl eval image");
  return model;
}

int print(const std::string& json_line) {
  std::cout << json_line << std::endl;
  return 0;
}

}  // namespace

int run_train(const TrainCommandOptions& o) {
  auto config = TrainConfig::from_file(o.config);
  for (const auto& s : o.set) config.set(s);
  config.validate();
  const auto env = dist::Environment::from_process();
  if (o.nproc > 1) {
    if (env.world_size > 1)
      throw UsageError("--nproc starts its own ranks; under torchrun (WORLD_SIZE = " +
                       std::to_string(env.world_size) + ") leave it out");
    return launch_ranks(o, config);
  }
  const std::string prefix = env.rank == 0 ? "" : "rank " + std::to_string(env.rank) + ": ";
  auto options = console_train_options(o.resume, prefix);
  if (env.world_size > 1) {
    dist::GroupOptions g;
    g.timeout = std::chrono::milliseconds(static_cast<int64_t>(config.run.dist_timeout * 1000));
    options.log("joining " + std::to_string(env.world_size) + " ranks at " + env.master_addr + ":" +
                std::to_string(env.master_port));
    options.group = dist::Group::join(env, g);
    if (env.rank != 0) options.progress = nullptr;
  }
  auto summary = train(config, options);
  if (env.rank != 0) return 0;
  return print(json{{"run_dir", summary.run_dir},
                    {"steps", summary.steps},
                    {"resumed_at", summary.start_step},
                    {"seconds", summary.seconds},
                    {"final_loss", summary.final_loss},
                    {"skipped", summary.skipped},
                    {"nonfinite_steps", summary.nonfinite_steps},
                    {"ranks", summary.world_size},
                    {"peak_rss_mib", peak_rss_mib()}}
                   .dump());
}

int run_info_model(const std::string& path) {
  auto model = TrainedModel::load(path);
  int64_t parameters = 0;
  for (const auto& p : model.tower().parameters()) parameters += p.numel();
  const auto& c = model.config();
  return print(json{{"source", model.source()},
                    {"step", model.step()},
                    {"tower", name_of(tower_kind(c.model))},
                    {"loss", name_of(c.loss.kind)},
                    {"weights", name_of(c.loss.weights)},
                    {"text_tower", name_of(c.text.tower)},
                    {"parameters", parameters},
                    {"weights_digest", model.weights_digest()}}
                   .dump());
}

int run_compare_models(const std::string& a, const std::string& b) {
  auto ma = TrainedModel::load(a), mb = TrainedModel::load(b);
  const auto d = compare_weights(ma, mb);
  return print(json{{"a", ma.source()}, {"b", mb.source()}, {"tensors", d.tensors}, {"max_abs_diff", d.max_abs},
                    {"max_rel_diff", d.max_rel}, {"worst", d.worst}}
                   .dump());
}

int run_export(const ExportOptions& o) {
  auto model = TrainedModel::load(o.model);
  const auto r = export_model(model, o.out);
  return print(json{{"folder", r.folder}, {"tensors", r.tensors}, {"parameters", r.parameters}}.dump());
}

int run_zeroshot(const ZeroshotOptions& o) {
  auto model = load_on(o.model, o.device, o.precision);
  if (o.keep_silence) model.set_trim_silence(false);
  const auto labels = LabelSet::read(o.labels);
  const auto text = model.text_tower();
  std::vector<std::string> templates;
  if (!o.templates.empty()) templates = read_templates(o.templates);
  const auto classes = class_embeddings(text.encode, labels.texts, templates);
  int failures = 0;
  for (const auto& input : o.inputs) {
    torch::Tensor q;
    try {
      q = model.embed_files({input});
    } catch (const DataError& e) {
      std::cerr << "cwcl zeroshot: skipped " << e.what() << "\n";
      ++failures;
      continue;
    }
    auto scores = torch::mm(q, classes.t()).squeeze(0);
    json s = json::object();
    for (size_t i = 0; i < labels.names.size(); ++i) s[labels.names[i]] = scores[static_cast<int64_t>(i)].item<double>();
    const auto best = scores.argmax().item<int64_t>();
    std::cout << json{{"input", input}, {"label", labels.names[static_cast<size_t>(best)]}, {"scores", s}}.dump()
              << "\n";
  }
  if (failures) std::cerr << "cwcl zeroshot: " << failures << " of " << o.inputs.size() << " inputs unreadable\n";
  return failures ? exit_code(ErrorKind::Data) : 0;
}

namespace {

// Loads the --against model and checks that it shares the text tower of the
// model it is compared with.
TrainedModel comparable_model(TrainedModel& model, const std::string& path, const std::string& against,
                              const DeviceSpec& device) {
  auto other = load_on(against, device, model.precision());
  const auto &mine = model.config().text, &theirs = other.config().text;
  if (mine.tower != theirs.tower || mine.model != theirs.model)
    throw UsageError(against + ": trained against another text tower than " + path + "; not comparable");
  if (other.modality() != model.modality())
    throw UsageError(against + ": " + (other.modality() == Modality::Image ? "an image model" : "a speech model") +
                     ", not comparable with " + path);
  return other;
}

// A task's report, with the --against model's result on the same items.
int report_task(TrainedModel& model, const std::string& path, const std::string& against, const DeviceSpec& device,
                const std::function<TaskResult(TrainedModel&)>& evaluate, EvalReportOptions report) {
  const auto r = evaluate(model);
  TaskResult baseline;
  if (!against.empty()) {
    auto other = comparable_model(model, path, against, device);
    baseline = evaluate(other);
    report.against = &baseline;
    report.against_name = against;
  }
  return print(eval_report_json(r, report));
}

}  // namespace

int run_eval_speech(const EvalSpeechOptions& o) {
  auto model = load_speech_model(o.model, o.device, o.precision);
  if (o.keep_silence) model.set_trim_silence(false);
  const auto data = SpeechTaskData::load({o.task, o.manifest, o.label_field, o.labels, o.filter_field, o.templates});
  const auto text = model.text_tower();
  EvalReportOptions report;
  report.details = o.details;
  report.group_by = o.group_by;
  report.manifest = o.manifest;
  return report_task(model, o.model, o.against, o.device,
                     [&](TrainedModel& m) { return evaluate_speech(m, text, data); }, report);
}

int run_eval_image(const EvalImageOptions& o) {
  auto model = load_on(o.model, o.device, o.precision);
  if (model.modality() != Modality::Image) throw UsageError(o.model + ": a speech model; use cwcl eval speech");
  EvalReportOptions report;
  report.details = o.details;
  if (o.manifest.empty()) {
    if (!o.labels.empty() || !o.templates.empty() || !o.against.empty() || !o.group_by.empty())
      throw UsageError("--labels, --prompts, --against and --group-by need --manifest");
    const auto task = o.task.empty() ? std::string("fmnist") : o.task;
    const auto r = evaluate_images(model, model.text_tower(), {task, o.classes, o.k, o.validation});
    return print(eval_report_json(r, report));
  }
  if (o.validation) throw UsageError("--validation is for Fashion-MNIST; with --manifest the manifest is the set");
  const auto data = ImageManifestTaskData::load({o.task.empty() ? "images" : o.task, o.manifest, o.labels, o.templates});
  const auto text = model.text_tower();
  report.group_by = o.group_by;
  report.manifest = o.manifest;
  return report_task(model, o.model, o.against, o.device,
                     [&](TrainedModel& m) { return evaluate_image_manifest(m, text, data); }, report);
}

int run_demo(const DemoOptions& o) {
  auto options = o;
  const auto train_options = console_train_options(true, "  ");
  options.log = console_log("demo: ");
  options.progress = train_options.progress;
  const auto summary = run_demo_protocol(options);
  std::cout << "demo: " << summary << "\n";
  return 0;
}

int run_bench_loss(const LossBenchOptions& o) { return print(bench_loss(o)); }
int run_bench_tower(const TowerBenchOptions& o) { return print(bench_tower(o)); }
int run_bench_text(const TextBenchOptions& o) { return print(bench_text(o)); }
int run_bench_image(const ImageBenchOptions& o) {
  std::cout << bench_image(o);
  return 0;
}
int run_bench_steps(const StepsBenchOptions& o) {
  std::cout << bench_steps(o);
  return 0;
}

}  // namespace cwcl::app
