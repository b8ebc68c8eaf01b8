#!/usr/bin/env bash
# Zero-shot top-1 (%) of speech models on every speech test set of the demo's
# corpus: SLURP devel (held-out espeak voices; also in a held-out Kokoro
# speaker where make kokoro-corpus built it), SLURP test (flite voices),
# kws-35 (flite), and the recorded human words and letters (klettres-data),
# with 95 % bootstrap intervals; with --against BASE each row also gets its
# paired difference from BASE (same items resampled). Prints a Markdown table.
#
#   scripts/eval_speech_tasks.sh [--against BASE] MODEL...
#   environment: CWCL (build/release/cwcl), CORPUS (runs/corpus),
#                LABELS (data/slurp/intent_labels.tsv), PRECISION (fp32, or bf16),
#                KEEP_SILENCE=1: MODEL reads the clips untrimmed (--keep-silence);
#                with --against MODEL itself, the paired effect of trimming
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cwcl=${CWCL:-$here/build/release/cwcl}
corpus=${CORPUS:-runs/corpus}
labels=${LABELS:-$here/data/slurp/intent_labels.tsv}
precision=${PRECISION:-fp32}
silence=()
[[ ${KEEP_SILENCE:-0} == 1 ]] && silence=(--keep-silence)
against=()
if [[ ${1:-} == --against ]]; then against=(--against "$2"); shift 2; fi
[[ $# -gt 0 ]] || { echo "usage: $0 [--against BASE] MODEL..." >&2; exit 2; }

# name | manifest | label field | labels file
tasks=(
  "devel|$corpus/devel/manifest.jsonl|intent|$labels"
  "slurp-test|$corpus/slurp_test/manifest.jsonl|intent|$labels"
  "kws-35|$corpus/kws_test/manifest.jsonl|keyword|"
  "real-words|$corpus/real_words/manifest.jsonl|word|"
  "real-letters|$corpus/real_letters/manifest.jsonl|letter|"
)
# SLURP devel in a Kokoro speaker held out of training (make kokoro-corpus), where built.
[[ -f $corpus/devel_kokoro/manifest.jsonl ]] &&
  tasks=("${tasks[0]}" "devel-kokoro|$corpus/devel_kokoro/manifest.jsonl|intent|$labels" "${tasks[@]:1}")
header="| model |"
rule="| --- |"
for t in "${tasks[@]}"; do
  header+=" ${t%%|*} |"
  rule+=" ---: |"
done
echo "$header"
echo "$rule"
for model in "$@"; do
  row="| $model |"
  for t in "${tasks[@]}"; do
    IFS='|' read -r name manifest field label_file <<<"$t"
    args=(eval speech --model "$model" --manifest "$manifest" --label-field "$field" --task "$name" --precision "$precision" "${against[@]}" "${silence[@]}")
    [[ -n $label_file ]] && args+=(--labels "$label_file")
    row+=" $("$cwcl" "${args[@]}" | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
cell = "%.1f (%.1f-%.1f, n=%d)" % (100 * r["top1"], 100 * r["top1_ci"][0], 100 * r["top1_ci"][1], r["n"])
if "difference" in r:
    lo, hi = r["difference_ci"]
    cell += "; %+.1f (%+.1f to %+.1f)" % (100 * r["difference"], 100 * lo, 100 * hi)
print(cell)
') |"
  done
  echo "$row"
done
