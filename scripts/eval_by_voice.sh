#!/usr/bin/env bash
# Zero-shot SLURP intent top-1 of speech models per synthesised voice
# (`cwcl eval speech --group-by voice`: every voice judged against the whole
# set's classes). Prints a Markdown table, one row per model, one column per
# voice with its utterance count, then the whole set.
#
#   scripts/eval_by_voice.sh MODEL... [-- manifest (runs/corpus/slurp_test/manifest.jsonl)]
#   environment: CWCL (build/release/cwcl), LABELS (data/slurp/intent_labels.tsv)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cwcl=${CWCL:-$here/build/release/cwcl}
labels=${LABELS:-$here/data/slurp/intent_labels.tsv}
models=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do models+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
manifest=${1:-runs/corpus/slurp_test/manifest.jsonl}
[ ${#models[@]} -gt 0 ] || { echo "usage: $0 MODEL... [-- manifest]" >&2; exit 2; }

first=1
for m in "${models[@]}"; do
  "$cwcl" eval speech --model "$m" --manifest "$manifest" --labels "$labels" --group-by voice |
    /usr/bin/python3 -c '
import json, sys
model, first = sys.argv[1], sys.argv[2] == "1"
r = json.load(sys.stdin)
groups = sorted(r["groups"].items())
if first:
    print("| model | " + " | ".join("%s (%d)" % (v, g["n"]) for v, g in groups) + " | all (%d) |" % r["n"])
    print("| --- |" + " ---: |" * (len(groups) + 1))
print(f"| {model} | " + " | ".join("%.1f" % (100 * g["top1"]) for _, g in groups) + " | %.1f |" % (100 * r["top1"]))
' "$m" "$first"
  first=0
done
