// Speech corpus synthesis from text through the C APIs of espeak-ng and
// flite, in worker processes (espeak-ng's library is not thread-safe).
#pragma once

#include <cwcl/data/text_inputs.h>
#include <cwcl/names.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace cwcl {

/// False in a build with CWCL_WITH_SYNTH=OFF, where synthesis throws UsageError.
bool synthesis_built();

enum class AudioFormat { Wav, Flac };

template <>
struct Names<AudioFormat> {
  static constexpr const char* what = "audio format";
  static constexpr std::array<std::pair<AudioFormat, const char*>, 2> table{
      {{AudioFormat::Wav, "wav"}, {AudioFormat::Flac, "flac"}}};
};

enum class SynthBackend { Espeak, Flite };

template <>
struct Names<SynthBackend> {
  static constexpr const char* what = "synthesis backend";
  static constexpr std::array<std::pair<SynthBackend, const char*>, 2> table{
      {{SynthBackend::Espeak, "espeak"}, {SynthBackend::Flite, "flite"}}};
};

/// flite's compiled-in voices.
enum class FliteVoice { Kal, Kal16, Slt, Rms, Awb };

template <>
struct Names<FliteVoice> {
  static constexpr const char* what = "flite voice";
  static constexpr std::array<std::pair<FliteVoice, const char*>, 5> table{{{FliteVoice::Kal, "kal"},
                                                                            {FliteVoice::Kal16, "kal16"},
                                                                            {FliteVoice::Slt, "slt"},
                                                                            {FliteVoice::Rms, "rms"},
                                                                            {FliteVoice::Awb, "awb"}}};
};

/// One utterance to synthesise; `extra` fields (e.g. "intent", as JSON text)
/// are carried into the manifest.
struct SynthItem {
  std::string id;
  std::string text;
  std::map<std::string, std::string> extra_json;
  /// A voice for this item ("flite:slt"); empty: chosen from the options' voices.
  std::string voice;
};

/// Items from texts read by read_text_inputs: a manifest's "voice" field
/// forces the item's voice, its other fields are carried into the corpus
/// manifest (e.g. "intent").
std::vector<SynthItem> synth_items(const TextInputs& inputs);

struct SynthOptions {
  /// "espeak:<voice>" (e.g. espeak:en-us, espeak:en-gb-scotland+f2) or
  /// "flite:<voice>" (kal, kal16, slt, rms, awb). Each item gets one,
  /// chosen from its id and the seed.
  std::vector<std::string> voices{"espeak:en-us"};
  uint64_t seed = 0;
  /// Per-utterance jitter: rate +-rate_jitter (fraction), pitch and range
  /// (espeak, 0-100 scale) +-pitch_jitter points; flite's pitch as a fraction.
  double rate_jitter = 0.15;
  double pitch_jitter = 15;
  int workers = 2;
  int sample_rate = 16000;
  AudioFormat format = AudioFormat::Wav;
  std::string out_dir;  ///< audio/<id>.<format> and manifest.jsonl go here
};

struct SynthReport {
  int64_t total = 0, synthesized = 0, reused = 0, failed = 0;
  double audio_seconds = 0, wall_seconds = 0;
  std::vector<std::string> failures;  ///< "<id>: <reason>", first few
};

/// Synthesises every item whose audio file does not exist yet (resumable),
/// deterministically from the seed, and writes `out_dir`/manifest.jsonl with
/// {"id", "audio", "text", "voice", "duration"} plus the extra fields, one
/// line per item that has audio, in input order. `progress(done, total)` is
/// called as items finish. Throws UsageError for an unknown
/// backend or voice.
SynthReport synthesize(const std::vector<SynthItem>& items, const SynthOptions& options,
                       const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace cwcl
