#!/usr/bin/env python3
"""Reference Whisper encoder outputs (tiny.en, base) from CTranslate2 itself.

Features: Whisper's log-mel recipe (openai/whisper audio.py, with torchaudio's
Slaney filters) of real speech (/usr/share/sounds/alsa/Front_Center.wav from
Debian alsa-utils, every third sample: 16 kHz), once padded to 30 s as Whisper
does and once as it is. Encoder: ctranslate2.models.Whisper(...).encode in
float32. Run once in a throwaway environment that sees the system torch:

    /usr/bin/python3 -m venv --system-site-packages /tmp/refvenv
    /tmp/refvenv/bin/pip install ctranslate2==4.8.5
    scripts/fetch_models.sh whisper
    /tmp/refvenv/bin/python scripts/make_whisper_golden.py \
        ~/.cache/cwcl/models/whisper-tiny.en-ct2 > tests/golden/whisper_golden.json
    scripts/fetch_models.sh whisper-base
    /tmp/refvenv/bin/python scripts/make_whisper_golden.py \
        ~/.cache/cwcl/models/whisper-base-ct2 > tests/golden/whisper_base_golden.json
"""
import json
import sys

import ctranslate2
import numpy as np
import torch
import torchaudio

ROWS = [0, 1, 2, 10, 35, 70]


def whisper_log_mel(x):
    stft = torch.stft(x, 400, 160, window=torch.hann_window(400), return_complex=True)
    magnitudes = stft[..., :-1].abs() ** 2
    filters = torchaudio.functional.melscale_fbanks(201, 0.0, 8000.0, 80, 16000, norm="slaney",
                                                    mel_scale="slaney").T
    log_spec = torch.clamp(filters @ magnitudes, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0  # [80, frames]


def main():
    model = ctranslate2.models.Whisper(sys.argv[1], device="cpu", compute_type="float32")
    wav, _ = torchaudio.load("/usr/share/sounds/alsa/Front_Center.wav")
    x16 = wav.mean(0)[::3].contiguous()
    padded = torch.nn.functional.pad(x16, (0, 480000 - x16.numel()))
    out = {"generator": "scripts/make_whisper_golden.py", "ctranslate2": ctranslate2.__version__,
           "rows": ROWS}
    for name, audio in (("padded", padded), ("unpadded", x16)):
        mel = whisper_log_mel(audio).unsqueeze(0).numpy().astype(np.float32)
        enc = np.array(model.encode(ctranslate2.StorageView.from_array(mel), to_cpu=True))[0]
        out[name] = {"frames": int(mel.shape[2]), "outputs": int(enc.shape[0]),
                     "rows": [[round(float(v), 5) for v in enc[r]] for r in ROWS],
                     "mean": [round(float(v), 5) for v in enc.mean(0)]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
