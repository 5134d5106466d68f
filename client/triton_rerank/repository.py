"""The Triton model repository: its layout and every ``config.pbtxt``, built from one place.

The repository holds two ensembles of three models each::

    reranker        ensemble: QUERY [1], DOCUMENTS [-1] (strings) -> SCORES [-1, 1]
    ├── tokenizer       Python backend: (query, document) pairs -> input_ids, attention_mask, token_type_ids
    └── cross_encoder   ONNX Runtime (or PyTorch) backend, dynamic batching: ids -> logits [batch, 1]

    embedder        ensemble: TEXTS [-1] (strings) -> EMBEDDINGS [-1, D]
    ├── embed_tokenizer Python backend: texts -> the same id tensors
    └── bi_encoder      ONNX Runtime backend, dynamic batching: ids -> embeddings [batch, D]
                        (mean pooling and L2 normalisation are inside the ONNX graph)

Configs are built here as Triton's own protobuf messages (``model_config_pb2.ModelConfig``), so a
field Triton does not know cannot be written. The export writes them; the embedded server derives
its Python-backend stand-in for the ONNX / TorchScript models from the same configs
(``python_runner_config``), so there is no second, hand-kept copy.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

BERT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

# Files the export writes next to the configs, by model.
ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.pt"
TOKENIZER_CODE = Path(__file__).parent / "backends" / "tokenizer_model.py"
RUNNER_CODE = Path(__file__).parent / "backends" / "runner_model.py"

# Native backends in the official container, and the runner that stands in for them here.
_NATIVE = {"onnx": ("onnxruntime", ONNX_FILE), "torchscript": ("pytorch", TORCHSCRIPT_FILE)}
GPU_ACCELERATORS = ("cuda", "tensorrt", "tensorrt-fp16")
RUNNER_FORMAT_PARAMETER = "runner_format"
RUNNER_FILE_PARAMETER = "runner_model_file"


@dataclass(frozen=True)
class Family:
    """One ensemble and its two members: names, client-facing tensors, the model's output."""

    tokenizer: str
    model: str
    ensemble: str
    inputs: tuple[tuple[str, int], ...]  # client-facing string inputs: (name, dim)
    output: str  # client-facing output
    model_output: str  # the ONNX graph's output

    @property
    def names(self) -> tuple[str, str, str]:
        return self.tokenizer, self.model, self.ensemble


RERANK = Family("tokenizer", "cross_encoder", "reranker", (("QUERY", 1), ("DOCUMENTS", -1)), "SCORES", "logits")
EMBED = Family("embed_tokenizer", "bi_encoder", "embedder", (("TEXTS", -1),), "EMBEDDINGS", "embeddings")
FAMILIES = {"cross-encoder": RERANK, "bi-encoder": EMBED}

# The reranker's names, used throughout.
TOKENIZER, CROSS_ENCODER, RERANKER = RERANK.names
ONNX_OUTPUT = RERANK.model_output
MODEL_NAMES = RERANK.names


@dataclass(frozen=True, kw_only=True)
class RepositorySettings:
    """What the configs depend on. The defaults serve ``cross-encoder/ms-marco-MiniLM-L-6-v2``.

    Attributes:
        kind: ``cross-encoder`` (the reranker family) or ``bi-encoder`` (the embedder family).
        dimension: Outputs per row: 1 for a cross-encoder, the embedding size for a bi-encoder.
        model_format: ``onnx`` (onnxruntime backend) or ``torchscript`` (pytorch backend).
        model_inputs: The id tensors the model takes, in order; BERT-style models take all three,
            RoBERTa-style models no ``token_type_ids``.
        max_length: Tokens per pair (or text); longer ones are truncated longest-first, as
            sentence-transformers does.
        device: ``auto`` leaves the instance group to Triton (one instance per GPU when it sees
            GPUs, else CPU); ``cpu`` / ``gpu`` declare KIND_CPU / KIND_GPU groups.
        instances: Instances of the model per group.
        max_batch_size: Most rows one model execution takes; it is also the most documents
            (texts) one ensemble request may carry.
        dynamic_batching: Let Triton's dynamic batcher merge queued requests into one execution.
            Off by default: it merges only requests of equal shape, and each request arrives padded
            to its own longest pair, so merges are rare, while Triton 2.51's batcher thread spins
            on a batch that could still grow. Measured on 2 cores, N = 10, 4 clients: int8 207 vs
            251 pairs/s, fp32 74 vs 107, the server burning 46 ms of CPU per request; no
            difference at N = 100. A queue limit turns the batcher on (the policy lives in it).
        max_queue_delay_us: How long the dynamic batcher waits to fill a batch.
        intra_op_threads: ONNX Runtime threads per instance (0: ONNX Runtime's default).
        runner_slice_rows: Rows per model call in the embedded server's Python runner on a CPU
            (``None``: its default of 8; 0: the whole batch, as the native backend runs it). The
            export sets 1 for int8, whose scores then do not depend on other rows of the batch.
        runner_parallelism: How the runner's ONNX Runtime threads share a batch on a CPU:
            ``operators`` (``None``; ONNX Runtime splits each operator of a slice between them) or
            ``slices`` (each thread runs whole slices through a one-thread session). The export
            sets ``slices`` for int8: one row's operators are too small to split between cores.
        response_cache: Let Triton answer a repeated request (same query, same documents) from
            its response cache; the server must be started with a cache (``--cache-config``).
        max_document_bytes: The largest document (text, query) the tokenizer takes, in UTF-8 bytes;
            a larger one is refused with its index and size. Only ``max_length`` tokens of it are
            read anyway; the limit keeps one request from tying up the tokenizer.
        max_queue_size: Most requests waiting for the tokenizer and for the model; beyond it
            Triton refuses at once ("exceeds maximum queue size"), which the client reports as
            ``ServerOverloadedError``. 0 (the default): no limit.
        queue_timeout_s: A request waiting longer than this for the tokenizer or the model is
            refused the same way. 0 (the default): no limit; a gRPC client's timeout still cancels it.
            Either limit costs throughput: Triton 2.51 then stops preparing the next batch while
            one executes (``support_prefetching``), and a queued request waits for the next
            arrival or a timer. Measured on 2 cores, int8, N = 100, 16 clients: 225 vs 265 pairs/s.
        gpu_accelerator: How an ONNX model runs on a GPU: ``cuda`` (ONNX Runtime's CUDA execution
            provider), ``tensorrt`` or ``tensorrt-fp16`` (its TensorRT provider, at fp32 or fp16;
            engines are built at load, which takes minutes for a new shape profile).
    """

    kind: Literal["cross-encoder", "bi-encoder"] = "cross-encoder"
    dimension: int = 1
    model_format: Literal["onnx", "torchscript"] = "onnx"
    model_inputs: tuple[str, ...] = BERT_INPUTS
    max_length: int = 512
    device: Literal["auto", "cpu", "gpu"] = "auto"
    instances: int = 1
    max_batch_size: int = 128
    dynamic_batching: bool = False
    max_queue_delay_us: int = 1000
    intra_op_threads: int = 0
    runner_slice_rows: int | None = None
    runner_parallelism: Literal["operators", "slices"] | None = None
    response_cache: bool = False
    gpu_accelerator: Literal["cuda", "tensorrt", "tensorrt-fp16"] = "cuda"
    max_document_bytes: int = 1 << 20
    max_queue_size: int = 0
    queue_timeout_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAMILIES:
            raise ValueError(f"kind must be one of {sorted(FAMILIES)}, got {self.kind!r}")
        if self.model_format not in _NATIVE:
            raise ValueError(f"model_format must be one of {sorted(_NATIVE)}, got {self.model_format!r}")
        if self.device not in ("auto", "cpu", "gpu"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'gpu', got {self.device!r}")
        unknown = set(self.model_inputs) - set(BERT_INPUTS)
        if unknown or self.model_inputs[:2] != BERT_INPUTS[:2]:
            raise ValueError(f"model_inputs must start with input_ids, attention_mask; got {self.model_inputs}")
        if self.runner_slice_rows is not None and self.runner_slice_rows < 0:
            raise ValueError(f"runner_slice_rows must be >= 0 or None, got {self.runner_slice_rows}")
        if not self.queue_timeout_s >= 0:
            raise ValueError(f"queue_timeout_s must be >= 0 (0: no limit), got {self.queue_timeout_s}")
        if self.max_queue_size < 0:
            raise ValueError(f"max_queue_size must be >= 0 (0: no limit), got {self.max_queue_size}")
        if self.runner_parallelism not in (None, "operators", "slices"):
            raise ValueError(f"runner_parallelism must be 'operators' or 'slices', got {self.runner_parallelism!r}")
        for name in ("dimension", "max_length", "instances", "max_batch_size", "max_document_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.gpu_accelerator not in GPU_ACCELERATORS:
            raise ValueError(f"gpu_accelerator must be one of {GPU_ACCELERATORS}, got {self.gpu_accelerator!r}")
        if self.gpu_accelerator != "cuda" and (self.model_format != "onnx" or self.device == "cpu"):
            raise ValueError(f"gpu_accelerator {self.gpu_accelerator!r} is for ONNX models on a GPU")
        if self.kind == "cross-encoder" and self.dimension != 1:
            raise ValueError(f"a cross-encoder outputs one score per pair, not {self.dimension}")

    @property
    def family(self) -> Family:
        return FAMILIES[self.kind]

    def replace(self, **changes) -> RepositorySettings:
        return dataclasses.replace(self, **changes)


# The default repository: both families, for the default models.
DEFAULT_RERANKER_SETTINGS = RepositorySettings()
DEFAULT_EMBEDDER_SETTINGS = RepositorySettings(kind="bi-encoder", dimension=384, max_length=256)


def _tensor(name: str, data_type: int, dims: list[int]) -> dict:
    return {"name": name, "data_type": data_type, "dims": dims}


def _parameters(config: mc.ModelConfig, **values: object) -> None:
    for key, value in values.items():
        config.parameters[key].string_value = str(value)


def model_tensor_names(settings: RepositorySettings) -> tuple[list[str], str]:
    """The model's input names and output name, as its backend requires them."""
    if settings.model_format == "torchscript":  # the pytorch backend's INPUT__i / OUTPUT__i names
        return [f"INPUT__{i}" for i in range(len(settings.model_inputs))], "OUTPUT__0"
    return list(settings.model_inputs), settings.family.model_output


def _string_inputs(family: Family) -> list[dict]:
    return [_tensor(name, mc.TYPE_STRING, [dim]) for name, dim in family.inputs]


def tokenizer_config(settings: RepositorySettings) -> mc.ModelConfig:
    family = settings.family
    config = mc.ModelConfig(
        name=family.tokenizer,
        backend="python",
        max_batch_size=0,
        input=_string_inputs(family),
        output=[_tensor(name, mc.TYPE_INT64, [-1, -1]) for name in settings.model_inputs],
        instance_group=[{"kind": mc.ModelInstanceGroup.KIND_CPU, "count": 1}],
    )
    if policy := queue_policy(settings):  # a queue policy lives in dynamic_batching; max_batch_size 0: no batching
        config.dynamic_batching.default_queue_policy.CopyFrom(policy)
    # The request limits, enforced here with a clear message: rows per request as the model's
    # max_batch_size allows, and bytes per string.
    _parameters(
        config,
        max_length=settings.max_length,
        truncation="longest_first",
        max_rows=settings.max_batch_size,
        max_bytes=settings.max_document_bytes,
    )
    return config


def queue_policy(settings: RepositorySettings) -> mc.ModelQueuePolicy | None:
    """With limits set, overload answers at once with an error ("exceeds maximum queue size")
    instead of waiting without bound. On the tokenizer too: it is the ensemble's front door, where
    requests queue first. None without limits: any policy turns off Triton's batch prefetching."""
    if not (settings.queue_timeout_s or settings.max_queue_size):
        return None
    return mc.ModelQueuePolicy(
        timeout_action=mc.ModelQueuePolicy.REJECT,
        default_timeout_microseconds=int(settings.queue_timeout_s * 1e6),
        max_queue_size=settings.max_queue_size,
    )


def model_config(settings: RepositorySettings) -> mc.ModelConfig:
    """The ONNX / TorchScript model: batched rows of ids in, ``dimension`` floats per row out."""
    backend, filename = _NATIVE[settings.model_format]
    inputs, output = model_tensor_names(settings)
    config = mc.ModelConfig(
        name=settings.family.model,
        backend=backend,
        default_model_filename=filename,
        max_batch_size=settings.max_batch_size,
        input=[_tensor(name, mc.TYPE_INT64, [-1]) for name in inputs],
        output=[_tensor(output, mc.TYPE_FP32, [settings.dimension])],
    )
    policy = queue_policy(settings)
    if settings.dynamic_batching or policy:
        config.dynamic_batching.SetInParent()  # present even with every field at its default
        config.dynamic_batching.max_queue_delay_microseconds = settings.max_queue_delay_us
    if policy:
        config.dynamic_batching.default_queue_policy.CopyFrom(policy)
    if settings.device != "auto":
        kind = mc.ModelInstanceGroup.KIND_GPU if settings.device == "gpu" else mc.ModelInstanceGroup.KIND_CPU
        config.instance_group.add(kind=kind, count=settings.instances)
    if settings.gpu_accelerator.startswith("tensorrt"):  # the onnxruntime backend's TensorRT provider
        config.optimization.execution_accelerators.gpu_execution_accelerator.add(
            name="tensorrt",
            parameters={
                "precision_mode": "FP16" if settings.gpu_accelerator == "tensorrt-fp16" else "FP32",
                "max_workspace_size_bytes": str(1 << 30),
            },
        )
    if settings.model_format == "onnx" and settings.intra_op_threads:
        _parameters(config, intra_op_thread_count=settings.intra_op_threads)
    if settings.runner_slice_rows is not None:
        _parameters(config, runner_slice_rows=settings.runner_slice_rows)
    if settings.runner_parallelism is not None:
        _parameters(config, runner_parallelism=settings.runner_parallelism)
    return config


def ensemble_config(settings: RepositorySettings) -> mc.ModelConfig:
    family = settings.family
    inputs, output = model_tensor_names(settings)
    config = mc.ModelConfig(
        name=family.ensemble,
        platform="ensemble",
        max_batch_size=0,
        input=_string_inputs(family),
        output=[_tensor(family.output, mc.TYPE_FP32, [-1, settings.dimension])],
    )
    if settings.response_cache:
        config.response_cache.enable = True
    # What clients read to split their requests: the most rows (documents, texts) one request may hold.
    _parameters(config, max_rows_per_request=settings.max_batch_size)
    steps = config.ensemble_scheduling.step
    steps.add(
        model_name=family.tokenizer,
        model_version=-1,
        input_map={name: name for name, _ in family.inputs},
        output_map={name: name for name in settings.model_inputs},
    )
    steps.add(
        model_name=family.model,
        model_version=-1,
        input_map=dict(zip(inputs, settings.model_inputs, strict=True)),
        output_map={output: family.output},
    )
    return config


def build_configs(settings: RepositorySettings) -> dict[str, mc.ModelConfig]:
    """Every config of the settings' family, by model name."""
    family = settings.family
    return {
        family.tokenizer: tokenizer_config(settings),
        family.model: model_config(settings),
        family.ensemble: ensemble_config(settings),
    }


def to_pbtxt(config: mc.ModelConfig) -> str:
    return text_format.MessageToString(config)


def load_config(path: Path) -> mc.ModelConfig:
    """Parse a ``config.pbtxt`` with Triton's schema; unknown fields raise ``ParseError``."""
    return text_format.Parse(Path(path).read_text(), mc.ModelConfig())


def write_configs(repository: Path, settings: RepositorySettings) -> None:
    """Write the family's ``config.pbtxt`` files, its tokenizer's model code and version folders."""
    repository = Path(repository)
    family = settings.family
    for name, config in build_configs(settings).items():
        (repository / name / "1").mkdir(parents=True, exist_ok=True)
        (repository / name / "config.pbtxt").write_text(to_pbtxt(config))
    shutil.copyfile(TOKENIZER_CODE, repository / family.tokenizer / "1" / "model.py")
    (repository / family.ensemble / "1" / ".gitkeep").touch()


def native_backend_format(config: mc.ModelConfig) -> str | None:
    """``onnx`` / ``torchscript`` for a model served by those native backends, else None."""
    for model_format, (backend, _) in _NATIVE.items():
        if config.backend == backend:
            return model_format
    return None


def python_runner_config(config: mc.ModelConfig) -> mc.ModelConfig:
    """The same model served by the Python-backend runner, for a Triton build without the
    native backend: only the backend changes; names, dims, batching and instances stay."""
    model_format = native_backend_format(config)
    if model_format is None:
        raise ValueError(f"model {config.name!r} uses backend {config.backend!r}, not onnxruntime or pytorch")
    runner = mc.ModelConfig()
    runner.CopyFrom(config)
    runner.backend = "python"
    runner.ClearField("platform")
    # The Python backend loads its code from default_model_filename; the runner finds the weights.
    runner.default_model_filename = "model.py"
    _parameters(runner, **{RUNNER_FORMAT_PARAMETER: model_format, RUNNER_FILE_PARAMETER: config.default_model_filename})
    return runner
