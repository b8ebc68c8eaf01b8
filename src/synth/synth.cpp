// Speech synthesis workers. Each worker is a forked process that initialises
// espeak-ng once (its library keeps global state and is not thread-safe;
// espeak_Synchronize/espeak_Terminate hang in synchronous mode, so workers
// end with _exit) and flite's voices on first use. Workers use no torch: a
// forked child must not touch the parent's thread pools.
#include <cwcl/error.h>
#include <cwcl/io/files.h>
#include <cwcl/synth/synth.h>

#include <espeak-ng/speak_lib.h>
#include <nlohmann/json.hpp>
#include <samplerate.h>
#include <sndfile.h>
#include <xxhash.h>

extern "C" {
#include <flite/flite.h>
cst_voice* register_cmu_us_kal(const char*);
cst_voice* register_cmu_us_kal16(const char*);
cst_voice* register_cmu_us_slt(const char*);
cst_voice* register_cmu_us_rms(const char*);
cst_voice* register_cmu_us_awb(const char*);
}

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>

namespace cwcl {

bool synthesis_built() { return true; }
namespace {

namespace fs = std::filesystem;

struct Voice {
  SynthBackend backend;
  std::string name;  // espeak-ng's voice name, or flite's
  FliteVoice flite = FliteVoice::Kal;
  std::string spec() const { return std::string(name_of(backend)) + ":" + name; }
};

// "espeak:<voice>" or "flite:<kal|kal16|slt|rms|awb>", parsed once.
Voice parse_voice(const std::string& spec) {
  const auto colon = spec.find(':');
  if (colon == std::string::npos || colon + 1 == spec.size())
    throw UsageError("voice '" + spec + "': expected espeak:<voice> or flite:<voice>");
  try {
    Voice v{parse_name<SynthBackend>(spec.substr(0, colon)), spec.substr(colon + 1)};
    if (v.backend == SynthBackend::Flite) v.flite = parse_name<FliteVoice>(v.name);
    return v;
  } catch (const UsageError& e) {
    throw UsageError("voice '" + spec + "': " + e.what());
  }
}

// Per-item random stream, independent of worker scheduling.
std::mt19937_64 item_rng(uint64_t seed, const std::string& id) {
  return std::mt19937_64(XXH64(id.data(), id.size(), seed));
}

struct Synthesized {
  std::vector<float> samples;
  int rate = 0;
};

int espeak_collect(short* wav, int n, espeak_EVENT* events) {
  if (wav && n > 0) {
    auto* out = static_cast<std::vector<float>*>(events->user_data);
    for (int i = 0; i < n; ++i) out->push_back(wav[i] / 32768.0f);
  }
  return 0;
}

class Engines {
 public:
  Synthesized speak(const Voice& v, const std::string& text, std::mt19937_64& rng, const SynthOptions& o) {
    std::uniform_real_distribution<double> unit(-1.0, 1.0);
    const double rate = 1.0 + o.rate_jitter * unit(rng);
    const double pitch = o.pitch_jitter * unit(rng), range = o.pitch_jitter * unit(rng);
    return v.backend == SynthBackend::Espeak ? espeak(v.name, text, rate, pitch, range)
                                             : flite(v.flite, text, rate, pitch / 100.0);
  }

 private:
  Synthesized espeak(const std::string& voice, const std::string& text, double rate, double pitch,
                     double range) {
    if (espeak_rate_ == 0) {
      espeak_rate_ = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, nullptr, 0);
      if (espeak_rate_ <= 0) throw std::runtime_error("espeak-ng failed to initialise");
      espeak_SetSynthCallback(espeak_collect);
    }
    if (espeak_SetVoiceByName(voice.c_str()) != EE_OK)
      throw std::runtime_error("espeak-ng has no voice '" + voice + "'");
    espeak_SetParameter(espeakRATE, static_cast<int>(175 * rate), 0);
    espeak_SetParameter(espeakPITCH, static_cast<int>(50 + pitch), 0);
    espeak_SetParameter(espeakRANGE, static_cast<int>(50 + range), 0);
    Synthesized s;
    s.rate = espeak_rate_;
    if (espeak_Synth(text.c_str(), text.size() + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, nullptr,
                     &s.samples) != EE_OK)
      throw std::runtime_error("espeak-ng could not synthesise the text");
    return s;
  }

  Synthesized flite(FliteVoice name, const std::string& text, double rate, double pitch) {
    if (!flite_ready_) {
      flite_init();
      flite_ready_ = true;
    }
    cst_voice*& voice = flite_voices_[name];
    if (!voice) {
      switch (name) {
        case FliteVoice::Kal: voice = register_cmu_us_kal(nullptr); break;
        case FliteVoice::Kal16: voice = register_cmu_us_kal16(nullptr); break;
        case FliteVoice::Slt: voice = register_cmu_us_slt(nullptr); break;
        case FliteVoice::Rms: voice = register_cmu_us_rms(nullptr); break;
        case FliteVoice::Awb: voice = register_cmu_us_awb(nullptr); break;
      }
      flite_f0_[name] = get_param_float(voice->features, "int_f0_target_mean", 100.0f);
    }
    feat_set_float(voice->features, "duration_stretch", static_cast<float>(1.0 / rate));
    feat_set_float(voice->features, "int_f0_target_mean", static_cast<float>(flite_f0_[name] * (1.0 + pitch)));
    cst_wave* w = flite_text_to_wave(text.c_str(), voice);
    if (!w) throw std::runtime_error("flite could not synthesise the text");
    Synthesized s;
    s.rate = w->sample_rate;
    s.samples.reserve(static_cast<size_t>(w->num_samples));
    for (int i = 0; i < w->num_samples; ++i) s.samples.push_back(w->samples[i] / 32768.0f);
    delete_wave(w);
    return s;
  }

  int espeak_rate_ = 0;
  bool flite_ready_ = false;
  std::map<FliteVoice, cst_voice*> flite_voices_;
  std::map<FliteVoice, float> flite_f0_;
};

std::vector<float> resample_vector(const std::vector<float>& in, int from, int to) {
  if (from == to || in.empty()) return in;
  const double ratio = static_cast<double>(to) / from;
  std::vector<float> out(static_cast<size_t>(in.size() * ratio) + 16);
  SRC_DATA d{};
  d.data_in = in.data();
  d.input_frames = static_cast<long>(in.size());
  d.data_out = out.data();
  d.output_frames = static_cast<long>(out.size());
  d.src_ratio = ratio;
  int err = src_simple(&d, SRC_SINC_FASTEST, 1);
  if (err) throw std::runtime_error(std::string("resampling failed: ") + src_strerror(err));
  out.resize(static_cast<size_t>(d.output_frames_gen));
  return out;
}

void write_audio(const std::string& path, const std::vector<float>& samples, int rate, bool flac) {
  const std::string tmp = path + ".tmp";
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = 1;
  info.format = (flac ? SF_FORMAT_FLAC : SF_FORMAT_WAV) | SF_FORMAT_PCM_16;
  SNDFILE* f = sf_open(tmp.c_str(), SFM_WRITE, &info);
  if (!f) throw std::runtime_error(path + ": cannot write: " + sf_strerror(nullptr));
  // Loud synthesis can pass full scale after resampling: clip it, else the
  // FLAC encoder refuses the out-of-range samples.
  sf_command(f, SFC_SET_CLIPPING, nullptr, SF_TRUE);
  const sf_count_t n = static_cast<sf_count_t>(samples.size());
  const bool ok = sf_writef_float(f, samples.data(), n) == n;
  const std::string why = ok ? "" : sf_strerror(f);
  sf_close(f);
  if (!ok) {
    std::remove(tmp.c_str());
    throw std::runtime_error(path + ": write failed: " + why);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error(path + ": write failed: cannot rename");
}

double file_duration(const std::string& path) {
  SF_INFO info{};
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &info);
  if (!f) return -1;
  sf_close(f);
  return info.samplerate > 0 ? static_cast<double>(info.frames) / info.samplerate : -1;
}

// Forks a child that runs `body(write_fd)` and exits; returns its pid and the
// read end of its pipe. `close_in_child` are the parent's other pipe ends.
std::pair<pid_t, int> spawn_child(const std::function<void(int)>& body,
                                  const std::vector<int>& close_in_child = {}) {
  int fd[2];
  if (::pipe(fd) != 0) throw std::runtime_error("synthesize: pipe failed");
  std::cout.flush();
  std::cerr.flush();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("synthesize: fork failed");
  if (pid == 0) {
    ::close(fd[0]);
    for (int other : close_in_child) ::close(other);
    body(fd[1]);
    _exit(0);  // never return into the parent's code (espeak-ng must not be terminated)
  }
  ::close(fd[1]);
  return {pid, fd[0]};
}

// espeak-ng voice names are checked in a throwaway child (the library's
// global state must not live in the parent, which forks the workers).
void check_espeak_voices(const std::vector<Voice>& voices) {
  std::vector<std::string> names;
  for (const auto& v : voices)
    if (v.backend == SynthBackend::Espeak) names.push_back(v.name);
  if (names.empty()) return;
  auto [pid, fd] = spawn_child([&](int out) {
    std::string bad;
    if (espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, nullptr, 0) <= 0) bad = "(espeak-ng failed to initialise)";
    else
      for (const auto& n : names)
        if (espeak_SetVoiceByName(n.c_str()) != EE_OK) bad += (bad.empty() ? "" : ", ") + n;
    if (::write(out, bad.data(), bad.size()) < 0) _exit(3);
  });
  std::string bad;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) bad.append(buf, static_cast<size_t>(n));
  ::close(fd);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!bad.empty())
    throw UsageError("espeak-ng has no voice " + bad +
                                " (British English is 'en' in espeak-ng 1.51; variants as en+f2)");
}

struct Job {
  size_t index;
  std::string path;
};

// The child: synthesise its share, one result line per item on `fd`.
[[noreturn]] void run_worker(const std::vector<SynthItem>& items, const std::vector<Job>& jobs,
                             const std::vector<Voice>& voices, const SynthOptions& o, int fd) {
  Engines engines;
  for (const auto& job : jobs) {
    const auto& item = items[job.index];
    auto rng = item_rng(o.seed, item.id);
    const auto chosen = voices[rng() % voices.size()];
    const auto voice = item.voice.empty() ? chosen : parse_voice(item.voice);
    std::string line;
    try {
      auto s = engines.speak(voice, item.text, rng, o);
      if (s.samples.empty()) throw std::runtime_error("no audio produced");
      auto out = resample_vector(s.samples, s.rate, o.sample_rate);
      write_audio(job.path, out, o.sample_rate, o.format == AudioFormat::Flac);
      line = std::to_string(job.index) + "\tok\t" + std::to_string(static_cast<double>(out.size()) / o.sample_rate);
    } catch (const std::exception& e) {
      std::string why = e.what();
      for (auto& c : why)
        if (c == '\n' || c == '\t') c = ' ';
      line = std::to_string(job.index) + "\tfail\t" + why;
    }
    line += "\n";
    if (::write(fd, line.data(), line.size()) < 0) _exit(3);
  }
  ::close(fd);
  _exit(0);
}

}  // namespace

namespace {

// The voices items may be given (options and per-item), parsed and checked up front.
std::vector<Voice> checked_voices(const std::vector<SynthItem>& items, const SynthOptions& o) {
  if (o.out_dir.empty()) throw UsageError("synthesize: no output folder");
  if (o.voices.empty()) throw UsageError("synthesize: no voices");
  if (o.workers < 1) throw UsageError("synthesize: workers must be >= 1");
  // A rate of 1 - jitter must stay positive and espeak-ng's pitch 50 +- jitter on its 0-100 scale.
  if (!(o.rate_jitter >= 0 && o.rate_jitter <= 0.5)) throw UsageError("synthesize: rate_jitter must be in [0, 0.5]");
  if (!(o.pitch_jitter >= 0 && o.pitch_jitter <= 50)) throw UsageError("synthesize: pitch_jitter must be in [0, 50]");
  std::vector<Voice> voices;
  for (const auto& v : o.voices) voices.push_back(parse_voice(v));
  std::vector<Voice> all = voices;
  std::set<std::string> seen;
  for (const auto& it : items)
    if (!it.voice.empty() && seen.insert(it.voice).second) all.push_back(parse_voice(it.voice));
  check_espeak_voices(all);
  return voices;
}

// Per item: its file, its voice, and its duration once it has audio.
struct Plan {
  std::vector<double> duration;
  std::vector<std::string> rel_path, voice_of;
  std::vector<Job> pending;  // items without audio yet
};

Plan plan_items(const std::vector<SynthItem>& items, const SynthOptions& o, const std::vector<Voice>& voices,
                SynthReport& report) {
  Plan plan{std::vector<double>(items.size(), -1), std::vector<std::string>(items.size()),
            std::vector<std::string>(items.size()), {}};
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& id = items[i].id;
    if (id.empty() || id.find('/') != std::string::npos || id == "." || id == "..")
      throw UsageError("synthesize: id '" + id + "' cannot name a file");
    plan.rel_path[i] = "audio/" + id + "." + name_of(o.format);
    auto rng = item_rng(o.seed, id);
    const auto v = items[i].voice.empty() ? voices[rng() % voices.size()] : parse_voice(items[i].voice);
    plan.voice_of[i] = v.spec();
    const auto path = (fs::path(o.out_dir) / plan.rel_path[i]).string();
    const double existing = fs::exists(path) ? file_duration(path) : -1;
    if (existing > 0) {
      plan.duration[i] = existing;
      ++report.reused;
    } else {
      plan.pending.push_back({i, path});
    }
  }
  return plan;
}

// One "<index>\t<ok|error>\t<duration or reason>" line from a worker.
void record_line(const std::string& line, const std::vector<SynthItem>& items, Plan& plan,
                 std::vector<bool>& reported, SynthReport& report) {
  std::istringstream fields(line);
  std::string index, status, rest;
  std::getline(fields, index, '\t');
  std::getline(fields, status, '\t');
  std::getline(fields, rest);
  const size_t i = std::stoul(index);
  reported[i] = true;
  if (status == "ok") {
    plan.duration[i] = std::stod(rest);
    ++report.synthesized;
  } else {
    ++report.failed;
    if (report.failures.size() < 10) report.failures.push_back(items[i].id + ": " + rest);
  }
}

// Reads the workers' result lines until every pipe closes.
std::vector<bool> collect_results(const std::vector<int>& fds, const std::vector<SynthItem>& items, Plan& plan,
                                  SynthReport& report, const std::function<void(int64_t, int64_t)>& progress) {
  int64_t done = report.reused;
  if (progress) progress(done, report.total);
  std::vector<bool> reported(items.size(), false);
  std::vector<std::string> partial(fds.size());
  std::vector<pollfd> polls;
  for (int fd : fds) polls.push_back({fd, POLLIN, 0});
  size_t open_fds = fds.size();
  while (open_fds > 0) {
    if (::poll(polls.data(), polls.size(), -1) < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error("synthesize: poll failed");
    }
    for (size_t k = 0; k < polls.size(); ++k) {
      if (polls[k].fd < 0 || !(polls[k].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      const ssize_t n = ::read(polls[k].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(polls[k].fd);
        polls[k].fd = -1;
        --open_fds;
        continue;
      }
      partial[k].append(buf, static_cast<size_t>(n));
      for (size_t nl; (nl = partial[k].find('\n')) != std::string::npos;) {
        record_line(partial[k].substr(0, nl), items, plan, reported, report);
        partial[k].erase(0, nl + 1);
        if (progress) progress(++done, report.total);
      }
    }
  }
  return reported;
}

// manifest.jsonl: one line per item with audio, in input order.
void write_manifest(const std::vector<SynthItem>& items, const SynthOptions& o, const Plan& plan,
                    SynthReport& report) {
  std::string lines;
  for (size_t i = 0; i < items.size(); ++i) {
    if (plan.duration[i] <= 0) continue;
    nlohmann::ordered_json j;
    j["id"] = items[i].id;
    j["audio"] = plan.rel_path[i];
    j["text"] = items[i].text;
    j["voice"] = plan.voice_of[i];
    j["duration"] = std::round(plan.duration[i] * 1000.0) / 1000.0;
    for (const auto& [key, value] : items[i].extra_json)
      if (!j.contains(key)) j[key] = nlohmann::json::parse(value);
    lines += j.dump() + "\n";
    report.audio_seconds += plan.duration[i];
  }
  write_text_atomically((fs::path(o.out_dir) / "manifest.jsonl").string(), lines);
}

}  // namespace

SynthReport synthesize(const std::vector<SynthItem>& items, const SynthOptions& o,
                       const std::function<void(int64_t, int64_t)>& progress) {
  const auto voices = checked_voices(items, o);
  const auto start = std::chrono::steady_clock::now();
  fs::create_directories(fs::path(o.out_dir) / "audio");
  SynthReport report;
  report.total = static_cast<int64_t>(items.size());
  auto plan = plan_items(items, o, voices, report);

  // Fork the workers; each synthesises its share of the pending items.
  const auto& pending = plan.pending;
  const int workers = static_cast<int>(std::min<size_t>(static_cast<size_t>(o.workers), pending.size()));
  std::vector<pid_t> pids;
  std::vector<int> fds;
  for (int w = 0; w < workers; ++w) {
    std::vector<Job> share;
    for (size_t k = static_cast<size_t>(w); k < pending.size(); k += static_cast<size_t>(workers)) share.push_back(pending[k]);
    auto [pid, fd] = spawn_child([&](int out) { run_worker(items, share, voices, o, out); }, fds);
    pids.push_back(pid);
    fds.push_back(fd);
  }
  const auto reported = collect_results(fds, items, plan, report, progress);
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  // Items a crashed worker never reported count as failures.
  for (const auto& job : pending)
    if (!reported[job.index]) {
      ++report.failed;
      if (report.failures.size() < 10) report.failures.push_back(items[job.index].id + ": worker died");
    }
  write_manifest(items, o, plan, report);
  report.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace cwcl
