// Audio front end: reading (libsndfile), down-mixing, resampling
// (libsamplerate), log-mel features and training-time augmentation.
#pragma once

#include <cwcl/error.h>
#include <cwcl/names.h>
#include <torch/torch.h>

#include <stdexcept>
#include <string>

namespace cwcl {

/// A file that cannot be read as audio; what() names the file.
class AudioError : public DataError {
 public:
  using DataError::DataError;
};

/// The longest audio cwcl reads into memory whole: 10 minutes (38 MB of
/// samples at 16 kHz). Longer files are refused before they are decoded, so
/// memory stays bounded whatever a file holds.
inline constexpr double kMaxAudioSeconds = 600;

/// Reads WAV, FLAC, OGG (anything libsndfile reads), averages the channels to
/// mono and resamples to `sample_rate` (0: keep the file's rate). Returns
/// float32 samples in [-1, 1]. Throws AudioError for a missing, empty,
/// truncated or non-audio file, and for one longer than `max_seconds`
/// (named with its length and the limit).
torch::Tensor load_audio(const std::string& path, int sample_rate = 16000, int* original_rate = nullptr,
                         double max_seconds = kMaxAudioSeconds);

/// Band-limited resampling of mono float samples (libsamplerate, best sinc).
torch::Tensor resample(const torch::Tensor& samples, int from_rate, int to_rate);

/// Writes mono float samples as 16-bit PCM WAV or FLAC (by extension).
void save_audio(const std::string& path, const torch::Tensor& samples, int sample_rate);

enum class MelScale {
  Slaney,  ///< linear below 1 kHz, logarithmic above (librosa's default)
  HTK,     ///< 2595 log10(1 + f / 700)
};

struct LogMelOptions {
  int sample_rate = 16000;
  int n_fft = 400;       ///< 25 ms at 16 kHz
  int hop_length = 160;  ///< 10 ms at 16 kHz
  int n_mels = 80;
  double f_min = 0.0;
  double f_max = 0.0;    ///< 0: sample_rate / 2
  MelScale scale = MelScale::Slaney;
  /// Slaney area normalisation of each filter (2 / bandwidth), as librosa.
  bool slaney_norm = true;
  /// log(max(mel power, floor)).
  double floor = 1e-10;
  /// Vocal-tract-length perturbation (warp_frequency): the filters read the
  /// spectrum as if its frequencies were scaled by this factor. 1: none.
  double warp_factor = 1.0;
};

/// Vocal-tract-length perturbation's warp of the frequency axis (Jaitly and
/// Hinton 2013, eq. 1): `hz` times `factor` up to the boundary
/// `boundary_hz * min(factor, 1) / factor`, then a straight line that keeps
/// `nyquist_hz` in place. Formants and harmonics move as a longer (factor
/// < 1) or shorter (> 1) vocal tract would move them; the tempo, unlike
/// change_speed's, stays.
double warp_frequency(double hz, double factor, double nyquist_hz, double boundary_hz = 4800);

/// Triangular mel filters [n_mels, n_fft / 2 + 1]; with a warp_factor, each
/// filter weighs bin frequency f by its weight at warp_frequency(f) (its
/// boundary at 0.6 of the Nyquist frequency: 4.8 kHz at 16 kHz), so that
/// the filters see the spectrum warped.
torch::Tensor mel_filterbank(const LogMelOptions& options);

/// Natural-log mel power spectrogram [frames, n_mels] of mono samples [T]:
/// Hann window of n_fft samples, centred frames (reflect padding), power
/// spectrum, mel filters, log. frames = 1 + T / hop_length (a clip shorter
/// than half a window is zero-padded first). Holds its filters and window,
/// so build one and reuse it.
class LogMel {
 public:
  explicit LogMel(LogMelOptions options = {});
  torch::Tensor operator()(const torch::Tensor& samples) const;
  const LogMelOptions& options() const { return options_; }

 private:
  LogMelOptions options_;
  torch::Tensor filters_, window_;
};

/// Whisper's log-mel front end (Radford et al. 2022, whisper/audio.py): 16 kHz,
/// n_fft 400, hop 160, 80 Slaney mel filters, log10 clamped at 1e-10, then
/// max(x, max(x) - 8) and (x + 4) / 4. Returns [frames, 80] with
/// frames = T / 160 (Whisper drops the last STFT frame).
class WhisperLogMel {
 public:
  /// warp_factor: vocal-tract-length perturbation (LogMelOptions::warp_factor).
  explicit WhisperLogMel(double warp_factor = 1.0);
  torch::Tensor operator()(const torch::Tensor& samples) const;

 private:
  torch::Tensor filters_, window_;
};

/// Training-time augmentation, deterministic given the generator.
struct SpecAugmentOptions {
  int time_masks = 2, max_time_width = 20;  ///< frames
  int freq_masks = 2, max_freq_width = 10;  ///< mel bins
};
/// Masks random bands of time frames and mel bins of [frames, n_mels] with
/// the features' mean (Park et al. 2019, without time warping).
torch::Tensor spec_augment(const torch::Tensor& features, const SpecAugmentOptions& options,
                           torch::Generator& generator);
/// Adds white noise at the given signal-to-noise ratio in dB.
torch::Tensor add_noise(const torch::Tensor& samples, double snr_db, torch::Generator& generator);
/// Scales by a gain in dB.
torch::Tensor apply_gain(const torch::Tensor& samples, double gain_db);
/// Speed perturbation (Ko et al. 2015): plays `factor` times faster, pitch
/// and tempo together, by resampling.
torch::Tensor change_speed(const torch::Tensor& samples, double factor);

/// A synthetic room: the clip convolved with the direct sound (an impulse)
/// plus a late tail of white noise whose energy falls 60 dB in
/// `rt60_seconds` (the statistical model of late reverberation, Schroeder
/// 1962), scaled so that direct over reverberant energy is exactly
/// `drr_db`. The result keeps the clip's length.
torch::Tensor add_reverb(const torch::Tensor& samples, int sample_rate, double rt60_seconds, double drr_db,
                         torch::Generator& generator);

/// Waveform augmentation of a whole clip, for augmented copies of a corpus
/// (computed once, before features are cached). Speed perturbation moves
/// pitch and formants together, as a different vocal tract would (Ko et al.
/// 2015 use 0.9, 1.0, 1.1); a room, gain and noise vary the recording, as a
/// microphone in a room would (synthesised clips have neither).
struct WaveAugmentOptions {
  double min_speed = 0.9, max_speed = 1.1;      ///< factor drawn uniformly
  double reverb_probability = 0.5;              ///< chance of a synthetic room
  double min_rt60 = 0.2, max_rt60 = 0.7;        ///< its reverberation time (s), drawn uniformly
  double min_drr_db = 0, max_drr_db = 12;       ///< its direct-to-reverberant ratio, drawn uniformly
  double noise_probability = 0.5;               ///< chance of white noise
  double min_snr_db = 15, max_snr_db = 40;      ///< its SNR, drawn uniformly
  double max_gain_db = 6;                       ///< gain drawn from +-max_gain_db
};
/// Speed, then (with reverb_probability) a room, gain, then (with
/// noise_probability) noise; deterministic given the generator. The result
/// stays in [-1, 1].
torch::Tensor augment_waveform(const torch::Tensor& samples, int sample_rate, const WaveAugmentOptions& options,
                               torch::Generator& generator);

/// Vocal-tract-length perturbation of augmented copies (Jaitly and Hinton
/// 2013 draw the factor from 0.9-1.1): the front end warps each copy's
/// frequency axis by a factor drawn uniformly, after augment_waveform.
/// Unlike speed perturbation it leaves the tempo alone. 1, 1: none.
struct WarpAugmentOptions {
  double min_factor = 1.0, max_factor = 1.0;
  bool active() const { return min_factor != 1.0 || max_factor != 1.0; }
};
/// A factor drawn uniformly from the range; 1, without a draw, when the
/// range is inactive (so the generator's later draws stay as they were).
double draw_warp_factor(const WarpAugmentOptions& options, torch::Generator& generator);

/// Leading and trailing silence. Frames of `frame_seconds` whose RMS is more
/// than `threshold_db` below the loudest frame's count as silence; the clip
/// keeps `margin_seconds` beyond its first and last loud frames. Recorded
/// speech carries it (the klettres-data clips: about 0.5 s before the word
/// and 0.8 s after, 70 % of each clip), synthesised speech hardly any, and a
/// tower trained on the second reads the first far better without it
/// (docs/experiments.md, "Silence in recorded clips").
struct SilenceTrimOptions {
  double threshold_db = -26;  ///< relative to the loudest frame (an amplitude ratio of 0.05)
  double margin_seconds = 0.1;
  double frame_seconds = 0.02;
};
/// The part of mono `samples` between the first and the last loud frame,
/// with the margin; unchanged when no frame is louder than zero or the clip
/// is shorter than two frames. A middle pause stays.
torch::Tensor trim_silence(const torch::Tensor& samples, int sample_rate, const SilenceTrimOptions& options = {});

/// Which log-mel front end a tower reads (and a feature cache holds).
enum class FrontEnd {
  LogMel,   ///< LogMel with LogMelOptions (the from-scratch tower)
  Whisper,  ///< WhisperLogMel (the Whisper tower)
};
template <>
struct Names<FrontEnd> {
  static constexpr const char* what = "front end";
  static constexpr std::array<std::pair<FrontEnd, const char*>, 2> table{
      {{FrontEnd::LogMel, "log-mel"}, {FrontEnd::Whisper, "whisper"}}};
};

}  // namespace cwcl
