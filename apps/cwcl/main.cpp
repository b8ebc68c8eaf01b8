// The cwcl command. Parses the command line once into typed options, calls
// the library, and is the only place that turns errors into exit codes
// (README "Exit codes": 2 usage and configuration, 3 data, 1 internal).
#include <CLI/CLI.hpp>

#include <cwcl/error.h>
#include <cwcl/runtime.h>

#include "commands.h"

#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>
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

void add_device_option(CLI::App* cmd, cwcl::DeviceSpec& device) {
  auto parse = [&device](const std::string& text) {
    try {
      device = cwcl::DeviceSpec::parse(text);
    } catch (const cwcl::UsageError& e) {
      throw CLI::ValidationError("--device", e.what());
    }
  };
  cmd->add_option_function<std::string>("--device", parse, "auto, cpu, cuda or cuda:<index>")
      ->default_str(device.str());
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

// Each subcommand registers its options and what runs it when it is chosen.
using Actions = std::vector<std::pair<CLI::App*, std::function<int()>>>;

template <class Options>
Options& bind(CLI::App* cmd, Actions& actions, int (*run)(const Options&)) {
  auto options = std::make_shared<Options>();
  actions.emplace_back(cmd, [options, run] { return run(*options); });
  return *options;
}

void add_info_command(CLI::App& app, Actions& actions) {
  auto* cmd = app.add_subcommand("info", "versions, thread count and BLAS configuration");
  auto model = std::make_shared<std::string>();
  auto compare = std::make_shared<std::string>();
  cmd->add_option("--model", *model, "describe a trained model (run directory or checkpoint) instead");
  cmd->add_option("--compare", *compare, "with --model: how far this model's weights are from it")
      ->needs("--model");
  actions.emplace_back(cmd, [model, compare] {
    if (!compare->empty()) return cwcl::app::run_compare_models(*model, *compare);
    if (!model->empty()) return cwcl::app::run_info_model(*model);
    std::cout << cwcl::runtime_info();
    return 0;
  });
}

void add_bench_commands(CLI::App& app, Actions& actions) {
  auto* bench = app.add_subcommand("bench", "measure speed and memory");
  bench->require_subcommand(1);
  {
    auto* cmd = bench->add_subcommand("loss", "forward + backward time and peak extra memory of a loss");
    auto& o = bind(cmd, actions, cwcl::app::run_bench_loss);
    add_named_option(cmd, "--kind", o.kind, "loss kind");
    add_named_option(cmd, "--weights", o.weights, "weight map");
    cmd->add_option("--gamma", o.gamma, "power map exponent")->check(CLI::PositiveNumber)->capture_default_str();
    cmd->add_option("--kernel-tau", o.kernel_tau, "kernel map bandwidth")->check(CLI::PositiveNumber)->capture_default_str();
    add_named_option(cmd, "--path", o.path, "implementation (auto: measured)");
    cmd->add_option("-n,--batch", o.n, "batch size N")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd->add_option("--dim", o.dim, "embedding size D")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd->add_option("--tile", o.tile, "tile size of the tiled path")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd->add_option("--repeats", o.repeats, "timed runs (0: 3, or 1 at N >= 32768)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_flag("!--no-floor", o.floor, "skip timing the matrix-product floor");
    add_device_option(cmd, o.device);
  }
  {
    auto* cmd = bench->add_subcommand("tower", "training steps of the Whisper tower on random log-mel batches");
    auto& o = bind(cmd, actions, cwcl::app::run_bench_tower);
    cmd->add_option("--model", o.model, "tiny.en (default), base or a CTranslate2 Whisper folder");
    add_named_option(cmd, "--training", o.training, "what trains");
    cmd->add_option("--top-blocks", o.top_blocks)->check(CLI::PositiveNumber)->capture_default_str();
    cmd->add_option("-b,--batch", o.batch_size)->check(CLI::Range(2, 1 << 20))->capture_default_str();
    cmd->add_option("--frames", o.frames, "log-mel frames (100 per second)")
        ->check(CLI::Range(2, 3000))
        ->capture_default_str();
    cmd->add_option("--steps", o.steps, "timed steps (after 2 untimed)")->check(CLI::PositiveNumber)->capture_default_str();
    add_device_option(cmd, o.device);
    add_named_option(cmd, "--precision", o.precision, "the tower's forward pass");
    cmd->add_option("--export", o.export_to, "also write the initial tower (cwcl export format) to this folder");
  }
  {
    auto* cmd = bench->add_subcommand("image", "training steps of the ResNet tower on random images; the image loader");
    auto& o = bind(cmd, actions, cwcl::app::run_bench_image);
    cmd->add_option("--width", o.width, "model.resnet_width")->check(CLI::Range(1, 512))->capture_default_str();
    cmd->add_option("--blocks", o.blocks, "model.resnet_blocks")->check(CLI::Range(1, 16))->capture_default_str();
    cmd->add_option("--size", o.image_size, "model.image_size")->check(CLI::Range(16, 1024))->capture_default_str();
    cmd->add_option("-b,--batch", o.batch_size)->check(CLI::Range(2, 1 << 16))->capture_default_str();
    cmd->add_option("--steps", o.steps, "timed steps (after 2 untimed)")->check(CLI::PositiveNumber)->capture_default_str();
    add_device_option(cmd, o.device);
    add_named_option(cmd, "--precision", o.precision, "the tower's forward pass");
    cmd->add_option("--export", o.export_to, "also write the initial tower (cwcl export format) to this folder");
    cmd->add_option("--manifest", o.manifest, "also time the training loader on this image manifest")
        ->check(CLI::ExistingFile);
    cmd->add_option("--loader-batches", o.loader_batches)->check(CLI::PositiveNumber)->capture_default_str();
  }
  {
    auto* cmd = bench->add_subcommand("text", "sentences per second of the MiniLM encoder");
    auto& o = bind(cmd, actions, cwcl::app::run_bench_text);
    cmd->add_option("--model", o.model, "Hugging Face model folder (default: models cache)");
    cmd->add_option("--sentences", o.sentences, "text file, one sentence per line")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("--count", o.count, "sentences to embed")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    cmd->add_option("--batch-size", o.batch_size, "sentences per forward pass")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
  }
  {
    auto* cmd = bench->add_subcommand("steps", "a few training steps of the from-scratch speech encoder");
    auto& o = bind(cmd, actions, cwcl::app::run_bench_steps);
    cmd->add_option("--cache", o.cache, "feature cache (cwcl features)")->required()->check(CLI::ExistingFile);
    cmd->add_option("--store", o.store, "frozen-side embeddings by id (cwcl embed)")->required()->check(CLI::ExistingFile);
    add_named_option(cmd, "--size", o.size, "encoder size");
    cmd->add_option("--steps", o.steps)->check(CLI::PositiveNumber)->capture_default_str();
    cmd->add_option("--batch-size", o.batch_size)->check(CLI::PositiveNumber)->capture_default_str();
  }
}

void add_data_commands(CLI::App& app, Actions& actions) {
  {
    auto* cmd = app.add_subcommand("embed", "embed texts with a frozen tower into an embedding store");
    auto& o = bind(cmd, actions, cwcl::app::run_embed);
    add_tower_options(cmd, o.tower);
    cmd->add_option("input", o.input, ".txt (one text per line) or .jsonl manifest")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("-o,--out", o.out, "embedding store to write or extend (.safetensors)")
        ->required();
    cmd->add_option("--text-field", o.text_field, "JSONL field with the text")->capture_default_str();
    cmd->add_option("--id-field", o.id_field, "JSONL field with the id (default: line number)")
        ->capture_default_str();
  }
  {
    auto* cmd = app.add_subcommand("synth", "synthesise a speech corpus from text (espeak-ng, flite)");
    auto& o = bind(cmd, actions, cwcl::app::run_synth);
    cmd->add_option("input", o.input,
                          ".txt (one utterance per line) or .jsonl manifest (a \"voice\" field forces the voice)")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("-o,--out", o.out, "output folder (audio/ and manifest.jsonl)")->required();
    cmd->add_option("--voices", o.voices, "espeak:<voice> or flite:<kal|kal16|slt|rms|awb>, comma-separated")
        ->delimiter(',')
        ->capture_default_str();
    cmd->add_option("--seed", o.seed, "voice choice and jitter")->capture_default_str();
    cmd->add_option("--rate-jitter", o.rate_jitter, "per-utterance speaking rate 1 +- this fraction")
        ->check(CLI::Range(0.0, 0.5))
        ->capture_default_str();
    cmd->add_option("--pitch-jitter", o.pitch_jitter,
                    "per-utterance pitch and pitch range +- this many points of espeak-ng's 0-100 scale "
                    "(flite: pitch +- this percent)")
        ->check(CLI::Range(0.0, 50.0))
        ->capture_default_str();
    cmd->add_option("--workers", o.workers, "worker processes")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    add_named_option(cmd, "--format", o.format, "audio file format");
    cmd->add_option("--text-field", o.text_field)->capture_default_str();
    cmd->add_option("--id-field", o.id_field)->capture_default_str();
  }
  {
    auto* cmd = app.add_subcommand("whisper-encoder", "write Whisper's encoder alone as a CTranslate2 model.bin");
    auto& o = bind(cmd, actions, cwcl::app::run_whisper_encoder);
    cmd->add_option("model", o.model, "CTranslate2 Whisper folder (its model.bin)")->required()->check(CLI::ExistingDirectory);
    cmd->add_option("-o,--out", o.out, "folder for the encoder's model.bin")->required();
  }
  {
    auto* cmd = app.add_subcommand("features", "precompute log-mel features of a manifest into a cache");
    auto& o = bind(cmd, actions, cwcl::app::run_features);
    cmd->add_option("manifest", o.manifest, "JSONL manifest (cwcl synth)")->required()->check(CLI::ExistingFile);
    cmd->add_option("-o,--out", o.out, "feature cache (.safetensors)")->required();
    cmd->add_option("--threads", o.threads, "worker threads")->check(CLI::PositiveNumber)->capture_default_str();
    add_named_option(cmd, "--front-end", o.front_end, "log-mel (from-scratch tower) or whisper");
    cmd->add_flag("--keep-silence", o.keep_silence,
                  "keep leading and trailing silence (for data.trim_silence = false); default: trim it");
  }
}

void add_model_commands(CLI::App& app, Actions& actions, const std::vector<std::string>& command_line) {
  {
    auto* cmd = app.add_subcommand("train", "train a tower against the frozen text tower (TOML config)");
    auto& o = bind(cmd, actions, cwcl::app::run_train);
    cmd->add_option("config", o.config, "TOML configuration (see configs/)")->required()->check(CLI::ExistingFile);
    cmd->add_option("--set", o.set, "override a key: section.key=value (repeatable)");
    cmd->add_flag("--resume", o.resume, "continue from the newest checkpoint in run.out");
    cmd->add_option("--nproc", o.nproc, "start this many local ranks (data parallel; the global batch is run.batch_size)")
        ->check(CLI::Range(1, 1024));
    o.command_line = command_line;
  }
  {
    auto* cmd = app.add_subcommand("zeroshot", "classify audio or image files zero-shot with a trained model");
    auto& o = bind(cmd, actions, cwcl::app::run_zeroshot);
    cmd->add_option("--model", o.model, "run directory or checkpoint (.pt)")->required();
    cmd->add_option("--labels", o.labels, "labels: a .tsv (class, text), a .txt (one per line) or a comma list")
        ->required();
    cmd->add_option("--templates", o.templates, "prompt templates with {} (one per line), averaged")
        ->check(CLI::ExistingFile);
    cmd->add_option("inputs", o.inputs, "audio (WAV/FLAC/OGG, any rate) or image files")->required();
    add_device_option(cmd, o.device);
    add_named_option(cmd, "--precision", o.precision, "the tower's forward pass (bf16: under autocast)");
    cmd->add_flag("--keep-silence", o.keep_silence, "audio: keep leading and trailing silence (default: trim it)");
  }
  {
      auto* cmd = app.add_subcommand("export", "write a trained tower as model.safetensors + config.json (PyTorch-loadable)");
      auto& o = bind(cmd, actions, cwcl::app::run_export);
      cmd->add_option("model", o.model, "run directory or checkpoint (.pt)")->required();
      cmd->add_option("-o,--out", o.out, "output folder")->required();
  }
  {
    auto* cmd = app.add_subcommand("demo", "CL vs CWCL on speech and images: summary.json, summary.md, plots");
    auto& o = bind(cmd, actions, cwcl::app::run_demo);
    cmd->add_option("--preset", o.preset,
                    "quick, full (the README's), smoke (tests), or a preset file (configs/demo/<name>.toml)")
        ->capture_default_str();
    cmd->add_option("--out", o.out, "output folder")->capture_default_str();
    cmd->add_option("--corpus", o.corpus, "speech corpus (built there by cwcl corpus when missing)")
        ->capture_default_str();
    cmd->add_option("--data", o.data, "a data folder like the repository's (default: cwcl's bundled data)");
    auto parse_part = [&o](const std::vector<std::string>& names) {
      for (const auto& n : names) {
        try {
          o.only.push_back(cwcl::parse_name<cwcl::DemoPart>(n));
        } catch (const cwcl::UsageError& e) {
          throw CLI::ValidationError("--only", e.what());
        }
      }
    };
    cmd->add_option_function<std::vector<std::string>>("--only", parse_part,
                                                       "parts to run (" + cwcl::accepted_names<cwcl::DemoPart>() + ")");
  }
  {
    auto* cmd = app.add_subcommand("corpus", "build the synthesised speech corpus of the experiments (docs/corpus.md)");
    auto& o = bind(cmd, actions, cwcl::app::run_corpus);
    cmd->add_option("out", o.out, "corpus folder; finished parts are kept")->required();
    cmd->add_option("--data", o.data, "a data folder like the repository's (default: cwcl's bundled data)");
    cmd->add_option("--workers", o.workers, "synthesis processes")->check(CLI::PositiveNumber)->capture_default_str();
    cmd->add_flag("--texts-only", o.texts_only, "write the texts and manifests, synthesise nothing");
    cmd->add_option("--recorded-speech", o.recorded_speech,
                    "recorded letters and words for the real_* test sets (Debian klettres-data)")
        ->capture_default_str();
  }
  {
    auto* cmd = app.add_subcommand("emoji", "write the emoji benchmark's manifests and label files (docs/emoji.md)");
    auto& o = bind(cmd, actions, cwcl::app::run_emoji);
    cmd->add_option("out", o.out, "the benchmark folder")->required();
    cmd->add_option("--templates", o.templates, "caption templates with {} (default: cwcl's data/emoji/templates.txt)")
        ->check(CLI::ExistingFile);
  }
}

void add_eval_commands(CLI::App& app, Actions& actions) {
  auto* eval = app.add_subcommand("eval", "zero-shot evaluations");
  eval->require_subcommand(1);
  {
    auto* cmd = eval->add_subcommand("text-intent", "classify texts by the nearest label text (the text-only bound)");
    auto& o = bind(cmd, actions, cwcl::app::run_eval_text_intent);
    add_tower_options(cmd, o.tower);
    cmd->add_option("--labels", o.labels, "TSV: class name, label text")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("--data", o.data, "JSONL with text and class fields")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("--text-field", o.text_field)->capture_default_str();
    cmd->add_option("--label-field", o.label_field)->capture_default_str();
  }
  {
    auto* cmd = eval->add_subcommand("speech", "zero-shot classification and retrieval of a labelled speech set");
    auto& o = bind(cmd, actions, cwcl::app::run_eval_speech);
    cmd->add_option("--model", o.model, "run directory or checkpoint")->required();
    cmd->add_option("--manifest", o.manifest, "JSONL manifest (cwcl synth) with a label field")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("--labels", o.labels, "TSV class<TAB>text (default: class names are the texts)");
    cmd->add_option("--label-field", o.label_field)->capture_default_str();
    cmd->add_option("--filter-field", o.filter_field, "keep lines where this field is true (e.g. kws10)");
    cmd->add_option("--templates", o.templates, "prompt templates with {}")->check(CLI::ExistingFile);
    cmd->add_option("--task", o.task, "name in the report")->capture_default_str();
    cmd->add_flag("--details", o.details, "per-class accuracy and confusion matrix");
    add_device_option(cmd, o.device);
    add_named_option(cmd, "--precision", o.precision, "the towers' forward pass (bf16: under autocast)");
    cmd->add_option("--against", o.against,
                    "a second model (same text tower): the paired top-1 difference with its 95 % interval");
    cmd->add_option("--group-by", o.group_by,
                    "a manifest field (e.g. voice): top-1 per value, against the whole set's classes");
    cmd->add_flag("--keep-silence", o.keep_silence,
                  "--model reads the clips with their leading and trailing silence (the --against model "
                  "reads them as its data.trim_silence says): with --against the same model, what trimming gives");
  }
  {
    auto* cmd = eval->add_subcommand("image", "zero-shot image classification: an image manifest, or Fashion-MNIST");
    auto& o = bind(cmd, actions, cwcl::app::run_eval_image);
    cmd->add_option("--model", o.model, "run directory or checkpoint")->required();
    cmd->add_option("--manifest", o.manifest, "JSONL image manifest (id, image, label); without it: Fashion-MNIST")
        ->check(CLI::ExistingFile);
    cmd->add_option("--labels", o.labels, "with --manifest: TSV label<TAB>text (default: the labels are the texts)");
    cmd->add_option("--prompts", o.templates, "with --manifest: prompt templates with {}")->check(CLI::ExistingFile);
    cmd->add_option("--against", o.against,
                    "with --manifest: a second model (same text tower): the paired top-1 difference");
    cmd->add_option("--group-by", o.group_by, "with --manifest: a field (e.g. vendor): top-1 per value");
    cmd->add_option("--classes", o.classes, "class labels, comma-separated")
        ->delimiter(',')
        ->capture_default_str();
    cmd->add_option("-k,--templates", o.k, "templates averaged (0: all)")->capture_default_str();
    cmd->add_flag("--validation", o.validation, "held-out training images instead of the test set");
    cmd->add_option("--task", o.task)->capture_default_str();
    cmd->add_flag("--details", o.details, "per-class accuracy and confusion matrix");
    add_device_option(cmd, o.device);
    add_named_option(cmd, "--precision", o.precision, "the towers' forward pass (bf16: under autocast)");
  }
}

// A message is cut here: a runaway value never floods the terminal.
constexpr size_t kMessageLength = 2000;

// Library errors by kind; anything else is internal.
int report(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const cwcl::Error& e) {
    std::cerr << "cwcl: " << cwcl::to_string(e.kind()) << " error: " << cwcl::shorten(e.what(), kMessageLength) << "\n";
    return cwcl::exit_code(e.kind());
  } catch (const std::exception& e) {
    std::cerr << "cwcl: internal error: " << cwcl::shorten(cwcl::message_of(e), kMessageLength) << "\n";
  }
  return cwcl::exit_code(cwcl::ErrorKind::Internal);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cwcl: cross-modal transfer with the continuously weighted contrastive loss"};
  app.set_version_flag("--version", std::string("cwcl ") + cwcl::version());
  app.require_subcommand(1);
  GlobalOptions global;
  app.add_option("--threads", global.threads, "torch intra-op threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  Actions actions;
  add_info_command(app, actions);
  add_bench_commands(app, actions);
  add_data_commands(app, actions);
  add_model_commands(app, actions, std::vector<std::string>(argv, argv + argc));
  add_eval_commands(app, actions);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 returns 0 for --help/--version; usage errors become exit code 2.
    const int code = app.exit(e);
    return code == 0 ? 0 : cwcl::exit_code(cwcl::ErrorKind::Usage);
  }
  try {
    cwcl::set_num_threads(global.threads);
    for (const auto& [cmd, run] : actions)
      if (*cmd) return run();
  } catch (...) {
    return report(std::current_exception());
  }
  return cwcl::exit_code(cwcl::ErrorKind::Usage);
}
