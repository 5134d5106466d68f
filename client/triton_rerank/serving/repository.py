"""The Triton model repository: its layout and every ``config.pbtxt``, built from one place.

The repository holds two ensembles::

    reranker        ensemble: QUERY [1], DOCUMENTS [-1] (strings) -> SCORES [-1, 1], TOKENS [-1], SPANS [-1, 2]
    ├── tokenizer       Python backend: (query, document) pairs -> rows: input_ids, attention_mask,
    │                   token_type_ids, and per row num_tokens, row_document, row_span (a long
    │                   document is one row, truncated, or several windows: the long_documents parameter)
    ├── cross_encoder   ONNX Runtime (or PyTorch) backend, dynamic batching: ids -> logits [rows, 1]
    └── aggregator      Python backend: rows -> one score, token count and span per document, in input order

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
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_rerank import protocol

BERT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

# Files the export writes next to the configs, by model.
ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.pt"
OPENVINO_FILE = "model.xml"  # OpenVINO IR; its weights are model.bin beside it
TOKENIZER_CODE = Path(__file__).parent / "backends" / "tokenizer_model.py"
AGGREGATOR_CODE = Path(__file__).parent / "backends" / "aggregator_model.py"
RUNNER_CODE = Path(__file__).parent / "backends" / "runner_model.py"
# The wire contract, copied beside each Python backend's model.py under this name (they import it).
PROTOCOL_CODE = Path(protocol.__file__)
PROTOCOL_COPY = "rerank_protocol.py"

# Native backends in the official container, and the runner that stands in for them here.
_NATIVE = {
    "onnx": ("onnxruntime", ONNX_FILE),
    "torchscript": ("pytorch", TORCHSCRIPT_FILE),
    "openvino": ("openvino", OPENVINO_FILE),
}
GPU_ACCELERATORS = ("cuda", "tensorrt", "tensorrt-fp16")
RUNNER_FORMAT_PARAMETER = "runner_format"
RUNNER_FILE_PARAMETER = "runner_model_file"


@dataclass(frozen=True)
class Family:
    """One ensemble and its members: names, client-facing tensors, the model's output."""

    tokenizer: str
    model: str
    ensemble: str
    inputs: tuple[tuple[str, int], ...]  # client-facing string inputs: (name, dim)
    output: str  # client-facing output
    model_output: str  # the ONNX graph's output
    aggregator: str | None = None  # the step that folds rows back into documents (rerankers)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.tokenizer, self.model, self.ensemble) + ((self.aggregator,) if self.aggregator else ())


RERANK = Family(
    protocol.TOKENIZER,
    protocol.CROSS_ENCODER,
    protocol.RERANKER,
    ((protocol.QUERY, 1), (protocol.DOCUMENTS, -1)),
    protocol.SCORES,
    "logits",
    protocol.AGGREGATOR,
)
# The reranker's rows, from its tokenizer to its aggregator (tensor, dtype, dims), and what the
# aggregator makes of them for each document: the tokens the model read, the span that decided.
ROW_TENSORS = (
    (protocol.TOKEN_COUNT, mc.TYPE_INT64, [-1]),
    (protocol.ROW_DOCUMENT, mc.TYPE_INT64, [-1]),
    (protocol.ROW_SPAN, mc.TYPE_INT64, [-1, 2]),
)
DOCUMENT_OUTPUTS = ((protocol.TOKENS, mc.TYPE_INT64, [-1]), (protocol.SPANS, mc.TYPE_INT64, [-1, 2]))
EMBED = Family(
    protocol.EMBED_TOKENIZER,
    protocol.BI_ENCODER,
    protocol.EMBEDDER,
    ((protocol.TEXTS, -1),),
    protocol.EMBEDDINGS,
    "embeddings",
)
# An LLM reranker is served as a cross-encoder is: the same ensemble, its graph one score per row.
FAMILIES = {"cross-encoder": RERANK, "llm-reranker": RERANK, "bi-encoder": EMBED}

# The reranker's names, used throughout.
TOKENIZER, CROSS_ENCODER, RERANKER, AGGREGATOR = RERANK.names
ONNX_OUTPUT = RERANK.model_output
MODEL_NAMES = RERANK.names


def _flag(default, help_text: str, *, cli: bool = True):
    return field(default=default, metadata={"help": help_text, "cli": cli})


@dataclass(frozen=True, kw_only=True)
class RepositorySettings:
    """What the configs depend on. The defaults serve ``cross-encoder/ms-marco-MiniLM-L-6-v2``.

    Each field's help says what it does (``triton-rerank export --help`` shows it); fields that are
    not flags are taken from the exported model. Why the defaults are what they are, with the
    measurements, is in docs/performance.md.
    """

    kind: Literal["cross-encoder", "llm-reranker", "bi-encoder"] = _flag(
        "cross-encoder",
        "cross-encoder or llm-reranker (a causal LM scored by its 'yes' against its 'no', Qwen3-Reranker "
        "style): the reranker family; bi-encoder: the embedder family",
    )
    name: str = _flag(
        "",
        "the ensemble's name, for several models in one repository (default: reranker, or embedder); its "
        "members are then NAME_tokenizer and NAME_model",
    )
    dimension: int = _flag(1, "outputs per row: 1 for a cross-encoder, the embedding size otherwise", cli=False)
    model_format: Literal["onnx", "torchscript", "openvino"] = _flag(
        "onnx",
        "onnx for the onnxruntime backend, torchscript (model.pt) for the pytorch backend, openvino (model.xml) "
        "for the openvino backend: what --precision bf16 writes, and with --precision int8 NNCF's static int8",
    )
    bf16: bool = _flag(False, "an OpenVINO model computed in bf16 (--precision bf16)", cli=False)
    model_inputs: tuple[str, ...] = _flag(BERT_INPUTS, "the id tensors the model takes, in order", cli=False)
    max_length: int = _flag(512, "tokens per pair (or text), truncated longest-first", cli=False)
    reserved_tokens: int = _flag(
        0, "tokens a row spends besides its query and document (special tokens, a prompt); 0: unknown", cli=False
    )
    device: Literal["auto", "cpu", "gpu"] = _flag(
        "auto", "model instance group: auto lets Triton pick one instance per GPU when it sees GPUs, else CPU"
    )
    instances: int = _flag(1, "model instances per group")
    tokenizer_instances: int = _flag(
        1, "tokenizer (and aggregator) instances: Python processes that prepare requests side by side"
    )
    max_rows_per_request: int = _flag(
        128, "most documents (texts) one request may carry; also the model's max_batch_size"
    )
    dynamic_batching: bool = _flag(
        False,
        "let Triton's dynamic batcher merge queued requests of equal shape (rare: each request is "
        "padded to its own longest pair, and the batcher's thread spins)",
    )
    max_queue_delay_us: int = _flag(1000, "how long the dynamic batcher waits to fill a batch, in microseconds")
    intra_op_threads: int = _flag(0, "ONNX Runtime (or OpenVINO) threads per instance; 0: the runtime's default")
    runner_slice_rows: int | None = _flag(
        None,
        "rows per model call in the embedded server's runner on a CPU (none: 8; 0: the whole batch); "
        "int8 exports set 1, so that a score does not depend on its batch-mates",
    )
    runner_parallelism: Literal["operators", "slices"] | None = _flag(
        None,
        "how the runner's threads share a batch on a CPU: split each operator (operators, the default) "
        "or take whole slices each (slices, what int8 exports set)",
    )
    response_cache: bool = _flag(
        False, "let Triton answer a repeated request from its response cache (serve with --response-cache-mb)"
    )
    gpu_accelerator: Literal["cuda", "tensorrt", "tensorrt-fp16"] = _flag(
        "cuda",
        "how an ONNX model runs on a GPU: ONNX Runtime's CUDA or TensorRT provider (engines are built "
        "at load, which takes minutes)",
    )
    prompt_template: str = _flag(
        "",
        "an LLM reranker's prompt, with {instruction}, {query} and ending with {document} (default: the model card's)",
    )
    instruction: str = _flag(
        "", "an LLM reranker's default task line, which a request may change (default: the model card's)"
    )
    max_document_bytes: int = _flag(1 << 20, "largest document (or query) the tokenizer takes, in UTF-8 bytes")
    max_queue_size: int = _flag(
        0,
        "requests waiting per model beyond which Triton refuses at once; 0: no limit (any queue limit turns "
        "off Triton's batch prefetching)",
    )
    queue_timeout_s: float = _flag(0.0, "seconds a request may wait in a queue before Triton refuses it; 0: no limit")

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
        for name in (
            "dimension",
            "max_length",
            "instances",
            "tokenizer_instances",
            "max_rows_per_request",
            "max_document_bytes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.gpu_accelerator not in GPU_ACCELERATORS:
            raise ValueError(f"gpu_accelerator must be one of {GPU_ACCELERATORS}, got {self.gpu_accelerator!r}")
        if self.model_format == "openvino" and self.device == "gpu":
            raise ValueError("model_format openvino (bf16, int8) serves CPUs; on a GPU export fp16 instead")
        if self.bf16 and self.model_format != "openvino":
            raise ValueError("bf16 is computed by OpenVINO: model_format openvino")
        if self.gpu_accelerator != "cuda" and (self.model_format != "onnx" or self.device == "cpu"):
            raise ValueError(f"gpu_accelerator {self.gpu_accelerator!r} is for ONNX models on a GPU")
        taken = {name for family in FAMILIES.values() for name in family.names} - {FAMILIES[self.kind].ensemble}
        if self.name and (not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name) or self.name in taken):
            raise ValueError(
                f"name must be letters, digits, '_', '.' or '-' and not one of {sorted(taken)}, got {self.name!r}"
            )
        if self.kind != "bi-encoder" and self.dimension != 1:
            raise ValueError(f"a reranker outputs one score per pair, not {self.dimension}")
        if self.kind != "llm-reranker" and (self.prompt_template or self.instruction):
            raise ValueError("prompt_template and instruction are an LLM reranker's (kind llm-reranker)")

    @property
    def family(self) -> Family:
        """The three model names and the tensors: the kind's defaults, or those of ``name``."""
        family = FAMILIES[self.kind]
        if not self.name or self.name == family.ensemble:
            return family
        return dataclasses.replace(
            family,
            tokenizer=f"{self.name}_tokenizer",
            model=f"{self.name}_model",
            ensemble=self.name,
            aggregator=f"{self.name}_aggregator" if family.aggregator else None,
        )

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
        instance_group=[{"kind": mc.ModelInstanceGroup.KIND_CPU, "count": settings.tokenizer_instances}],
    )
    if family.aggregator:
        config.output.extend(mc.ModelOutput(**_tensor(*tensor)) for tensor in ROW_TENSORS)
    if policy := queue_policy(settings):  # a queue policy lives in dynamic_batching; max_batch_size 0: no batching
        config.dynamic_batching.default_queue_policy.CopyFrom(policy)
    # The request limits, enforced here with a clear message: rows per request (the model's
    # max_batch_size) and bytes per string.
    _parameters(
        config,
        max_length=settings.max_length,
        truncation="longest_first",
        **{protocol.MAX_ROWS_PER_REQUEST: settings.max_rows_per_request},
        max_document_bytes=settings.max_document_bytes,
    )
    if settings.prompt_template:
        _parameters(config, prompt_template=settings.prompt_template, instruction=settings.instruction)
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
        max_batch_size=settings.max_rows_per_request,
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
    if settings.model_format == "openvino":  # the openvino backend's own parameters
        _parameters(config, PERFORMANCE_HINT="LATENCY")
        if settings.bf16:  # without it, OpenVINO's default for the CPU (bf16 where it has the instructions)
            _parameters(config, HINT_BF16="YES")
        if settings.intra_op_threads:
            _parameters(config, INFERENCE_NUM_THREADS=settings.intra_op_threads)
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
    if family.aggregator:
        config.output.extend(mc.ModelOutput(**_tensor(*tensor)) for tensor in DOCUMENT_OUTPUTS)
    if settings.response_cache:
        config.response_cache.enable = True
    # What clients plan their requests by: the most rows (documents, texts) one request may hold,
    # and the tokens the model reads per row (a reranker's long documents become several rows).
    _parameters(
        config,
        **{protocol.MAX_ROWS_PER_REQUEST: settings.max_rows_per_request, protocol.MAX_LENGTH: settings.max_length},
    )
    if settings.reserved_tokens:
        _parameters(config, **{protocol.RESERVED_TOKENS: settings.reserved_tokens})
    steps = config.ensemble_scheduling.step
    steps.add(
        model_name=family.tokenizer,
        model_version=-1,
        input_map={name: name for name, _ in family.inputs},
        output_map={name: name for name in settings.model_inputs}
        | ({name: name for name, _, _ in ROW_TENSORS} if family.aggregator else {}),
    )
    steps.add(
        model_name=family.model,
        model_version=-1,
        input_map=dict(zip(inputs, settings.model_inputs, strict=True)),
        output_map={output: "row_scores" if family.aggregator else family.output},
    )
    if family.aggregator:
        steps.add(
            model_name=family.aggregator,
            model_version=-1,
            input_map={"ROW_SCORES": "row_scores"} | {name.upper(): name for name, _, _ in ROW_TENSORS},
            output_map={family.output: family.output} | {name: name for name, _, _ in DOCUMENT_OUTPUTS},
        )
    return config


def aggregator_config(settings: RepositorySettings) -> mc.ModelConfig:
    """The reranker's last step: rows in (in the order ``aggregator_model.fold`` takes them), one
    row per document out."""
    family = settings.family
    rows = [("ROW_SCORES", mc.TYPE_FP32, [-1, 1])] + [(name.upper(), dtype, dims) for name, dtype, dims in ROW_TENSORS]
    return mc.ModelConfig(
        name=family.aggregator,
        backend="python",
        max_batch_size=0,
        input=[_tensor(*tensor) for tensor in rows],
        output=[_tensor(family.output, mc.TYPE_FP32, [-1, 1])] + [_tensor(*tensor) for tensor in DOCUMENT_OUTPUTS],
        instance_group=[{"kind": mc.ModelInstanceGroup.KIND_CPU, "count": settings.tokenizer_instances}],
    )


def build_configs(settings: RepositorySettings) -> dict[str, mc.ModelConfig]:
    """Every config of the settings' family, by model name."""
    family = settings.family
    configs = {
        family.tokenizer: tokenizer_config(settings),
        family.model: model_config(settings),
        family.ensemble: ensemble_config(settings),
    }
    if family.aggregator:
        configs[family.aggregator] = aggregator_config(settings)
    return configs


def to_pbtxt(config: mc.ModelConfig) -> str:
    return text_format.MessageToString(config)


def load_config(path: Path) -> mc.ModelConfig:
    """Parse a ``config.pbtxt`` with Triton's schema; unknown fields raise ``ParseError``."""
    return text_format.Parse(Path(path).read_text(), mc.ModelConfig())


def write_configs(repository: Path, settings: RepositorySettings) -> None:
    """Write the family's ``config.pbtxt`` files, its Python models' code and version folders."""
    repository = Path(repository)
    family = settings.family
    for name, config in build_configs(settings).items():
        (repository / name / "1").mkdir(parents=True, exist_ok=True)
        (repository / name / "config.pbtxt").write_text(to_pbtxt(config))
    for name, source in python_models(family).items():
        for code, origin in (
            (repository / name / "1" / "model.py", source),
            (repository / name / "1" / PROTOCOL_COPY, PROTOCOL_CODE),
        ):
            code.unlink(missing_ok=True)  # the committed repository links it to its source
            shutil.copyfile(origin, code)
    (repository / family.ensemble / "1" / ".gitkeep").touch()


def python_models(family: Family) -> dict[str, Path]:
    """The family's Python-backend models and the one source each is copied from."""
    return {family.tokenizer: TOKENIZER_CODE} | ({family.aggregator: AGGREGATOR_CODE} if family.aggregator else {})


def weights_file(model_format: str) -> str:
    """The file a model of ``model_format`` is served from."""
    return _NATIVE[model_format][1]


def native_backend_format(config: mc.ModelConfig) -> str | None:
    """``onnx`` / ``torchscript`` / ``openvino`` for a model served by those native backends, else None."""
    for model_format, (backend, _) in _NATIVE.items():
        if config.backend == backend:
            return model_format
    return None


def python_runner_config(config: mc.ModelConfig) -> mc.ModelConfig:
    """The same model served by the Python-backend runner, for a Triton build without the
    native backend: only the backend changes; names, dims, batching and instances stay."""
    model_format = native_backend_format(config)
    if model_format is None:
        raise ValueError(f"model {config.name!r} uses backend {config.backend!r}, not onnxruntime, pytorch or openvino")
    runner = mc.ModelConfig()
    runner.CopyFrom(config)
    runner.backend = "python"
    runner.ClearField("platform")
    # The Python backend loads its code from default_model_filename; the runner finds the weights.
    runner.default_model_filename = "model.py"
    _parameters(runner, **{RUNNER_FORMAT_PARAMETER: model_format, RUNNER_FILE_PARAMETER: config.default_model_filename})
    return runner


def write_default_repository(repository: Path) -> None:
    """The configs of both families for the default models: the committed ``model_repository/``
    (weights are added by an export). Its tokenizer code is a link to the one source, the backend
    file, where an export writes a copy."""
    for settings in (DEFAULT_RERANKER_SETTINGS, DEFAULT_EMBEDDER_SETTINGS):
        write_configs(repository, settings)
        for name, source in python_models(settings.family).items():
            for code, origin in (("model.py", source), (PROTOCOL_COPY, PROTOCOL_CODE)):
                code = Path(repository) / name / "1" / code
                code.unlink()
                code.symlink_to(os.path.relpath(origin.resolve(), code.parent.resolve()))


if __name__ == "__main__":  # python -m triton_rerank.serving.repository model_repository
    import sys

    write_default_repository(Path(sys.argv[1] if len(sys.argv) > 1 else "model_repository"))
