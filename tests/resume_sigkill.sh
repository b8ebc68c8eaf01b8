#!/bin/bash
# A training run killed with SIGKILL and resumed with --resume ends with the
# same weights (equal digests of every weight and buffer) as an uninterrupted
# run, and the same validations (results.jsonl) and best model (best.pt).
# usage: resume_sigkill.sh <cwcl> <source dir> <work dir>
set -euo pipefail
cwcl=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
cat > "$work/config.toml" <<TOML
[run]
steps = 400
batch_size = 16
checkpoint_every = 50
log_every = 10
eval_every = 100
threads = 1
[model]
tower = "image"
image_width = 4
[data]
train = "/usr/share/datasets/fashion-mnist"
limit = 1024
class_names = "$src/data/fashion-mnist/classes.tsv"
templates = "$src/data/fashion-mnist/templates.txt"
TOML
"$cwcl" train "$work/config.toml" --set run.out="$work/straight" > /dev/null 2>&1
"$cwcl" train "$work/config.toml" --set run.out="$work/killed" > /dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [ -e "$work/killed/checkpoints/step-00000150.pt" ] && break
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if [ -e "$work/killed/model.pt" ]; then
  echo "FAIL: the run finished before it could be killed" >&2
  exit 1
fi
echo "killed after $(ls "$work/killed/checkpoints")"
"$cwcl" train "$work/config.toml" --set run.out="$work/killed" --resume > "$work/resume.json" 2>&1
grep -o '"resumed_at":[0-9]*' "$work/resume.json"
digest() { "$cwcl" info --model "$1" | grep -o '"weights_digest":"[0-9a-f]*"'; }
a=$(digest "$work/straight") b=$(digest "$work/killed")
echo "uninterrupted $a; resumed $b"
if [ -z "$a" ] || [ "$a" != "$b" ]; then
  echo "FAIL: resumed weights differ from the uninterrupted run" >&2
  exit 1
fi
# metrics.jsonl of the resumed run has each logged step once.
if [ "$(wc -l < "$work/killed/metrics.jsonl")" != "$(wc -l < "$work/straight/metrics.jsonl")" ]; then
  echo "FAIL: metrics.jsonl has $(wc -l < "$work/killed/metrics.jsonl") lines, expected 40" >&2
  exit 1
fi
# Validations: the same lines, and the same best model.
cmp "$work/straight/results.jsonl" "$work/killed/results.jsonl" ||
  { echo "FAIL: results.jsonl differs after the resume" >&2; exit 1; }
[ "$(wc -l < "$work/straight/results.jsonl")" = 4 ] || { echo "FAIL: expected 4 validations" >&2; exit 1; }
a=$(digest "$work/straight/best.pt") b=$(digest "$work/killed/best.pt")
if [ -z "$a" ] || [ "$a" != "$b" ]; then
  echo "FAIL: best.pt differs after the resume ($a vs $b)" >&2
  exit 1
fi
echo "resume after SIGKILL: identical weights, validations and best model"
