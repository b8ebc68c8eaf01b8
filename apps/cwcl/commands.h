// Subcommands of the cwcl command: each takes its options as parsed by
// main.cpp, calls the library, prints what it returns and gives the exit
// code. No logic of its own beyond that.
#pragma once

#include <cwcl/demo/demo.h>
#include <cwcl/demo/emoji.h>
#include <cwcl/device.h>
#include <cwcl/synth/synth.h>
#include <cwcl/towers/text_tower.h>
#include <cwcl/train/bench.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cwcl::app {

// ---- data_commands.cpp ----------------------------------------------------

struct EmbedOptions {
  TextTowerOptions tower;
  std::string input;  ///< .txt (one text per line) or .jsonl manifest
  std::string out;    ///< embedding store (safetensors); reused rows stay
  std::string text_field = "text";
  std::string id_field = "id";  ///< missing: the line number
};
int run_embed(const EmbedOptions& options);

struct EvalTextIntentOptions {
  TextTowerOptions tower;
  std::string labels;  ///< TSV: class name, label text
  std::string data;    ///< JSONL with a text and a class field
  std::string text_field = "sentence";
  std::string label_field = "intent";
};
/// Zero-shot text classification by the nearest label text (the text-only
/// bound of speech-to-intent).
int run_eval_text_intent(const EvalTextIntentOptions& options);

struct SynthCommandOptions {
  std::string input;  ///< .txt or .jsonl
  std::string text_field = "text";
  std::string id_field = "id";
  std::vector<std::string> voices{"espeak:en-us"};
  std::string out;  ///< output folder
  uint64_t seed = 0;
  double rate_jitter = SynthOptions{}.rate_jitter;
  double pitch_jitter = SynthOptions{}.pitch_jitter;
  int workers = 2;
  AudioFormat format = AudioFormat::Wav;
};
int run_synth(const SynthCommandOptions& options);

struct FeaturesOptions {
  std::string manifest;  ///< JSONL from cwcl synth
  std::string out;       ///< feature cache (.safetensors)
  int threads = 2;
  FrontEnd front_end = FrontEnd::LogMel;
  bool keep_silence = false;  ///< as data.trim_silence = false
};
int run_features(const FeaturesOptions& options);

int run_corpus(const CorpusOptions& options);

struct WhisperEncoderOptions {
  std::string model;  ///< a CTranslate2 Whisper folder (model.bin)
  std::string out;    ///< folder for the encoder-only model.bin
};
/// A model.bin with Whisper's encoder alone (what cwcl reads of it).
int run_whisper_encoder(const WhisperEncoderOptions& options);

// ---- model_commands.cpp ---------------------------------------------------

struct TrainCommandOptions {
  std::string config;            ///< TOML
  std::vector<std::string> set;  ///< section.key=value overrides
  bool resume = false;
  int nproc = 1;                          ///< local ranks to start (each runs this command without --nproc)
  std::vector<std::string> command_line;  ///< argv as given, for the ranks
};
int run_train(const TrainCommandOptions& options);
int run_info_model(const std::string& model);
int run_compare_models(const std::string& a, const std::string& b);

struct ExportOptions {
  std::string model;  ///< run directory or checkpoint
  std::string out;    ///< folder for model.safetensors, config.json, check.safetensors
};
int run_export(const ExportOptions& options);

struct ZeroshotOptions {
  std::string model;      ///< run directory or checkpoint
  std::string labels;     ///< TSV, .txt or comma list
  std::string templates;  ///< optional, one template with {} per line
  std::vector<std::string> inputs;
  DeviceSpec device;
  Precision precision = Precision::Fp32;  ///< the tower's forward pass
  bool keep_silence = false;              ///< read audio with its leading and trailing silence
};
/// One JSON object per input: {"input", "label", "scores"} (DESIGN.md contract 4).
int run_zeroshot(const ZeroshotOptions& options);

struct EvalSpeechOptions {
  std::string model, manifest, labels, templates, filter_field;
  std::string task = "speech";
  std::string label_field = "intent";
  bool details = false;
  DeviceSpec device;
  Precision precision = Precision::Fp32;  ///< the towers' forward pass
  std::string against;   ///< a second model: the paired difference on the same items
  std::string group_by;  ///< a manifest field: top-1 per value of it (e.g. voice)
  bool keep_silence = false;  ///< --model reads clips untrimmed (the --against model as its config says)
};
int run_eval_speech(const EvalSpeechOptions& options);

struct EvalImageOptions {
  std::string model;
  std::string task;       ///< the name in the report; empty: fmnist, or images with --manifest
  std::string manifest;   ///< an image manifest with labels; empty: Fashion-MNIST
  std::string labels;     ///< with --manifest: the classes and their texts
  std::string templates;  ///< with --manifest: prompt templates
  std::string against;    ///< a second model: the paired top-1 difference
  std::string group_by;   ///< with --manifest: top-1 per value of this field
  std::vector<int64_t> classes = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  int64_t k = 1;
  bool validation = false;
  bool details = false;
  DeviceSpec device;
  Precision precision = Precision::Fp32;  ///< the towers' forward pass
};
int run_eval_image(const EvalImageOptions& options);
int run_emoji(const EmojiBenchmarkOptions& options);

int run_demo(const DemoOptions& options);

// ---- bench (model_commands.cpp) --------------------------------------------

int run_bench_loss(const LossBenchOptions& options);
int run_bench_tower(const TowerBenchOptions& options);
int run_bench_image(const ImageBenchOptions& options);
int run_bench_text(const TextBenchOptions& options);
int run_bench_steps(const StepsBenchOptions& options);

}  // namespace cwcl::app
