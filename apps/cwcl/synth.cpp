// cwcl synth: texts to a speech corpus (audio files + manifest.jsonl).
#include "commands.h"

#include <cwcl/synth/synth.h>
#include <nlohmann/json.hpp>

#include <iostream>

#include <unistd.h>

namespace cwcl::app {

int run_synth(const SynthCommandOptions& o) {
  const auto inputs = read_text_inputs(o.input, o.text_field, o.id_field);
  std::vector<SynthItem> items;
  const bool jsonl = o.input.size() > 6 && o.input.substr(o.input.size() - 6) == ".jsonl";
  std::vector<std::string> lines;
  if (jsonl) lines = read_lines(o.input);
  size_t line = 0;
  for (size_t i = 0; i < inputs.texts.size(); ++i) {
    SynthItem item{inputs.ids[i], inputs.texts[i], {}, ""};
    if (jsonl) {
      // Carry every other field of the manifest line over (e.g. "intent").
      while (lines[line].find_first_not_of(" \t\r") == std::string::npos) ++line;
      const auto fields = nlohmann::json::parse(lines[line++]);
      for (const auto& [key, value] : fields.items()) {
        if (key == "voice" && value.is_string()) item.voice = value.get<std::string>();
        else if (key != o.text_field && key != o.id_field) item.extra_json[key] = value.dump();
      }
    }
    items.push_back(std::move(item));
  }
  SynthOptions so;
  so.voices = o.voices;
  so.seed = o.seed;
  so.workers = o.workers;
  so.format = o.format;
  so.out_dir = o.out;
  const bool tty = ::isatty(STDERR_FILENO);
  auto report = synthesize(items, so, [&](int64_t done, int64_t total) {
    if (tty) std::cerr << "\rsynth: " << done << "/" << total << std::flush;
  });
  if (tty) std::cerr << "\n";
  std::cout << "synth: " << report.total << " utterances: " << report.synthesized << " synthesised, "
            << report.reused << " already there, " << report.failed << " failed; "
            << report.audio_seconds << " s of audio, " << report.wall_seconds << " s wall ("
            << (report.wall_seconds > 0 ? report.audio_seconds / report.wall_seconds : 0.0)
            << " s of audio per s); manifest: " << o.out << "/manifest.jsonl\n";
  for (const auto& f : report.failures) std::cout << "  failed: " << f << "\n";
  return report.failed > 0 ? 1 : 0;
}

}  // namespace cwcl::app
