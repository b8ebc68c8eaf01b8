#!/bin/bash
# Builds the speech corpus of the experiments (docs/corpus.md) into a folder:
# training text, then speech synthesised by espeak-ng (training, validation
# voices) and flite (test voices). Resumable: finished parts are kept.
# usage: scripts/make_corpus.sh [folder (runs/corpus)] [cwcl binary (build/release/cwcl)]
set -euo pipefail
out=${1:-runs/corpus}
cwcl=${2:-build/release/cwcl}
mkdir -p "$out"
if [ ! -s "$out/train_text.txt" ]; then
  /usr/bin/python3 scripts/make_corpus_text.py "$out"
fi
train_voices=espeak:en-us,espeak:en-us+f2,espeak:en-us+m3,espeak:en,espeak:en+f3,espeak:en-gb-x-rp,espeak:en-029,espeak:en-us-nyc+m5
synth() {  # input, folder, extra args
  local input=$1 folder=$2
  shift 2
  if [ ! -s "$out/$folder/manifest.jsonl" ]; then
    "$cwcl" synth "$input" -o "$out/$folder" "$@"
  fi
}
synth "$out/train_text.txt" train --voices "$train_voices"
synth "$out/slurp_devel.jsonl" devel --voices espeak:en-gb-scotland+f4,espeak:en-gb-x-gbclan+m2
synth "$out/slurp_test.jsonl" slurp_test
synth "$out/kws_test.jsonl" kws_test
echo "corpus: $out"
