// The audio front end on real speech against torchaudio and Whisper's recipe,
// and reading, resampling and augmentation properties.
#include <gtest/gtest.h>

#include <set>
#include <nlohmann/json.hpp>

#include <cwcl/audio/audio.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "temp_dir.h"

namespace {

const char* kSpeech = "/usr/share/sounds/alsa/Front_Center.wav";  // Debian alsa-utils

nlohmann::json golden() {
  std::ifstream in(CWCL_TEST_DATA_DIR "/golden/audio_golden.json");
  return nlohmann::json::parse(in);
}

torch::Tensor rows(const nlohmann::json& j) {
  std::vector<float> flat;
  for (const auto& r : j)
    for (const auto& v : r) flat.push_back(v.get<float>());
  return torch::tensor(flat).reshape({static_cast<int64_t>(j.size()), -1});
}

TEST(AudioFrontEnd, LogMelMatchesTorchaudioOnSpeech) {
  ASSERT_TRUE(std::filesystem::exists(kSpeech)) << "install alsa-utils (scripts/setup.sh does)";
  auto g = golden();
  int rate = 0;
  auto x = cwcl::load_audio(kSpeech, 0, &rate);
  ASSERT_EQ(rate, 48000);
  ASSERT_EQ(x.numel(), g.at("samples").get<int64_t>());
  cwcl::LogMelOptions o;
  o.sample_rate = 48000;
  o.n_fft = 1200;  // 25 ms
  o.hop_length = 480;  // 10 ms
  auto feats = cwcl::LogMel(o)(x);
  ASSERT_EQ(feats.size(0), g.at("log_mel_frames").get<int64_t>());
  ASSERT_EQ(feats.size(1), 80);
  auto want = rows(g.at("log_mel"));
  auto got = feats.index_select(0, torch::arange(0, feats.size(0), g.at("every").get<int64_t>()));
  // Natural-log units; the speech spans about 30 of them.
  EXPECT_LT((got - want).abs().max().item<double>(), 2e-3);
}

TEST(AudioFrontEnd, WhisperLogMelMatchesItsRecipe) {
  auto g = golden();
  auto x = cwcl::load_audio(kSpeech, 0);
  auto x16 = x.index_select(0, torch::arange(0, x.numel(), 3));  // as the reference decimates
  auto feats = cwcl::WhisperLogMel()(x16);
  ASSERT_EQ(feats.size(0), g.at("whisper_frames").get<int64_t>());
  auto want = rows(g.at("whisper"));
  auto got = feats.index_select(0, torch::arange(0, feats.size(0), g.at("every").get<int64_t>()));
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-4);
}

TEST(AudioFrontEnd, MelFiltersCoverTheBandAndHtkDiffers) {
  cwcl::LogMelOptions o;
  auto fb = cwcl::mel_filterbank(o);
  EXPECT_EQ(fb.sizes(), (std::vector<int64_t>{80, 201}));
  EXPECT_GE(fb.min().item<float>(), 0.0f);
  EXPECT_TRUE((fb.sum(1) > 0).all().item<bool>());  // no empty filter at 80 bins, n_fft 400
  o.scale = cwcl::MelScale::HTK;
  EXPECT_FALSE(torch::allclose(cwcl::mel_filterbank(o), fb));
  // Shorter than half a window: zero-padded to n_fft / 2 + 1 = 201 samples, 2 frames.
  EXPECT_EQ(cwcl::LogMel()(torch::zeros({50})).size(0), 2);
}

TEST(AudioFrontEnd, ResamplingKeepsATonesFrequencyAndLevel) {
  const double f = 440.0;
  auto t = torch::arange(0, 44100, torch::kDouble) / 44100.0;
  auto tone = (0.5 * torch::sin(2 * M_PI * f * t)).to(torch::kFloat);
  auto y = cwcl::resample(tone, 44100, 16000);
  EXPECT_NEAR(y.numel(), 16000, 2);
  auto spectrum = torch::fft::rfft(y.narrow(0, 0, 15800)).abs();
  EXPECT_NEAR(spectrum.argmax().item<int64_t>() * 16000.0 / 15800.0, 440.0, 1.1);
  EXPECT_NEAR(y.narrow(0, 1000, 14000).pow(2).mean().item<double>(), 0.125, 0.002);  // RMS kept
}

// Vocal-tract-length perturbation (Jaitly and Hinton 2013): frequencies
// scale by the factor up to the knee, the Nyquist frequency stays, the line
// between is continuous; a warped tone reads like a higher one, at the
// same length.
TEST(AudioAugmentation, VocalTractWarpMovesFrequenciesAndKeepsTheTempo) {
  EXPECT_DOUBLE_EQ(cwcl::warp_frequency(1000, 1.0, 8000), 1000);
  EXPECT_DOUBLE_EQ(cwcl::warp_frequency(1000, 1.1, 8000), 1100);
  EXPECT_DOUBLE_EQ(cwcl::warp_frequency(1000, 0.9, 8000), 900);
  EXPECT_DOUBLE_EQ(cwcl::warp_frequency(8000, 1.1, 8000), 8000);
  EXPECT_DOUBLE_EQ(cwcl::warp_frequency(8000, 0.9, 8000), 8000);
  EXPECT_NEAR(cwcl::warp_frequency(4800 / 1.1, 1.1, 8000), 4800, 1e-9);  // the knee
  EXPECT_NEAR(cwcl::warp_frequency(4800 / 1.1 + 1e-6, 1.1, 8000), 4800, 1e-5);
  EXPECT_NEAR(cwcl::warp_frequency(4800.0 + 1e-6, 0.9, 8000), 4320, 1e-5);
  for (double f = 0, last = -1; f <= 8000; f += 50) {  // increasing over the band
    const double w = cwcl::warp_frequency(f, 0.9, 8000);
    EXPECT_GT(w, last) << f;
    last = w;
  }
  EXPECT_THROW(cwcl::warp_frequency(1000, 0, 8000), c10::Error);

  cwcl::LogMelOptions o;
  const auto plain = cwcl::mel_filterbank(o);
  o.warp_factor = 1.0;
  EXPECT_TRUE(torch::equal(cwcl::mel_filterbank(o), plain));
  auto tone = [](double hz) {
    auto t = torch::arange(0, 16000, torch::kDouble) / 16000.0;
    return (0.5 * torch::sin(2 * M_PI * hz * t)).to(torch::kFloat);
  };
  auto loudest_bin = [](const torch::Tensor& mel) { return mel.mean(0).argmax().item<int64_t>(); };
  const auto warped = cwcl::WhisperLogMel(1.1)(tone(1000));
  const auto unwarped = cwcl::WhisperLogMel()(tone(1000)), higher = cwcl::WhisperLogMel()(tone(1100));
  EXPECT_EQ(warped.sizes(), unwarped.sizes());  // the tempo stays
  EXPECT_NE(loudest_bin(unwarped), loudest_bin(higher));
  EXPECT_EQ(loudest_bin(warped), loudest_bin(higher));
  EXPECT_EQ(loudest_bin(cwcl::WhisperLogMel(1000.0 / 1100.0)(tone(1100))), loudest_bin(unwarped));
  // Any sample rate has a knee below its Nyquist frequency (8 kHz: 2.4 kHz).
  o.sample_rate = 8000;
  o.n_fft = 200;
  o.warp_factor = 1.1;
  EXPECT_EQ(cwcl::mel_filterbank(o).sizes(), (std::vector<int64_t>{80, 101}));
}

TEST(AudioAugmentation, WarpFactorsAreDrawnFromTheRangeOnlyWhenOneIsSet) {
  auto g = at::detail::createCPUGenerator(3), fresh = at::detail::createCPUGenerator(3);
  EXPECT_EQ(cwcl::draw_warp_factor({}, g), 1.0);
  // No draw was taken: the generator's next number is a fresh one's first.
  EXPECT_EQ(torch::rand({1}, g, torch::kDouble).item<double>(), torch::rand({1}, fresh, torch::kDouble).item<double>());
  cwcl::WarpAugmentOptions range{0.9, 1.1};
  std::set<double> seen;
  for (int i = 0; i < 50; ++i) {
    const double f = cwcl::draw_warp_factor(range, g);
    EXPECT_GE(f, 0.9);
    EXPECT_LE(f, 1.1);
    seen.insert(f);
  }
  EXPECT_GT(seen.size(), 45u);
  auto a = at::detail::createCPUGenerator(5), b = at::detail::createCPUGenerator(5);
  EXPECT_EQ(cwcl::draw_warp_factor(range, a), cwcl::draw_warp_factor(range, b));
  EXPECT_THROW(cwcl::draw_warp_factor({1.2, 1.1}, a), c10::Error);
}

using AudioFiles = cwcl::testing::TempDirTest;

TEST_F(AudioFiles, ReadsWavAndFlacAtAnyRateAndNamesBadFiles) {
  auto t = torch::arange(0, 22050, torch::kDouble) / 22050.0;
  auto tone = (0.3 * torch::sin(2 * M_PI * 300.0 * t)).to(torch::kFloat);
  cwcl::save_audio(path("a.wav"), tone, 22050);
  cwcl::save_audio(path("a.flac"), tone, 22050);
  for (const auto* name : {"a.wav", "a.flac"}) {
    auto y = cwcl::load_audio(path(name));
    EXPECT_NEAR(y.numel(), 16000, 2) << name;
    EXPECT_NEAR(y.abs().max().item<float>(), 0.3f, 0.01f) << name;
  }
  auto expect_error = [&](const std::string& file, const std::string& needle) {
    try {
      cwcl::load_audio(file);
      ADD_FAILURE() << "read " << file;
    } catch (const cwcl::AudioError& e) {
      EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(path("missing.wav"), "no such file");
  std::ofstream(path("text.wav")) << "this is not audio at all, just text";
  expect_error(path("text.wav"), "not readable as audio");
  cwcl::save_audio(path("empty.wav"), torch::zeros({0}), 16000);
  expect_error(path("empty.wav"), "empty");
  // Cut a valid WAV in half: its header still promises the whole data chunk.
  std::ifstream in(path("a.wav"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(path("cut.wav"), std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  expect_error(path("cut.wav"), "truncated");
}

// A tone between stretches of quiet noise: the quiet is cut to the margin on
// both sides, the tone and a softer part inside it stay sample for sample.
TEST(AudioTrim, CutsLeadingAndTrailingSilenceToTheMargin) {
  const int rate = 16000;
  auto gen = at::detail::createCPUGenerator(7);
  auto quiet = [&](int64_t n) { return 0.001 * torch::randn({n}, gen); };  // 54 dB below the tone
  auto tone = [&](int64_t n, double level) {
    return level * torch::sin(2 * M_PI * 440.0 * torch::arange(n, torch::kDouble) / rate).to(torch::kFloat);
  };
  // 0.5 s quiet, 0.2 s loud, 0.1 s at -14 dB (kept: above -26 dB), 0.8 s quiet.
  auto clip = torch::cat({quiet(8000), tone(3200, 0.5), tone(1600, 0.1), quiet(12800)});
  auto trimmed = cwcl::trim_silence(clip, rate);
  // Loud frames 25..39 (20 ms each); 0.1 s (1,600 samples) either side.
  ASSERT_EQ(trimmed.size(0), 4800 + 2 * 1600);
  EXPECT_TRUE(torch::equal(trimmed, clip.slice(0, 8000 - 1600, 8000 + 4800 + 1600)));
  cwcl::SilenceTrimOptions tight;
  tight.margin_seconds = 0;
  EXPECT_TRUE(torch::equal(cwcl::trim_silence(clip, rate, tight), clip.slice(0, 8000, 12800)));
  // A stricter threshold drops the -14 dB part as silence too.
  cwcl::SilenceTrimOptions strict = tight;
  strict.threshold_db = -10;
  EXPECT_EQ(cwcl::trim_silence(clip, rate, strict).size(0), 3200);
}

TEST(AudioTrim, LeavesSpeechWithoutSilenceDigitalSilenceAndShortClipsAlone) {
  auto tone = 0.3 * torch::sin(torch::arange(16000, torch::kFloat) * 0.2f);
  EXPECT_TRUE(torch::equal(cwcl::trim_silence(tone, 16000), tone));
  auto zeros = torch::zeros({16000});
  EXPECT_TRUE(torch::equal(cwcl::trim_silence(zeros, 16000), zeros));
  auto short_clip = torch::ones({500});  // under two 20 ms frames
  EXPECT_TRUE(torch::equal(cwcl::trim_silence(short_clip, 16000), short_clip));
  // A pause between two words stays.
  auto words = torch::cat({tone.slice(0, 0, 4800), torch::zeros({8000}), tone.slice(0, 0, 4800)});
  EXPECT_EQ(cwcl::trim_silence(words, 16000).size(0), words.size(0));
  cwcl::SilenceTrimOptions bad;
  bad.threshold_db = 3;
  EXPECT_THROW(cwcl::trim_silence(tone, 16000, bad), c10::Error);
  EXPECT_THROW(cwcl::trim_silence(tone.view({4, -1}), 16000), c10::Error);
}

TEST(AudioAugmentation, DeterministicAndWithinBounds) {
  torch::manual_seed(0);
  auto x = 0.1f * torch::randn({16000});
  auto g1 = at::detail::createCPUGenerator(7), g2 = at::detail::createCPUGenerator(7);
  auto a = cwcl::add_noise(x, 10.0, g1), b = cwcl::add_noise(x, 10.0, g2);
  EXPECT_TRUE(torch::equal(a, b));
  const double snr = 10 * std::log10(x.pow(2).mean().item<double>() / (a - x).pow(2).mean().item<double>());
  EXPECT_NEAR(snr, 10.0, 0.3);
  EXPECT_NEAR(cwcl::apply_gain(x, 6.0206).abs().max().item<float>(), 2 * x.abs().max().item<float>(), 1e-4);
  EXPECT_NEAR(cwcl::change_speed(x, 1.1).numel(), 16000 / 1.1, 2);
  EXPECT_NEAR(cwcl::change_speed(x, 0.9).numel(), 16000 / 0.9, 2);

  auto feats = torch::randn({100, 80});
  cwcl::SpecAugmentOptions o;
  auto masked = cwcl::spec_augment(feats, o, g1);
  EXPECT_EQ(masked.sizes(), feats.sizes());
  auto changed = masked.ne(feats);
  // Masked cells form whole rows or whole columns.
  auto row_hits = changed.sum(1), col_hits = changed.sum(0);
  EXPECT_LE(col_hits.max().item<int64_t>(), 100);
  EXPECT_LE((row_hits == 80).sum().item<int64_t>(), 2 * o.max_time_width);
  EXPECT_LE((col_hits == 100).sum().item<int64_t>(), 2 * o.max_freq_width);
  auto g3 = at::detail::createCPUGenerator(7), g4 = at::detail::createCPUGenerator(7);
  EXPECT_TRUE(torch::equal(cwcl::spec_augment(feats, o, g3), cwcl::spec_augment(feats, o, g4)));
}

TEST(AudioAugmentation, WaveformCopiesVarySpeedGainAndNoiseDeterministically) {
  auto t = torch::arange(16000, torch::kDouble) / 16000.0;
  auto x = (0.3 * torch::sin(2 * M_PI * 440.0 * t)).to(torch::kFloat);
  cwcl::WaveAugmentOptions o;
  std::set<int64_t> lengths;
  for (uint64_t seed = 0; seed < 12; ++seed) {
    auto g1 = at::detail::createCPUGenerator(seed), g2 = at::detail::createCPUGenerator(seed);
    auto a = cwcl::augment_waveform(x, 16000, o, g1);
    EXPECT_TRUE(torch::equal(a, cwcl::augment_waveform(x, 16000, o, g2))) << "seed " << seed;
    EXPECT_GE(a.numel(), 16000 / o.max_speed - 2);
    EXPECT_LE(a.numel(), 16000 / o.min_speed + 2);
    EXPECT_LE(a.abs().max().item<float>(), 1.0f);
    lengths.insert(a.numel());
  }
  EXPECT_GT(lengths.size(), 6u) << "speed factors must vary between copies";
  // No speed range, no room and no gain: only noise, at an SNR inside the range.
  o.min_speed = o.max_speed = 1.0;
  o.reverb_probability = 0;
  o.max_gain_db = 0;
  o.noise_probability = 1;
  auto g = at::detail::createCPUGenerator(3);
  auto noisy = cwcl::augment_waveform(x, 16000, o, g);
  ASSERT_EQ(noisy.numel(), x.numel());
  const double snr = 10 * std::log10(x.pow(2).mean().item<double>() / (noisy - x).pow(2).mean().item<double>());
  EXPECT_GE(snr, o.min_snr_db - 0.5);
  EXPECT_LE(snr, o.max_snr_db + 0.5);
  o.min_speed = 0;
  EXPECT_THROW(cwcl::augment_waveform(x, 16000, o, g), c10::Error);
  o.min_speed = 1.0;
  o.min_rt60 = 0;
  EXPECT_THROW(cwcl::augment_waveform(x, 16000, o, g), c10::Error);
}

// The room's response, read off an impulse: the direct sound, then a tail
// with exactly the asked direct-to-reverberant ratio whose energy falls
// 60 dB over rt60.
TEST(AudioAugmentation, ReverbHasTheAskedDecayAndDirectToReverberantRatio) {
  const int rate = 16000;
  const double rt60 = 0.5, drr_db = 6;
  const int64_t tail = static_cast<int64_t>(rt60 * rate);
  auto impulse = torch::zeros({2 * tail}, torch::kFloat);
  impulse[0] = 1;
  auto g1 = at::detail::createCPUGenerator(5), g2 = at::detail::createCPUGenerator(5);
  auto y = cwcl::add_reverb(impulse, rate, rt60, drr_db, g1);
  ASSERT_EQ(y.numel(), impulse.numel());
  EXPECT_TRUE(torch::equal(y, cwcl::add_reverb(impulse, rate, rt60, drr_db, g2)));
  EXPECT_NEAR(y[0].item<double>(), 1.0, 1e-5);
  auto late = y.narrow(0, 1, tail).to(torch::kDouble);
  EXPECT_NEAR(10 * std::log10(1.0 / late.pow(2).sum().item<double>()), drr_db, 1e-3);
  // Mean energy of the first and last tenth of the tail: 54 dB apart (the
  // windows' centres are 0.9 rt60 apart), within the noise of 800 samples each.
  const int64_t tenth = tail / 10;
  const double first = late.narrow(0, 0, tenth).pow(2).mean().item<double>();
  const double last = late.narrow(0, tail - tenth, tenth).pow(2).mean().item<double>();
  EXPECT_NEAR(10 * std::log10(first / last), 54.0, 2.0);
  EXPECT_LT(y.narrow(0, tail + 1, tail - 1).abs().max().item<float>(), 1e-5f) << "nothing after the tail";
  // A clip keeps its length; an empty one stays empty.
  EXPECT_EQ(cwcl::add_reverb(torch::ones({100}), rate, rt60, drr_db, g1).numel(), 100);
  EXPECT_EQ(cwcl::add_reverb(torch::zeros({0}), rate, rt60, drr_db, g1).numel(), 0);
  EXPECT_THROW(cwcl::add_reverb(impulse, rate, 0.0, drr_db, g1), c10::Error);
}

}  // namespace
