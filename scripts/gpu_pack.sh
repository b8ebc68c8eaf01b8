#!/usr/bin/env bash
# Builds the carry pack of the GPU check (docs/gpu.md, scripts/gpu_check.sh):
# everything the check needs on a GPU machine that the working tree lacks,
# within the device tool's 64 MiB together with the tree.
#
#   bundle/   the small Debian libraries the trainer links besides torch
#             (scripts/gpu_bundle.sh)
#   models/whisper-tiny.en-ct2/model.bin
#             Whisper tiny.en's encoder alone (cwcl whisper-encoder): what
#             cwcl reads of it, a third of the file
#   speech/   a few hundred synthesised utterances as cached Whisper features
#             (no audio), their manifest, and their texts' MiniLM embeddings
#             as a store whose ids are the texts (text.tower = "store": MiniLM
#             need not travel)
#   image/    a Fashion-MNIST subset (IDX files) and its captions' embeddings
#
#   scripts/gpu_pack.sh [cwcl binary (build/release/cwcl)] [pack (build/gpu-pack)] [utterances (384)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cwcl=${1:-$root/build/release/cwcl}
pack=${2:-$root/build/gpu-pack}
utterances=${3:-384}
[[ -x "$cwcl" ]] || { echo "gpu_pack: $cwcl is not built (make build)" >&2; exit 2; }
models=${CWCL_MODELS:-$HOME/.cache/cwcl/models}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$pack" && mkdir -p "$pack/models" "$pack/speech" "$pack/image"

"$root/scripts/gpu_bundle.sh" "$pack/bundle"
"$cwcl" whisper-encoder "$models/whisper-tiny.en-ct2" -o "$pack/models/whisper-tiny.en-ct2"

# Speech: SLURP training text spoken by two espeak-ng voices; only the
# features and the manifest travel.
head -n "$utterances" "$root/data/slurp/lm.txt" > "$work/texts.txt"
"$cwcl" synth "$work/texts.txt" -o "$work/speech" --voices espeak:en-us,espeak:en > /dev/null
"$cwcl" features "$work/speech/manifest.jsonl" -o "$work/speech/train.whisper.features.safetensors" \
  --front-end whisper > /dev/null
/usr/bin/python3 - "$work/speech/manifest.jsonl" "$pack/speech/train.jsonl" "$work/speech_texts.jsonl" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
with open(sys.argv[2], "w") as m, open(sys.argv[3], "w") as t:
    for l in lines:
        m.write(json.dumps({"id": l["id"], "audio": "absent/" + l["audio"], "text": l["text"]}) + "\n")
    for text in sorted({l["text"] for l in lines}):
        t.write(json.dumps({"id": text, "text": text}) + "\n")
EOF
# The name training looks for (data.trim_silence: trimmed clips, as cwcl features writes them).
cp "$work/speech/train.whisper.features.safetensors" "$pack/speech/train.jsonl.whisper.trimmed.features.safetensors"
"$cwcl" --threads 2 embed "$work/speech_texts.jsonl" -o "$pack/speech/texts.safetensors" > /dev/null

# Images: the first 2,048 training images of the seen classes (and every
# test image's labels file is not needed: the check trains only), and every
# caption of configs/image.toml's classes, embedded.
/usr/bin/python3 - "$root/data/fashion-mnist" /usr/share/datasets/fashion-mnist "$pack/image" "$work/captions.jsonl" <<'EOF'
import gzip, json, struct, sys
data, idx, out, captions = sys.argv[1:]
def read(name):
    with gzip.open(f"{idx}/{name}.gz") as f:
        return f.read()
images, labels = read("train-images-idx3-ubyte"), read("train-labels-idx1-ubyte")
n = struct.unpack(">I", images[4:8])[0]
keep = [i for i in range(n) if labels[8 + i] < 7][:2048]
with open(f"{out}/train-images-idx3-ubyte", "wb") as f:
    f.write(struct.pack(">IIII", 2051, len(keep), 28, 28))
    for i in keep:
        f.write(images[16 + 784 * i:16 + 784 * (i + 1)])
with open(f"{out}/train-labels-idx1-ubyte", "wb") as f:
    f.write(struct.pack(">II", 2049, len(keep)) + bytes(labels[8 + i] for i in keep))
templates = [l.rstrip("\n") for l in open(f"{data}/templates.txt") if l.strip() and not l.startswith("#")]
texts = set()
for line in open(f"{data}/classes.tsv"):
    if line.startswith("#") or not line.strip():
        continue
    _, name, *rest = line.rstrip("\n").split("\t")
    for word in [name] + (rest[0].split(",") if rest and rest[0] else []):
        for t in templates:
            texts.add(t.replace("{}", word, 1))
with open(captions, "w") as f:
    for t in sorted(texts):
        f.write(json.dumps({"id": t, "text": t}) + "\n")
EOF
"$cwcl" --threads 2 embed "$work/captions.jsonl" -o "$pack/image/texts.safetensors" > /dev/null

echo "gpu_pack: $(du -sh "$pack" | cut -f1) in $pack"
