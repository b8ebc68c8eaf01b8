// cwcl train, cwcl zeroshot, cwcl eval speech|image.
#include "commands.h"
#include "tasks.h"

#include <cwcl/audio/audio.h>
#include <cwcl/dist.h>
#include <cwcl/train/export.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include <sys/resource.h>
#include <unistd.h>

namespace cwcl::app {
namespace {

using json = nlohmann::json;

std::string duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s / 60 % 60));
  else std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buf;
}


// This process's peak resident memory so far.
double peak_rss_mib() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
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

// One validation's figures: zero-shot top-1 (the score) and top-5, and
// retrieval R@1 both ways where the set has texts.
Validation validation_of(const TaskResult& r) {
  Validation v;
  v.score = r.classification.top1;
  v.values = {{"top1", r.classification.top1}, {"top5", r.classification.top5}};
  if (r.has_retrieval) {
    v.values.emplace_back("r1_to_text", r.retrieval.a_to_b[0]);
    v.values.emplace_back("r1_from_text", r.retrieval.b_to_a[0]);
  }
  return v;
}

// cwcl train --nproc N: N local ranks; rank 0's output here, the others' in
// <run.out>/logs/rank<k>.log.
int launch_ranks(const TrainCommandOptions& o, const TrainConfig& config) {
  config.validate_split(o.nproc);
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

}  // namespace

// run.eval_every: zero-shot on eval.manifest (speech) or on the held-out
// training images of the seen classes (image).
std::function<Validation(TrainedModel&, const TextTower&)> make_validation(const TrainConfig& c) {
  if (c.run.eval_every == 0) return {};
  if (c.modality() == Modality::Speech) {
    SpeechTaskSpec spec{"validation", c.eval.manifest, c.eval.label_field, c.eval.labels, "", c.eval.templates};
    auto data = std::make_shared<SpeechTaskData>(SpeechTaskData::load(spec));
    return [data](TrainedModel& m, const TextTower& text) { return validation_of(evaluate_speech(m, text, *data)); };
  }
  const ImageTaskSpec spec{"fmnist-valid", c.data.classes, 1, true};
  return [spec](TrainedModel& m, const TextTower& text) { return validation_of(evaluate_images(m, text, spec)); };
}

TrainOptions console_train_options(bool resume, const std::string& prefix) {
  TrainOptions o;
  o.resume = resume;
  const bool tty = ::isatty(STDOUT_FILENO);
  o.log = [prefix](const std::string& m) { std::cerr << prefix << m << "\n"; };
  if (tty) {
    o.progress = [prefix](const TrainProgress& p) {
      std::printf("\r%sstep %lld/%lld  loss %.4f  scale %.1f  lr %.2e  %.0f samples/s  ETA %s   ", prefix.c_str(),
                  static_cast<long long>(p.step), static_cast<long long>(p.steps), p.loss, p.logit_scale, p.lr,
                  p.samples_per_second, duration(p.eta_seconds).c_str());
      if (p.step == p.steps) std::printf("\n");
      std::fflush(stdout);
    };
  }
  return o;
}

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
  if (env.rank == 0) options.validate = make_validation(config);
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
  std::cout << json{{"run_dir", summary.run_dir},
                    {"steps", summary.steps},
                    {"resumed_at", summary.start_step},
                    {"seconds", summary.seconds},
                    {"final_loss", summary.final_loss},
                    {"skipped", summary.skipped},
                    {"nonfinite_steps", summary.nonfinite_steps},
                    {"ranks", summary.world_size},
                    {"peak_rss_mib", peak_rss_mib()}}
                   .dump()
            << "\n";
  return 0;
}

int run_info_model(const std::string& path) {
  auto model = TrainedModel::load(path);
  int64_t parameters = 0;
  for (const auto& p : model.tower().parameters()) parameters += p.numel();
  const auto& c = model.config();
  std::cout << json{{"source", model.source()},
                    {"step", model.step()},
                    {"tower", name_of(tower_kind(c.model))},
                    {"loss", to_string(c.loss.kind)},
                    {"weights", to_string(c.loss.weights)},
                    {"text_tower", name_of(c.text.tower)},
                    {"parameters", parameters},
                    {"weights_digest", model.weights_digest()}}
                   .dump()
            << "\n";
  return 0;
}

int run_compare_models(const std::string& a, const std::string& b) {
  auto ma = TrainedModel::load(a), mb = TrainedModel::load(b);
  const auto d = compare_weights(ma, mb);
  std::cout << json{{"a", ma.source()}, {"b", mb.source()}, {"tensors", d.tensors}, {"max_abs_diff", d.max_abs},
                    {"max_rel_diff", d.max_rel}, {"worst", d.worst}}
                   .dump()
            << "\n";
  return 0;
}

int run_export(const ExportOptions& o) {
  auto model = TrainedModel::load(o.model);
  const auto r = export_model(model, o.out);
  std::cout << json{{"folder", r.folder}, {"tensors", r.tensors}, {"parameters", r.parameters}}.dump() << "\n";
  return 0;
}

// A trained model on the device --device names (resolved first: a bad
// device fails before the model loads).
TrainedModel load_on(const std::string& path, const DeviceSpec& spec) {
  const auto device = resolve_device(spec, "--device");
  auto model = TrainedModel::load(path);
  model.to(device);
  return model;
}

int run_zeroshot(const ZeroshotOptions& o) {
  auto model = load_on(o.model, o.device);
  const auto labels = read_label_argument(o.labels);
  const auto text = model.text_tower();
  std::vector<std::string> templates;
  if (!o.templates.empty()) templates = read_templates(o.templates);
  auto classes = class_embeddings(text.encode, labels.texts, templates);
  int failures = 0;
  for (const auto& input : o.inputs) {
    torch::Tensor q;
    try {
      q = model.modality() == Modality::Speech ? model.embed_audio_files({input}) : model.embed_image_files({input});
    } catch (const std::exception& e) {
      std::cerr << "cwcl zeroshot: skipped " << e.what() << "\n";
      ++failures;
      continue;
    }
    auto scores = torch::mm(q, classes.t()).squeeze(0);
    json s = json::object();
    for (size_t i = 0; i < labels.names.size(); ++i) s[labels.names[i]] = scores[static_cast<int64_t>(i)].item<double>();
    const auto best = scores.argmax().item<int64_t>();
    std::cout << json{{"input", input}, {"label", labels.names[static_cast<size_t>(best)]}, {"scores", s}}.dump() << "\n";
  }
  if (failures) std::cerr << "cwcl zeroshot: " << failures << " of " << o.inputs.size() << " inputs unreadable\n";
  return failures ? 1 : 0;
}

int run_eval_speech(const EvalSpeechOptions& o) {
  auto model = load_on(o.model, o.device);
  if (model.modality() != Modality::Speech) throw UsageError(o.model + ": an image model; use cwcl eval image");
  SpeechTaskSpec spec{o.task, o.manifest, o.label_field, o.labels, o.filter_field, o.templates};
  auto data = SpeechTaskData::load(spec);
  const auto text = model.text_tower();
  auto r = evaluate_speech(model, text, data);
  auto out = r.to_json(o.details);
  if (o.against.empty()) {
    out.update(top1_intervals(r));
  } else {
    auto other = load_on(o.against, o.device);
    if (other.modality() != Modality::Speech) throw UsageError(o.against + ": an image model");
    const auto &mine = model.config().text, &theirs = other.config().text;
    if (mine.tower != theirs.tower || mine.model != theirs.model)
      throw UsageError(o.against + ": trained against another text tower than " + o.model + "; not comparable");
    const auto baseline = evaluate_speech(other, text, data);
    out.update(top1_intervals(r, &baseline));
    out["against"] = {{"model", o.against}, {"top1", baseline.classification.top1},
                      {"top1_ci", top1_intervals(baseline)["top1_ci"]}};
    if (!o.group_by.empty()) out["against"]["groups"] = top1_by_field(baseline, o.manifest, o.group_by);
  }
  if (!o.group_by.empty()) out["groups"] = top1_by_field(r, o.manifest, o.group_by);
  std::cout << out.dump() << "\n";
  return 0;
}

int run_eval_image(const EvalImageOptions& o) {
  auto model = load_on(o.model, o.device);
  if (model.modality() != Modality::Image) throw UsageError(o.model + ": a speech model; use cwcl eval speech");
  ImageTaskSpec spec{o.task, o.classes, o.k, o.validation};
  auto r = evaluate_images(model, model.text_tower(), spec);
  std::cout << r.to_json(o.details).dump() << "\n";
  return 0;
}

}  // namespace cwcl::app
