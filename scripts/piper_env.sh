#!/usr/bin/env bash
# The synthesis environment for scripts/voice_corpus.py: a virtual
# environment with piper-tts (GPL-3.0-or-later; it bundles its espeak-ng
# phonemiser) and onnxruntime from PyPI, pinned, plus the joe voice
# (scripts/fetch_models.sh piper-joe). Used at corpus-build time only: cwcl
# itself never runs Python. Idempotent.
#
#   scripts/piper_env.sh        # prints the environment's python
set -euo pipefail
venv=${CWCL_PIPER_VENV:-$HOME/.cache/cwcl/piper-venv}
here=$(cd "$(dirname "$0")" && pwd)
"$here/fetch_models.sh" piper-joe >&2
if [[ ! -f $venv/.complete ]]; then
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --only-binary=:all: piper-tts==1.8.0 onnxruntime==1.32.0 >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
