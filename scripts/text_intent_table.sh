#!/usr/bin/env bash
# Text-only zero-shot intent accuracy on SLURP (the bound of speech-to-intent):
# each frozen tower classifies devel and test sentences by the nearest label
# text of data/slurp/intent_labels.tsv. Prints a Markdown table.
#   scripts/fetch_models.sh minilm glove && scripts/text_intent_table.sh [build dir]
set -euo pipefail
build=${1:-build/release}
echo "| tower | devel top-1 | devel top-5 | test top-1 | test top-5 |"
echo "| --- | ---: | ---: | ---: | ---: |"
for tower in minilm glove-mean glove-sif; do
  row="| $tower"
  for split in devel test; do
    json=$("$build/cwcl" eval text-intent --tower "$tower" --labels data/slurp/intent_labels.tsv \
      --data "data/slurp/$split.jsonl")
    row+=$(/usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(" | %.3f | %.3f" % (d["top1"], d["top5"]), end="")' "$json")
  done
  echo "$row |"
done
