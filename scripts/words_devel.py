#!/usr/bin/env python3
"""A development set of spoken single words (docs/experiments.md).

Every training clip but 131 of 26,487 is a sentence, and the word tests
(kws-35, real-words) have no development set: anything chosen for words
(prompt templates, a correction of the class scores) would be chosen on
test. This set is that development set: common words of SLURP's training
text (heard inside sentences in training, never alone), none of them a
word of kws-35, real-words or klettres-data, each spoken by both held-out
espeak-ng devel voices (never in training, never in test). Writes
OUT/words.jsonl and OUT/words.txt (the labels, one per line) and runs
`cwcl synth` into OUT (manifest.jsonl with the field "word").

  scripts/words_devel.py [--cwcl build/release/cwcl] [--out runs/corpus/words_devel] [--count 150] [--devel runs/corpus/devel/manifest.jsonl]
"""
import argparse
import collections
import glob
import hashlib
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def devel_voices(manifest):
    """The voices of the corpus's devel part (held out of training and test)."""
    if not os.path.isfile(manifest):
        sys.exit(f"{manifest}: no such manifest (build the corpus first: cwcl corpus)")
    with open(manifest, encoding="utf-8") as f:
        return sorted({json.loads(line)["voice"] for line in f if line.strip()})


def excluded_words():
    """Words of the word tests: Speech Commands (kws), klettres-data (real-words), letter names."""
    words = set()
    with open(os.path.join(ROOT, "data", "keywords", "speech_commands_v2.txt"), encoding="utf-8") as f:
        words |= {line.strip().lower() for line in f if line.strip()}
    for path in glob.glob("/usr/share/klettres/*/syllab/*.ogg"):
        words.add(os.path.basename(path)[:-4].lower())
    words |= set("abcdefghijklmnopqrstuvwxyz")
    return words


def word_counts():
    """How often each word occurs in SLURP's training text."""
    counts = collections.Counter()
    with open(os.path.join(ROOT, "data", "slurp", "lm.txt"), encoding="utf-8") as f:
        for line in f:
            counts.update(re.findall(r"[a-z]+", line.lower()))
    return counts


def choose_words(count, min_count=20):
    """`count` words of 3-7 letters seen at least `min_count` times in SLURP's
    training text, in an order fixed by their sha256 (no seed to tune)."""
    counts = word_counts()
    excluded = excluded_words()
    candidates = [w for w, n in counts.items() if n >= min_count and 3 <= len(w) <= 7 and w not in excluded]
    candidates.sort(key=lambda w: hashlib.sha256(w.encode()).hexdigest())
    if len(candidates) < count:
        sys.exit(f"only {len(candidates)} candidate words in data/slurp/lm.txt, fewer than --count {count}")
    return sorted(candidates[:count])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cwcl", default=os.path.join(ROOT, "build", "release", "cwcl"))
    p.add_argument("--out", default="runs/corpus/words_devel")
    p.add_argument("--count", type=int, default=150)
    p.add_argument("--devel", default="runs/corpus/devel/manifest.jsonl", help="the corpus's devel manifest (its voices)")
    args = p.parse_args()
    if args.count < 2:
        p.error("--count must be >= 2")
    voices = devel_voices(args.devel)
    words = choose_words(args.count)
    os.makedirs(args.out, exist_ok=True)
    source = os.path.join(args.out, "words.jsonl")
    with open(source, "w", encoding="utf-8") as f:
        for word in words:
            for v, voice in enumerate(voices):
                f.write(json.dumps({"id": f"wd-{word}-{v}", "text": word, "word": word, "voice": voice}) + "\n")
    with open(os.path.join(args.out, "words.txt"), "w", encoding="utf-8") as f:
        f.write("".join(word + "\n" for word in words))
    subprocess.run([args.cwcl, "synth", source, "-o", args.out, "--workers", "1"], check=True)
    print(f"words-devel: {len(words)} words x {len(voices)} voices in {args.out}/manifest.jsonl")


if __name__ == "__main__":
    main()
