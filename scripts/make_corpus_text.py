#!/usr/bin/python3
"""Texts for the synthesised speech corpus (docs/corpus.md).

Writes into OUT_DIR:
  train_text.txt      SLURP training utterances (data/slurp/lm.txt, no labels)
                      plus sentences from WordNet 3.0 (Debian wordnet-base:
                      the quoted usage examples of every synset), de-duplicated,
                      without any utterance that occurs in SLURP devel or test or
                      is a Speech Commands word (compared lower-cased, letters,
                      digits and apostrophes only).
  slurp_test.jsonl    SLURP test sentences with their intents, one per flite
                      voice in FLITE_VOICES order chosen by the sentence's id.
  kws_test.jsonl      every Speech Commands word spoken by every flite voice.
  slurp_devel.jsonl   SLURP devel sentences, for validation (held-out espeak voices).

    scripts/make_corpus_text.py runs/corpus [--wordnet-max 15000] [--seed 0]
"""
import argparse
import json
import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDNET = Path("/usr/share/wordnet")
FLITE_VOICES = ["flite:kal16", "flite:slt", "flite:rms", "flite:awb"]


def norm(text):
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def wordnet_examples():
    quoted = re.compile(r'"([^"]+)"')
    for part in ("noun", "verb", "adj", "adv"):
        with open(WORDNET / f"data.{part}", encoding="latin-1") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue
                gloss = line.split("|", 1)[1]
                for example in quoted.findall(gloss):
                    words = example.split()
                    if 3 <= len(words) <= 20 and all(ord(c) < 128 for c in example):
                        yield example.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--wordnet-max", type=int, default=15000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    devel = [json.loads(l) for l in open(ROOT / "data/slurp/devel.jsonl")]
    test = [json.loads(l) for l in open(ROOT / "data/slurp/test.jsonl")]
    keywords = [w.strip() for w in open(ROOT / "data/keywords/speech_commands_v2.txt") if w.strip()]
    excluded = {norm(d["sentence"]) for d in devel + test} | {norm(w) for w in keywords}

    seen, train, stats = set(), [], {"slurp": 0, "wordnet": 0, "excluded": 0, "duplicates": 0}

    def add(text, source):
        key = norm(text)
        if not key:
            return False
        if key in excluded:
            stats["excluded"] += 1
            return False
        if key in seen:
            stats["duplicates"] += 1
            return False
        seen.add(key)
        train.append(text)
        stats[source] += 1
        return True

    for line in open(ROOT / "data/slurp/lm.txt"):
        add(line.strip(), "slurp")
    examples = sorted(set(wordnet_examples()))
    random.Random(args.seed).shuffle(examples)
    for example in examples:
        if stats["wordnet"] >= args.wordnet_max:
            break
        add(example, "wordnet")
    (out / "train_text.txt").write_text("\n".join(train) + "\n")

    with open(out / "slurp_test.jsonl", "w") as f:
        for d in test:
            voice = FLITE_VOICES[d["slurp_id"] % len(FLITE_VOICES)]
            f.write(json.dumps({"id": f"t{d['slurp_id']}", "text": d["sentence"], "intent": d["intent"],
                                "voice": voice}) + "\n")
    with open(out / "slurp_devel.jsonl", "w") as f:
        for d in devel:
            f.write(json.dumps({"id": f"d{d['slurp_id']}", "text": d["sentence"], "intent": d["intent"]}) + "\n")
    with open(out / "kws_test.jsonl", "w") as f:
        for i, word in enumerate(keywords):
            for voice in FLITE_VOICES:
                f.write(json.dumps({"id": f"kw-{word}-{voice.split(':')[1]}", "text": word, "keyword": word,
                                    "kws10": i < 10, "voice": voice}) + "\n")
    stats["train_total"] = len(train)
    stats["wordnet_candidates"] = len(examples)
    stats["slurp_test"] = len(test)
    stats["kws_test"] = len(keywords) * len(FLITE_VOICES)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
