// The cwcl command. Parses the command line once into typed options, calls
// the library, and is the only place that turns errors into exit codes
// (DESIGN.md contract 7: 2 for usage and configuration errors, 1 otherwise).
#include <CLI/CLI.hpp>

#include <cwcl/error.h>
#include <cwcl/runtime.h>

#include "commands.h"

#include <exception>
#include <map>
#include <iostream>

namespace {

struct GlobalOptions {
  int threads = 0;  // 0: all cores
};

// An enum option given by name: the names come from cwcl::Names<E>, and a
// wrong one is a usage error listing them (CLI11 exit, code 2).
template <class E>
CLI::Option* add_named_option(CLI::App* cmd, const std::string& flag, E& value, const std::string& help) {
  auto parse = [&value, flag](const std::string& text) {
    try {
      value = cwcl::parse_name<E>(text);
    } catch (const cwcl::UsageError& e) {
      throw CLI::ValidationError(flag, e.what());
    }
  };
  return cmd->add_option_function<std::string>(flag, parse, help + " (" + cwcl::accepted_names<E>() + ")")
      ->default_str(cwcl::name_of(value));
}

void add_tower_options(CLI::App* cmd, cwcl::TextTowerOptions& o) {
  add_named_option(cmd, "--tower", o.kind, "frozen text tower (store: embed only)");
  cmd->add_option("--model", o.model,
                  "model folder (default: the models cache); script: the .pt file; store: the store");
  cmd->add_option("--sif-reference", o.sif_reference, "glove-sif: reference corpus, one text per line")
      ->capture_default_str();
  cmd->add_option("--batch-size", o.batch_size, "sentences per forward pass (minilm)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

int run_info() {
  std::cout << cwcl::runtime_info();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cwcl: cross-modal transfer with the continuously weighted contrastive loss"};
  app.set_version_flag("--version", std::string("cwcl ") + cwcl::version());
  app.require_subcommand(1);
  GlobalOptions global;
  app.add_option("--threads", global.threads, "torch intra-op threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);

  auto* info = app.add_subcommand("info", "versions, thread count and BLAS configuration");
  std::string info_model;
  info->add_option("--model", info_model, "describe a trained model (run directory or checkpoint) instead");

  auto* bench = app.add_subcommand("bench", "measure speed and memory");
  bench->require_subcommand(1);
  cwcl::app::BenchLossOptions bench_loss;
  auto* bench_loss_cmd =
      bench->add_subcommand("loss", "forward + backward time and peak extra memory of a loss");
  bench_loss_cmd->add_option("--kind", bench_loss.kind, "cl, cwcl, supcon, siglip, cwsiglip")
      ->capture_default_str();
  bench_loss_cmd->add_option("--weights", bench_loss.weights, "weight map")->capture_default_str();
  bench_loss_cmd->add_option("--path", bench_loss.path, "plain, tiled or auto")
      ->capture_default_str();
  bench_loss_cmd->add_option("-n,--batch", bench_loss.n, "batch size N")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  bench_loss_cmd->add_option("--dim", bench_loss.dim, "embedding size D")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  bench_loss_cmd->add_option("--tile", bench_loss.tile, "tile size of the tiled path")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  bench_loss_cmd->add_option("--repeats", bench_loss.repeats, "timed runs (0: 3, or 1 at N >= 32768)")
      ->check(CLI::NonNegativeNumber);
  bench_loss_cmd->add_flag("!--no-floor", bench_loss.floor, "skip timing the matrix-product floor");

  cwcl::app::BenchTextOptions bench_text;
  auto* bench_text_cmd = bench->add_subcommand("text", "sentences per second of the MiniLM encoder");
  bench_text_cmd->add_option("--model", bench_text.model, "Hugging Face model folder (default: models cache)");
  bench_text_cmd->add_option("--sentences", bench_text.sentences, "text file, one sentence per line")
      ->required()
      ->check(CLI::ExistingFile);
  bench_text_cmd->add_option("--count", bench_text.count, "sentences to embed")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  bench_text_cmd->add_option("--batch-size", bench_text.batch_size, "sentences per forward pass")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  cwcl::app::EmbedOptions embed;
  auto* embed_cmd = app.add_subcommand("embed", "embed texts with a frozen tower into an embedding store");
  add_tower_options(embed_cmd, embed.tower);
  embed_cmd->add_option("input", embed.input, ".txt (one text per line) or .jsonl manifest")
      ->required()
      ->check(CLI::ExistingFile);
  embed_cmd->add_option("-o,--out", embed.out, "embedding store to write or extend (.safetensors)")
      ->required();
  embed_cmd->add_option("--text-field", embed.text_field, "JSONL field with the text")->capture_default_str();
  embed_cmd->add_option("--id-field", embed.id_field, "JSONL field with the id (default: line number)")
      ->capture_default_str();

  auto* eval = app.add_subcommand("eval", "zero-shot evaluations");
  eval->require_subcommand(1);
  cwcl::app::EvalTextIntentOptions text_intent;
  auto* text_intent_cmd =
      eval->add_subcommand("text-intent", "classify texts by the nearest label text (the text-only bound)");
  add_tower_options(text_intent_cmd, text_intent.tower);
  text_intent_cmd->add_option("--labels", text_intent.labels, "TSV: class name, label text")
      ->required()
      ->check(CLI::ExistingFile);
  text_intent_cmd->add_option("--data", text_intent.data, "JSONL with text and class fields")
      ->required()
      ->check(CLI::ExistingFile);
  text_intent_cmd->add_option("--text-field", text_intent.text_field)->capture_default_str();
  text_intent_cmd->add_option("--label-field", text_intent.label_field)->capture_default_str();

  cwcl::app::SynthCommandOptions synth;
  auto* synth_cmd = app.add_subcommand("synth", "synthesise a speech corpus from text (espeak-ng, flite)");
  synth_cmd->add_option("input", synth.input,
                        ".txt (one utterance per line) or .jsonl manifest (a \"voice\" field forces the voice)")
      ->required()
      ->check(CLI::ExistingFile);
  synth_cmd->add_option("-o,--out", synth.out, "output folder (audio/ and manifest.jsonl)")->required();
  synth_cmd->add_option("--voices", synth.voices, "espeak:<voice> or flite:<kal|kal16|slt|rms|awb>, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  synth_cmd->add_option("--seed", synth.seed, "voice choice and jitter")->capture_default_str();
  synth_cmd->add_option("--workers", synth.workers, "worker processes")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  synth_cmd->add_option("--format", synth.format, "wav or flac")
      ->check(CLI::IsMember({"wav", "flac"}))
      ->capture_default_str();
  synth_cmd->add_option("--text-field", synth.text_field)->capture_default_str();
  synth_cmd->add_option("--id-field", synth.id_field)->capture_default_str();

  cwcl::app::FeaturesOptions features;
  auto* features_cmd = app.add_subcommand("features", "precompute log-mel features of a manifest into a cache");
  features_cmd->add_option("manifest", features.manifest, "JSONL manifest (cwcl synth)")->required()->check(CLI::ExistingFile);
  features_cmd->add_option("-o,--out", features.out, "feature cache (.safetensors)")->required();
  features_cmd->add_option("--threads", features.threads, "worker threads")->check(CLI::PositiveNumber)->capture_default_str();
  add_named_option(features_cmd, "--front-end", features.front_end, "log-mel (from-scratch tower) or whisper");

  cwcl::app::BenchStepsOptions steps;
  auto* steps_cmd = bench->add_subcommand("steps", "a few training steps of the from-scratch speech encoder");
  steps_cmd->add_option("--cache", steps.cache, "feature cache (cwcl features)")->required()->check(CLI::ExistingFile);
  steps_cmd->add_option("--store", steps.store, "frozen-side embeddings by id (cwcl embed)")->required()->check(CLI::ExistingFile);
  add_named_option(steps_cmd, "--size", steps.size, "encoder size");
  steps_cmd->add_option("--steps", steps.steps)->check(CLI::PositiveNumber)->capture_default_str();
  steps_cmd->add_option("--batch-size", steps.batch_size)->check(CLI::PositiveNumber)->capture_default_str();

  cwcl::app::TrainCommandOptions train_opts;
  auto* train_cmd = app.add_subcommand("train", "train a tower against the frozen text tower (TOML config)");
  train_cmd->add_option("config", train_opts.config, "TOML configuration (see configs/)")->required()->check(CLI::ExistingFile);
  train_cmd->add_option("--set", train_opts.set, "override a key: section.key=value (repeatable)");
  train_cmd->add_flag("--resume", train_opts.resume, "continue from the newest checkpoint in run.out");

  cwcl::app::ZeroshotOptions zeroshot;
  auto* zeroshot_cmd = app.add_subcommand("zeroshot", "classify audio or image files zero-shot with a trained model");
  zeroshot_cmd->add_option("--model", zeroshot.model, "run directory or checkpoint (.pt)")->required();
  zeroshot_cmd->add_option("--labels", zeroshot.labels, "labels: a .tsv (class, text), a .txt (one per line) or a comma list")
      ->required();
  zeroshot_cmd->add_option("--templates", zeroshot.templates, "prompt templates with {} (one per line), averaged")
      ->check(CLI::ExistingFile);
  zeroshot_cmd->add_option("inputs", zeroshot.inputs, "audio (WAV/FLAC/OGG, any rate) or image files")->required();

  cwcl::app::EvalSpeechOptions eval_speech;
  auto* eval_speech_cmd = eval->add_subcommand("speech", "zero-shot classification and retrieval of a labelled speech set");
  eval_speech_cmd->add_option("--model", eval_speech.model, "run directory or checkpoint")->required();
  eval_speech_cmd->add_option("--manifest", eval_speech.manifest, "JSONL manifest (cwcl synth) with a label field")
      ->required()
      ->check(CLI::ExistingFile);
  eval_speech_cmd->add_option("--labels", eval_speech.labels, "TSV class<TAB>text (default: class names are the texts)");
  eval_speech_cmd->add_option("--label-field", eval_speech.label_field)->capture_default_str();
  eval_speech_cmd->add_option("--filter-field", eval_speech.filter_field, "keep lines where this field is true (e.g. kws10)");
  eval_speech_cmd->add_option("--templates", eval_speech.templates, "prompt templates with {}")->check(CLI::ExistingFile);
  eval_speech_cmd->add_option("--task", eval_speech.task, "name in the report")->capture_default_str();
  eval_speech_cmd->add_flag("--details", eval_speech.details, "per-class accuracy and confusion matrix");

  cwcl::app::EvalImageOptions eval_image;
  auto* eval_image_cmd = eval->add_subcommand("image", "zero-shot Fashion-MNIST classification");
  eval_image_cmd->add_option("--model", eval_image.model, "run directory or checkpoint")->required();
  eval_image_cmd->add_option("--classes", eval_image.classes, "class labels, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  eval_image_cmd->add_option("-k,--templates", eval_image.k, "templates averaged (0: all)")->capture_default_str();
  eval_image_cmd->add_flag("--validation", eval_image.validation, "held-out training images instead of the test set");
  eval_image_cmd->add_option("--task", eval_image.task)->capture_default_str();
  eval_image_cmd->add_flag("--details", eval_image.details, "per-class accuracy and confusion matrix");

  cwcl::app::DemoOptions demo;
  auto* demo_cmd = app.add_subcommand("demo", "CL vs CWCL on speech and images: summary.json, summary.md, plots");
  demo_cmd->add_option("--preset", demo.preset, "quick, full (the README's) or smoke (tests)")
      ->check(CLI::IsMember({"quick", "full", "smoke"}))->capture_default_str();
  demo_cmd->add_option("--out", demo.out, "output folder")->capture_default_str();
  demo_cmd->add_option("--corpus", demo.corpus, "speech corpus (scripts/make_corpus.sh)")->capture_default_str();
  demo_cmd->add_option("--data", demo.data, "the repository's data folder (label texts, captions)")->capture_default_str();
  demo_cmd->add_option("--only", demo.only, "speech and/or image")->check(CLI::IsMember({"speech", "image"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 returns 0 for --help/--version; usage errors become exit code 2.
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  try {
    cwcl::set_num_threads(global.threads);
    if (*info) return info_model.empty() ? run_info() : cwcl::app::run_info_model(info_model);
    if (*bench_loss_cmd) return cwcl::app::run_bench_loss(bench_loss);
    if (*bench_text_cmd) return cwcl::app::run_bench_text(bench_text);
    if (*embed_cmd) return cwcl::app::run_embed(embed);
    if (*synth_cmd) return cwcl::app::run_synth(synth);
    if (*features_cmd) return cwcl::app::run_features(features);
    if (*steps_cmd) return cwcl::app::run_bench_steps(steps);
    if (*text_intent_cmd) return cwcl::app::run_eval_text_intent(text_intent);
    if (*train_cmd) return cwcl::app::run_train(train_opts);
    if (*zeroshot_cmd) return cwcl::app::run_zeroshot(zeroshot);
    if (*eval_speech_cmd) return cwcl::app::run_eval_speech(eval_speech);
    if (*eval_image_cmd) return cwcl::app::run_eval_image(eval_image);
    if (*demo_cmd) return cwcl::app::run_demo(demo);
  } catch (const cwcl::Error& e) {
    std::cerr << "cwcl: " << cwcl::to_string(e.kind()) << " error: " << e.what() << "\n";
    return cwcl::exit_code(e.kind());
  } catch (const std::invalid_argument& e) {
    // The loss's name parsers (bench loss --kind ...) report unknown names so.
    std::cerr << "cwcl: usage error: " << e.what() << "\n";
    return cwcl::exit_code(cwcl::ErrorKind::Usage);
  } catch (const c10::Error& e) {
    std::cerr << "cwcl: internal error: " << e.what_without_backtrace() << "\n";
    return cwcl::exit_code(cwcl::ErrorKind::Internal);
  } catch (const std::exception& e) {
    std::cerr << "cwcl: internal error: " << e.what() << "\n";
    return cwcl::exit_code(cwcl::ErrorKind::Internal);
  }
  return 2;
}
