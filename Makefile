# Set-up is part of every target: a fresh machine needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test bench-kodak bench-adaptive bench-zoo bench-idf bench-fmnist clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "nlc needs Python 3.11 or newer; this is " + sys.version.split()[0] + " (make PYTHON=python3.11 ...)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU wheel of torch first, or pip pulls gigabytes of CUDA packages: a local wheel where pip's
	# configuration has one (these machines), else PyTorch's CPU index; then its dependencies as usual.
	$(BIN)/python -m pip install -q --no-index --no-deps torch==2.13.0 2>/dev/null || \
	  $(BIN)/python -m pip install -q --no-deps torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

setup: $(STAMP)

## Compress and decompress the bundled sample photo with the default codec.
demo: $(STAMP)
	$(BIN)/python -m nlc.demo

## The test suite (what .ci/run calls): lint (ruff: unused names, import order), types (mypy on the API
## core, pyproject's [tool.mypy]), then pytest.
test: $(STAMP)
	$(BIN)/python -m ruff check nlc tests bench scripts
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest

## The default codec's Kodak benchmark committed in bench/results (about 13 minutes on 2 cores).
bench-kodak: $(STAMP)
	$(BIN)/nlc bench --data ../shared/data/kodak --json bench/results/kodak-pixelcnnpp-adaptive-v4.json

## The adaptive stage's ablation on photos-val crops (about 15 minutes on 2 cores).
bench-adaptive: $(STAMP)
	$(BIN)/python bench/adaptive.py --data ../shared/data/photos-val --json bench/results/adaptive-ablation-photos-val.json

## The other autoregressive models of the zoo on Kodak (10-20 minutes each on 2 cores).
ZOO_CODECS := pixelcnnpp-exact pixelcnnpp pixelcnn gated-pixelcnn pixelsnail pixelcnnpp-wide pixelcnnpp-wide-exact
bench-zoo: $(STAMP)
	for m in $(ZOO_CODECS); do \
	  $(BIN)/nlc bench --model $$m --data ../shared/data/kodak --json bench/results/kodak-$$m.json || exit 1; \
	done

## The integer discrete flow on Kodak (a few minutes on 2 cores).
bench-idf: $(STAMP)
	$(BIN)/nlc bench --model idf --data ../shared/data/kodak --json bench/results/kodak-idf.json

## The bits-back codecs on the 10k Fashion-MNIST test images (a few minutes each on 2 cores).
FMNIST_CODECS := vae-fmnist bitswap-fmnist vrnn-fmnist vae-fmnist-binary made-fmnist-binary made-fmnist \
  lstm-fmnist-binary lstm-fmnist wavenet-fmnist-binary wavenet-fmnist maf-fmnist vae-iaf-fmnist
bench-fmnist: $(STAMP)
	for m in $(FMNIST_CODECS); do \
	  $(BIN)/nlc bench --model $$m --data ../shared/data/fashion-mnist --json bench/results/fashion-mnist-$$m.json || exit 1; \
	done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
