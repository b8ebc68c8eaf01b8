// Subcommands of the cwcl command; each returns the process exit code.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <cwcl/device.h>
#include <cwcl/io/files.h>
#include <cwcl/runtime.h>
#include <cwcl/data/speech.h>
#include <cwcl/towers/speech_encoder.h>
#include <cwcl/synth/synth.h>
#include <cwcl/towers/text_tower.h>
#include <cwcl/towers/whisper.h>

namespace cwcl::app {

/// True when `s` ends with `suffix` (file-type checks by extension).
bool ends_with(const std::string& s, const std::string& suffix);

struct BenchLossOptions {
  std::string kind = "cwcl";     // loss kind name
  std::string weights = "affine";
  std::string path = "tiled";    // plain | tiled | auto
  int64_t n = 8192;
  int64_t dim = 256;
  int64_t tile = 1024;
  int repeats = 0;               // 0: 3 below N = 32768, else 1
  bool floor = true;             // also time three N x D x N products
  uint64_t seed = 0;
  DeviceSpec device;
};

struct BenchTextOptions {
  std::string model;           // Hugging Face folder; empty: the models cache
  std::string sentences;       // one sentence per line
  int64_t count = 2000;        // sentences to embed (cycled if the file has fewer)
  int64_t batch_size = 64;
};

/// Sentences per second of the sentence encoder, one JSON line on stdout.
int run_bench_text(const BenchTextOptions& options);



struct EmbedOptions {
  TextTowerOptions tower;
  std::string input;               // .txt (one text per line) or .jsonl manifest
  std::string out;                 // embedding store (safetensors); reused rows stay
  std::string text_field = "text";
  std::string id_field = "id";     // missing: the line number
};

struct TextInputs {
  std::vector<std::string> ids, texts, labels;
};

/// Texts and ids (and, with a label field, labels) from a .txt or .jsonl
/// file; errors name file and line.
TextInputs read_text_inputs(const std::string& path, const std::string& text_field,
                            const std::string& id_field, const std::string& label_field = "");

struct EvalTextIntentOptions {
  TextTowerOptions tower;
  std::string labels;                // TSV: class name, label text
  std::string data;                  // JSONL with a text and a class field
  std::string text_field = "sentence";
  std::string label_field = "intent";
};

/// Zero-shot text classification by the nearest label text (the text-only
/// bound of speech-to-intent); one JSON line on stdout.
int run_eval_text_intent(const EvalTextIntentOptions& options);

/// Embeds texts into a store, computing only what the store lacks.
int run_embed(const EmbedOptions& options);

struct SynthCommandOptions {
  std::string input;                 // .txt or .jsonl
  std::string text_field = "text";
  std::string id_field = "id";
  std::vector<std::string> voices{"espeak:en-us"};
  std::string out;                   // output folder
  uint64_t seed = 0;
  int workers = 2;
  AudioFormat format = AudioFormat::Wav;
};

/// cwcl synth: a speech corpus from text; prints a summary with throughput.
int run_synth(const SynthCommandOptions& options);

struct FeaturesOptions {
  std::string manifest;  // JSONL from cwcl synth
  std::string out;       // feature cache (.safetensors)
  int threads = 2;
  FrontEnd front_end = FrontEnd::LogMel;
};
/// Precomputes log-mel features of a manifest into a memory-mapped cache.
int run_features(const FeaturesOptions& options);

struct BenchStepsOptions {
  std::string cache;     // from cwcl features
  std::string store;     // frozen-side embeddings by id (cwcl embed on the same manifest)
  ScratchSize size = ScratchSize::Small;
  int64_t steps = 5;
  int64_t batch_size = 64;
};
/// A few training steps of the from-scratch speech encoder through the
/// loader, against the frozen side's embeddings: loss and steps/s.
int run_bench_steps(const BenchStepsOptions& options);

struct BenchTowerOptions {
  WhisperTraining training = WhisperTraining::TopBlocks;  // the Whisper tower, as configs/speech.toml trains it
  int64_t top_blocks = 2;
  int64_t batch_size = 32;
  int64_t frames = 200;  // log-mel frames per utterance (2 s); lengths vary from half of it
  int64_t steps = 10;    // timed, after 2 untimed
  DeviceSpec device;
  Precision precision = Precision::Fp32;
  std::string export_to;  // also write the initial tower for scripts/bench_tower_python.py
};
/// Training steps of the Whisper tower (CL loss, AdamW) on random log-mel
/// batches: samples/s, one JSON line (docs/performance.md).
int run_bench_tower(const BenchTowerOptions& options);

/// Times forward + backward of one loss configuration and reports its peak
/// extra resident memory, as one JSON line on stdout.
int run_bench_loss(const BenchLossOptions& options);

}  // namespace cwcl::app

#include <cwcl/train/model.h>
#include <cwcl/train/trainer.h>

namespace cwcl::app {

struct TrainCommandOptions {
  std::string config;            // TOML
  std::vector<std::string> set;  // section.key=value overrides
  bool resume = false;
  int nproc = 1;                           // local ranks to start (each runs this command without --nproc)
  std::vector<std::string> command_line;   // argv as given, for the ranks
};
/// Console callbacks for train(): a progress line on a terminal (none
/// otherwise), messages on stderr with a prefix.
TrainOptions console_train_options(bool resume, const std::string& prefix);
/// run.eval_every's validation: zero-shot on eval.manifest (speech) or on
/// the held-out training images (image); empty when eval_every is 0.
std::function<Validation(TrainedModel&, const TextTower&)> make_validation(const TrainConfig& c);
int run_train(const TrainCommandOptions& options);
/// One JSON line: source, step, tower, parameters, weights digest.
int run_info_model(const std::string& model);
/// One JSON line: tensors compared, largest absolute and relative difference.
int run_compare_models(const std::string& a, const std::string& b);

struct ExportOptions {
  std::string model;  // run directory or checkpoint
  std::string out;    // folder for model.safetensors, config.json, check.safetensors
};
/// The trained tower in the interchange format (README "Export to PyTorch"); one JSON line.
int run_export(const ExportOptions& options);

struct ZeroshotOptions {
  std::string model;      // run directory or checkpoint
  std::string labels;     // TSV, .txt or comma list
  std::string templates;  // optional, one template with {} per line
  std::vector<std::string> inputs;
  DeviceSpec device;
};
/// One JSON object per input: {"input", "label", "scores"} (DESIGN.md contract 4).
int run_zeroshot(const ZeroshotOptions& options);

struct EvalSpeechOptions {
  std::string model, manifest, labels, templates, filter_field;
  std::string task = "speech";
  std::string label_field = "intent";
  bool details = false;
  DeviceSpec device;
  std::string against;  // a second model: the paired difference on the same items
  std::string group_by;  // a manifest field: top-1 per value of it (e.g. voice)
};
int run_eval_speech(const EvalSpeechOptions& options);

struct EvalImageOptions {
  std::string model;
  std::string task = "fmnist";
  std::vector<int64_t> classes = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  int64_t k = 1;
  bool validation = false;
  bool details = false;
  DeviceSpec device;
};
int run_eval_image(const EvalImageOptions& options);

struct DemoOptions {
  std::string preset = "quick";  // quick or full
  std::string out = "runs/demo";
  std::string corpus = "runs/corpus";
  std::string data;               // a data folder like the repository's (empty: cwcl's bundled data)
  std::vector<std::string> only;  // tasks: speech, image (empty: both)
};
/// The experiments of DESIGN.md: CL vs CWCL on speech and images, summary.json/md and plots.
int run_demo(const DemoOptions& options);

}  // namespace cwcl::app
