#!/usr/bin/env bash
# Gathers what a GPU machine needs to build cwcl's trainer besides torch,
# CMake and ninja (docs/gpu.md): Debian 12's packages of the small libraries,
# unpacked with dpkg -x into build/gpu-bundle/root (4 MB of packages, 15 MB
# unpacked). The device tool carries the folder (its limit is 64 MiB);
# scripts/build_gpu.sh builds there with it. Models do not fit: Whisper
# tiny.en's model.bin alone is 75 MB.
#
#   scripts/gpu_bundle.sh [folder]      default: build/gpu-bundle
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/gpu-bundle}
packages=(
  nlohmann-json3-dev libtomlplusplus-dev libcli11-dev libgtest-dev
  libutf8proc-dev libutf8proc2 libxxhash-dev libxxhash0
  libsndfile1-dev libsndfile1 libflac12 libogg0 libvorbis0a libvorbisenc2 libopus0 libmpg123-0 libmp3lame0
  libsamplerate0-dev libsamplerate0
  libgloo-dev            # headers only: c10d's ProcessGroupGloo.hpp includes them; torch holds Gloo itself
  libjemalloc-dev libjemalloc2
)
rm -rf "$out" && mkdir -p "$out/debs" "$out/root"
(cd "$out/debs" && apt-get download "${packages[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
for deb in "$out"/debs/*.deb; do dpkg -x "$deb" "$out/root"; done
rm -rf "$out/debs" "$out/root/usr/share/doc" "$out/root/usr/share/man"
echo "gpu_bundle: $(du -sh "$out" | cut -f1) in $out"
