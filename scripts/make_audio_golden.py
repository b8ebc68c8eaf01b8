#!/usr/bin/python3
"""Reference log-mel features of real speech for the C++ front end.

Input: /usr/share/sounds/alsa/Front_Center.wav (Debian package alsa-utils: a
person saying "front center", 48 kHz mono). References: torchaudio 0.13
(Debian python3-torchaudio) MelSpectrogram for cwcl::log_mel at the file's own
rate, and Whisper's log_mel_spectrogram recipe (openai/whisper audio.py, with
torchaudio's Slaney filters, which equal librosa's) on every third sample.
Rerun:

    /usr/bin/python3 scripts/make_audio_golden.py > tests/golden/audio_golden.json
"""
import json

import torch
import torchaudio

PATH = "/usr/share/sounds/alsa/Front_Center.wav"
EVERY = 4  # keep every 4th frame to keep the file small


def main():
    wav, sr = torchaudio.load(PATH)
    x = wav.mean(0)
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=sr, n_fft=1200, win_length=1200, hop_length=480, f_min=0.0, f_max=None,
        n_mels=80, window_fn=torch.hann_window, power=2.0, center=True, pad_mode="reflect",
        norm="slaney", mel_scale="slaney")(x)
    log_mel = mel.clamp(min=1e-10).log().T  # [frames, 80]

    x16 = x[::3].contiguous()
    window = torch.hann_window(400)
    stft = torch.stft(x16, 400, 160, window=window, return_complex=True)
    magnitudes = stft[..., :-1].abs() ** 2
    filters = torchaudio.functional.melscale_fbanks(201, 0.0, 8000.0, 80, 16000, norm="slaney",
                                                    mel_scale="slaney").T
    log_spec = torch.clamp(filters @ magnitudes, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    whisper = ((log_spec + 4.0) / 4.0).T

    print(json.dumps({
        "generator": "scripts/make_audio_golden.py",
        "torchaudio": torchaudio.__version__,
        "file": PATH,
        "sample_rate": sr,
        "samples": int(x.numel()),
        "every": EVERY,
        "log_mel_frames": int(log_mel.shape[0]),
        "log_mel": [[round(v, 6) for v in row] for row in log_mel[::EVERY].tolist()],
        "whisper_frames": int(whisper.shape[0]),
        "whisper": [[round(v, 6) for v in row] for row in whisper[::EVERY].tolist()],
    }))


if __name__ == "__main__":
    main()
