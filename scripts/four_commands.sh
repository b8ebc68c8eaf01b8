#!/usr/bin/env bash
# The four-command check: four everyday commands, each spoken by every flite
# test voice (none of them heard in training), classified zero-shot against
# the four intents' label texts (data/slurp/intent_labels.tsv) by a demo's CL
# and CWCL speech towers. Prints a Markdown table: per command, how many of
# the voices each tower gets right.
#
#   scripts/four_commands.sh [demo dir (runs/demo)] [cwcl (build/release/cwcl)]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
demo=${1:-runs/demo}
cwcl=${2:-$here/build/release/cwcl}
voices=(kal16 slt rms awb)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

commands=(
  "alarm_set:wake me up at seven tomorrow"
  "weather_query:what is the weather like in paris"
  "play_music:play some jazz music"
  "iot_hue_lightoff:turn off the lights in the kitchen"
)
for towers in speech-cl speech-cwcl; do
  [ -e "$demo/$towers/model.pt" ] || { echo "no $demo/$towers/model.pt: run cwcl demo first" >&2; exit 2; }
done

# One manifest line per (command, voice); the voice is fixed per line. The
# label TSV has a header line, as data/slurp/intent_labels.tsv does.
: > "$work/commands.jsonl"
head -n 1 "$here/data/slurp/intent_labels.tsv" > "$work/labels.tsv"
for c in "${commands[@]}"; do
  intent=${c%%:*} text=${c#*:}
  grep -q "^$intent	" "$here/data/slurp/intent_labels.tsv" || { echo "no label text for $intent" >&2; exit 2; }
  grep "^$intent	" "$here/data/slurp/intent_labels.tsv" >> "$work/labels.tsv"
  for v in "${voices[@]}"; do
    printf '{"id": "%s-%s", "text": "%s", "voice": "flite:%s"}\n' "$intent" "$v" "$text" "$v" >> "$work/commands.jsonl"
  done
done
"$cwcl" synth "$work/commands.jsonl" -o "$work/speech" > /dev/null 2>&1

declare -A right missed
for towers in speech-cl speech-cwcl; do
  while IFS= read -r line; do
    id=$(basename "$(echo "$line" | grep -o '"input":"[^"]*"' | cut -d'"' -f4)" .wav)
    got=$(echo "$line" | grep -o '"label":"[^"]*"' | cut -d'"' -f4)
    intent=${id%-*}
    if [ "$got" = "$intent" ]; then
      right[$towers,$intent]=$(( ${right[$towers,$intent]:-0} + 1 ))
    else
      missed[$towers,$intent]+="${missed[$towers,$intent]:+, }$got"
    fi
  done < <("$cwcl" zeroshot --model "$demo/$towers" --labels "$work/labels.tsv" "$work"/speech/audio/*.wav)
done

echo "| command (flite voices ${voices[*]}) | intent | CL right | CWCL right | wrong answers (CL; CWCL) |"
echo "| --- | --- | ---: | ---: | --- |"
total_cl=0 total_cwcl=0
for c in "${commands[@]}"; do
  intent=${c%%:*} text=${c#*:}
  cl=${right[speech-cl,$intent]:-0} cw=${right[speech-cwcl,$intent]:-0}
  total_cl=$(( total_cl + cl )) total_cwcl=$(( total_cwcl + cw ))
  echo "| $text | $intent | $cl/${#voices[@]} | $cw/${#voices[@]} | ${missed[speech-cl,$intent]:--}; ${missed[speech-cwcl,$intent]:--} |"
done
n=$(( ${#commands[@]} * ${#voices[@]} ))
echo "| all | | $total_cl/$n | $total_cwcl/$n | |"
# The text bound: the written commands through the frozen text tower.
for c in "${commands[@]}"; do
  printf '{"sentence": "%s", "intent": "%s"}\n' "${c#*:}" "${c%%:*}"
done > "$work/texts.jsonl"
bound=$("$cwcl" eval text-intent --labels "$work/labels.tsv" --data "$work/texts.jsonl" |
  grep -o '"top1":[0-9.]*' | cut -d: -f2)
echo
echo "Text bound (the written commands through MiniLM, same labels): top-1 $bound"

