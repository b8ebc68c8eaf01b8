// cwcl embed, eval text-intent, synth, features, corpus.
#include "commands.h"
#include "console.h"

#include <cwcl/data/speech.h>
#include <cwcl/data/text_inputs.h>
#include <cwcl/eval/eval.h>
#include <cwcl/io/ctranslate2.h>
#include <cwcl/io/store.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <iostream>
#include <set>

namespace cwcl::app {
namespace {

// --tower store: rows of an existing store (made by any toolkit), picked by id.
int embed_from_store(const EmbedOptions& o, const TextInputs& inputs) {
  if (o.tower.model.empty()) throw UsageError("--tower store needs --model <store.safetensors>");
  const auto source = EmbeddingStore::read(o.tower.model);
  const auto fingerprint = fingerprint_files({o.tower.model});
  std::vector<std::string> keys;
  for (const auto& t : inputs.texts) keys.push_back(content_key(fingerprint, t));
  EmbeddingStore out(source.lookup_ids(inputs.ids), inputs.ids, keys, "store:" + o.tower.model);
  out.write(o.out);
  std::cout << "embed: " << out.size() << " rows of dimension " << out.dim() << " from " << o.tower.model << " into "
            << o.out << "\n";
  return 0;
}

}  // namespace

int run_embed(const EmbedOptions& o) {
  const auto inputs = read_text_inputs(o.input, {o.text_field, o.id_field, ""});
  if (o.tower.kind == TextTowerKind::Store) return embed_from_store(o, inputs);
  const auto tower = load_text_tower(o.tower);
  const auto progress = progress_line("embed");
  int64_t computed = 0;
  auto encode = [&](const std::vector<std::string>& texts) {
    computed = static_cast<int64_t>(texts.size());
    const size_t chunk = 1024;
    std::vector<torch::Tensor> parts;
    for (size_t start = 0; start < texts.size(); start += chunk) {
      const size_t end = std::min(texts.size(), start + chunk);
      parts.push_back(tower.encode({texts.begin() + static_cast<long>(start), texts.begin() + static_cast<long>(end)}));
      progress(static_cast<int64_t>(end), static_cast<int64_t>(texts.size()));
    }
    return torch::cat(parts, 0);
  };
  auto embeddings = embed_with_store(o.out, tower.name, tower.fingerprint, inputs.ids, inputs.texts, encode);
  std::cout << "embed: " << inputs.texts.size() << " texts, " << computed << " computed, "
            << static_cast<int64_t>(inputs.texts.size()) - computed << " from the store; " << o.out << " holds "
            << EmbeddingStore::read(o.out).size() << " rows of dimension " << embeddings.size(1) << "\n";
  return 0;
}

int run_eval_text_intent(const EvalTextIntentOptions& o) {
  const auto data = read_text_inputs(o.data, {o.text_field, "", o.label_field});
  // The candidates are the classes that occur in the data (77 for SLURP test).
  const std::set<std::string> present(data.labels.begin(), data.labels.end());
  const auto labels = LabelSet::read_tsv(o.labels).subset({present.begin(), present.end()}, o.labels);
  std::vector<int64_t> targets;
  for (const auto& l : data.labels) targets.push_back(labels.index_of(l));
  const auto tower = load_text_tower(o.tower);
  auto result = zero_shot_classify(tower.encode(data.texts), tower.encode(labels.texts),
                                   torch::tensor(targets, torch::kLong));
  nlohmann::json out = {{"task", "text-intent"}, {"tower", tower.name}, {"data", o.data},
                        {"labels", o.labels},    {"n", result.n},       {"classes", labels.names.size()},
                        {"top1", result.top1},   {"top5", result.top5}};
  nlohmann::json per_class = nlohmann::json::object();
  for (size_t c = 0; c < labels.names.size(); ++c) per_class[labels.names[c]] = result.per_class_accuracy[c];
  out["per_class_top1"] = per_class;
  std::cout << out.dump() << std::endl;
  return 0;
}

int run_synth(const SynthCommandOptions& o) {
  const auto inputs = read_text_inputs(o.input, {o.text_field, o.id_field, ""});
  SynthOptions so;
  so.voices = o.voices;
  so.seed = o.seed;
  so.rate_jitter = o.rate_jitter;
  so.pitch_jitter = o.pitch_jitter;
  so.workers = o.workers;
  so.format = o.format;
  so.out_dir = o.out;
  auto report = synthesize(synth_items(inputs), so, progress_line("synth"));
  std::cout << "synth: " << report.total << " utterances: " << report.synthesized << " synthesised, " << report.reused
            << " already there, " << report.failed << " failed; " << report.audio_seconds << " s of audio, "
            << report.wall_seconds << " s wall ("
            << (report.wall_seconds > 0 ? report.audio_seconds / report.wall_seconds : 0.0)
            << " s of audio per s); manifest: " << o.out << "/manifest.jsonl\n";
  for (const auto& f : report.failures) std::cout << "  failed: " << f << "\n";
  return report.failed > 0 ? 1 : 0;
}

int run_features(const FeaturesOptions& o) {
  auto manifest = read_speech_manifest(o.manifest);
  for (const auto& p : manifest.problems) std::cerr << "features: skipped " << p << "\n";
  auto report = FeatureCache::build(manifest.examples, o.out, LogMelOptions{}, o.threads, progress_line("features"),
                                    o.front_end, {}, silence_trim(!o.keep_silence));
  for (const auto& p : report.problems) std::cerr << "features: skipped " << p << "\n";
  std::cout << "features: " << report.examples << " utterances (" << manifest.skipped + report.skipped
            << " skipped), " << report.audio_seconds << " s of audio in " << report.seconds << " s ("
            << report.audio_seconds / report.seconds << " s of audio per s) -> " << o.out << "\n";
  return 0;
}

int run_whisper_encoder(const WhisperEncoderOptions& o) {
  const auto in = (std::filesystem::path(o.model) / "model.bin").string();
  const auto encoder = ct2_subset(read_ct2_model(in), "encoder/");
  std::filesystem::create_directories(o.out);
  const auto out = (std::filesystem::path(o.out) / "model.bin").string();
  write_ct2_model(out, encoder);
  std::cout << "whisper-encoder: " << encoder.variables.size() << " variables of " << in << " -> " << out << " ("
            << std::filesystem::file_size(out) / 1048576 << " MiB)\n";
  return 0;
}

int run_corpus(const CorpusOptions& o) {
  const auto report = build_corpus(o, console_log("corpus: "));
  std::cout << report << "\n";
  return 0;
}

int run_emoji(const EmojiBenchmarkOptions& o) {
  std::cout << build_emoji_benchmark(o) << "\n";
  return 0;
}

}  // namespace cwcl::app
