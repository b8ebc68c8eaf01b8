#!/usr/bin/env python3
"""Single-word training clips (docs/experiments.md, "Single-word training clips").

Every training clip but 131 of 26,487 is a sentence, while the word tests
(kws-35, real-words) are single words. This adds one clip per word of
SLURP's training text seen at least --min-count times, spoken by one of the
corpus's training voices (chosen by the word's sha256). Never a word of the
word tests (kws-35, klettres-data, letter names) nor of words-devel
(scripts/words_devel.py), the set that judges it. Writes OUT/words.jsonl,
runs `cwcl synth` into OUT, then MIX/manifest.jsonl: the --base manifest's
lines, then the word clips, audio paths relative to MIX.

  scripts/words_train.py [--cwcl build/release/cwcl] [--out runs/corpus/train_words]
      [--base runs/corpus/train_mixed/manifest.jsonl] [--mix runs/corpus/train_mixed_words]
      [--voices-of runs/corpus/train/manifest.jsonl] [--min-count 5] [--devel-count 150]
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import voice_corpus  # noqa: E402  (its manifest reader and mixer; no Python packages)
import words_devel  # noqa: E402


def read_manifest(path):
    lines = voice_corpus.read_manifest(path)
    if not lines:
        sys.exit(f"{path}: the manifest is empty")
    return lines


def training_words(min_count, devel_count):
    """Words of 2-12 letters seen at least `min_count` times in SLURP's training
    text, none of the word tests' and none of words-devel's, sorted."""
    counts = words_devel.word_counts()
    held_out = words_devel.excluded_words() | set(words_devel.choose_words(devel_count))
    return sorted(w for w, n in counts.items() if n >= min_count and 2 <= len(w) <= 12 and w not in held_out)


def voice_of(word, voices):
    return voices[int(hashlib.sha256(word.encode()).hexdigest(), 16) % len(voices)]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cwcl", default=os.path.join(ROOT, "build", "release", "cwcl"))
    p.add_argument("--out", default="runs/corpus/train_words")
    p.add_argument("--base", default="runs/corpus/train_mixed/manifest.jsonl")
    p.add_argument("--mix", default="runs/corpus/train_mixed_words")
    p.add_argument("--voices-of", default="runs/corpus/train/manifest.jsonl", help="the training voices' manifest")
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--devel-count", type=int, default=150, help="words-devel's --count (held out)")
    args = p.parse_args(argv)
    if args.min_count < 1:
        p.error("--min-count must be >= 1")
    if args.devel_count < 2:
        p.error("--devel-count must be >= 2")
    return args


def main(argv=None):
    args = parse_args(argv)
    voices = sorted({line["voice"] for line in read_manifest(args.voices_of)})
    base = read_manifest(args.base)
    words = training_words(args.min_count, args.devel_count)
    os.makedirs(args.out, exist_ok=True)
    source = os.path.join(args.out, "words.jsonl")
    with open(source, "w", encoding="utf-8") as f:
        for word in words:
            f.write(json.dumps({"id": f"tw-{word}", "text": word, "voice": voice_of(word, voices)}) + "\n")
    subprocess.run([args.cwcl, "synth", source, "-o", args.out], check=True)
    clips = read_manifest(os.path.join(args.out, "manifest.jsonl"))
    voice_corpus.write_mix(args.mix, [(os.path.dirname(args.base), base), (args.out, clips)], "words-train")


if __name__ == "__main__":
    main()
