#!/usr/bin/env bash
# The GPU check rehearsed on the CPU (ctest label gpu_rehearsal, make
# test-gpu-rehearsal; a second build, so not part of make test): builds the
# carry pack, checks that it and the working tree fit the device tool's
# 64 MiB, then runs scripts/gpu_check.sh with DEVICE=cpu SIZE=small exactly
# as the device would (its own build from the bundle, every stage time-boxed)
# and checks that every stage passed and the report has each table.
#
#   tests/gpu_rehearsal.sh <cwcl binary> <work folder>
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cwcl=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
pack=$work/pack
"$root/scripts/gpu_pack.sh" "$cwcl" "$pack"
# What travels: the tracked and untracked-not-ignored files, and the pack.
tree=$(cd "$root" && git ls-files -co --exclude-standard -z | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s}')
packed=$(du -sb "$pack" | cut -f1)
total=$((tree + packed))
echo "gpu_rehearsal: tree $((tree / 1048576)) MiB + pack $((packed / 1048576)) MiB = $((total / 1048576)) MiB"
if ((total >= 64 * 1048576)); then
  echo "gpu_rehearsal: over the device tool's 64 MiB" >&2
  exit 1
fi
DEVICE=cpu SIZE=small PACK=$pack OUT=$work/out BUILD=$work/build CCACHE=ON JOBS=2 PYTHON=/usr/bin/python3 \
  "$root/scripts/gpu_check.sh"
for stage in build unit loss tower train; do
  grep -q "\"stage\": \"$stage\", \"rc\": 0," "$work/out/stages.jsonl" ||
    { echo "gpu_rehearsal: stage $stage did not pass:" >&2; cat "$work/out/stages.jsonl" "$work/out/logs.txt" >&2; exit 1; }
done
files=$(ls "$work/out" | wc -l)
((files <= 8)) || { echo "gpu_rehearsal: $files files in OUT; the device tool brings back 8" >&2; exit 1; }
for heading in "## Stages" "## Loss" "## Whisper tower" "## Trainings on the carried data" "Every stage passed."; do
  grep -q "$heading" "$work/out/report.md" || { echo "gpu_rehearsal: report.md lacks '$heading'" >&2; exit 1; }
done
grep -q '"run": "speech-resumed-on-cpu".*"resumed_at":' "$work/out/results.jsonl" ||
  { echo "gpu_rehearsal: the run did not resume on the CPU" >&2; exit 1; }
echo "gpu_rehearsal: passed ($work/out/report.md)"
