#!/usr/bin/env python3
"""Speaks training texts with a Piper neural voice (corpus-build time only).

Reads a speech manifest (the espeak training corpus), takes every k-th
utterance's text and speaks it with a Piper voice (VITS, run by PyPI's
onnxruntime through the piper-tts package), with the voice's speed and
variation drawn per utterance from the seed and the id. Writes
OUT/audio/<id>.wav, OUT/manifest.jsonl (ids "piper-<id>", the source line's
other fields kept, "voice" = "piper:<voice name>"), and with --mix DIR a
manifest DIR/manifest.jsonl holding the source's lines and the Piper lines
(paths relative to DIR): the mixed training set (docs/corpus.md).

Resumable: a clip already on disk is not spoken again. Never run it on test
texts; Piper voices are for training (docs/corpus.md, "Training voices").

  scripts/piper_env.sh            # once: the synthesis environment
  ~/.cache/cwcl/piper-venv/bin/python scripts/piper_corpus.py \\
      --voice ~/.cache/cwcl/models/piper-joe-medium/en_US-joe-medium.onnx \\
      --manifest runs/corpus/train/manifest.jsonl --out runs/corpus/train_piper \\
      --every 4 --mix runs/corpus/train_mixed
"""
import argparse
import hashlib
import json
import os
import random
import sys
import time
import wave


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--voice", required=True, help="the voice's .onnx (its .onnx.json beside it)")
    p.add_argument("--manifest", required=True, help="source manifest (JSONL with id, text)")
    p.add_argument("--out", required=True, help="folder for audio/ and manifest.jsonl")
    p.add_argument("--every", type=int, default=4, help="speak every k-th source line (default 4)")
    p.add_argument("--limit", type=int, default=0, help="at most this many clips (0: no limit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mix", help="also write DIR/manifest.jsonl: the source lines and the Piper lines")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    args = p.parse_args(argv)
    for name, lowest in (("every", 1), ("limit", 0), ("threads", 1)):
        if getattr(args, name) < lowest:
            p.error(f"--{name} must be >= {lowest}, not {getattr(args, name)}")
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


def variation(seed, item_id):
    """Speed and VITS noise scales for one clip, from the seed and the id."""
    digest = hashlib.sha256(f"{seed}:{item_id}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "little"))
    return {
        "length_scale": rng.uniform(0.85, 1.2),  # > 1 speaks slower
        "noise_scale": rng.uniform(0.45, 0.85),  # variation of the voice
        "noise_w_scale": rng.uniform(0.6, 1.0),  # variation of phoneme lengths
    }


def load_voice(path, threads):
    import onnxruntime
    from piper import PiperVoice

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    voice = PiperVoice.load(path, config_path=path + ".json")
    # Rebuild the session with the thread count (PiperVoice.load uses the default).
    voice.session = onnxruntime.InferenceSession(path, sess_options=options,
                                                 providers=["CPUExecutionProvider"])
    return voice


def speak(voice, text, wav_path, scales):
    from piper import SynthesisConfig

    tmp = wav_path + ".tmp"
    with wave.open(tmp, "wb") as w:
        voice.synthesize_wav(text, w, syn_config=SynthesisConfig(**scales))
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
    if not os.path.isfile(args.voice) or not os.path.isfile(args.voice + ".json"):
        sys.exit(f"{args.voice}: no Piper voice there (the .onnx and its .onnx.json); "
                 "run scripts/fetch_models.sh piper-joe")
    source = read_manifest(args.manifest)
    if not source:
        sys.exit(f"{args.manifest}: holds no manifest lines")
    chosen = source[:: args.every]
    if args.limit > 0:
        chosen = chosen[: args.limit]
    voice_name = os.path.basename(args.voice).removesuffix(".onnx")
    os.makedirs(os.path.join(args.out, "audio"), exist_ok=True)
    voice = load_voice(args.voice, args.threads)

    lines, started, spoken, audio_seconds = [], time.time(), 0, 0.0
    for n, item in enumerate(chosen, 1):
        new_id = f"piper-{item['id']}"
        rel = f"audio/{new_id}.wav"
        wav_path = os.path.join(args.out, rel)
        if not os.path.isfile(wav_path):
            speak(voice, item["text"], wav_path, variation(args.seed, item["id"]))
            spoken += 1
        seconds = wav_seconds(wav_path)
        audio_seconds += seconds
        line = {k: v for k, v in item.items() if k not in ("id", "audio", "voice", "duration")}
        lines.append({"id": new_id, "audio": rel, **line, "voice": f"piper:{voice_name}",
                      "duration": round(seconds, 3)})
        if n % 250 == 0 or n == len(chosen):
            elapsed = time.time() - started
            print(f"piper: {n}/{len(chosen)} clips ({spoken} spoken now, {audio_seconds:.0f} s of audio) "
                  f"in {elapsed:.0f} s", flush=True)
    write_jsonl(os.path.join(args.out, "manifest.jsonl"), lines)
    print(f"piper: wrote {len(lines)} clips to {args.out}/manifest.jsonl")
    if args.mix:
        write_mix(args.mix, [(os.path.dirname(args.manifest), source), (args.out, lines)], "piper")


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
