"""What a Triton model repository of this project holds: its two families of models (names,
client-facing tensors), the files beside the configs, and the settings the configs are built from
(``RepositorySettings``). ``repository`` builds the configs and writes the files.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tritonclient.grpc import model_config_pb2 as mc

import triton_rerank.protocol as protocol

BERT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

# Files the export writes next to the configs, by model.
ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.pt"
OPENVINO_FILE = "model.xml"  # OpenVINO IR; its weights are model.bin beside it
# The Python-backend code that runs inside Triton (triton_rerank/backends), copied beside the configs.
BACKENDS = Path(__file__).parents[1] / "backends"
TOKENIZER_CODE = BACKENDS / "tokenizer_model.py"
AGGREGATOR_CODE = BACKENDS / "aggregator_model.py"
RUNNER_CODE = BACKENDS / "runner_model.py"
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
MODEL_NAMES = RERANK.names


# Requests that may wait per model: a client's 4 in flight for each of 32 callers, or the API's row budget
# in requests of 128 rows, eight times over; more is refused at once instead of queued without bound.
DEFAULT_MAX_QUEUE_SIZE = 128


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
        DEFAULT_MAX_QUEUE_SIZE,
        "requests waiting per model beyond which Triton refuses at once (the client's ServerOverloadedError, the "
        "API's 429), so that overload never queues without bound; 0: no limit (Triton then prefetches batches, "
        "see docs/performance.md)",
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


def python_models(family: Family) -> dict[str, Path]:
    """The family's Python-backend models and the one source each is copied from."""
    return {family.tokenizer: TOKENIZER_CODE} | ({family.aggregator: AGGREGATOR_CODE} if family.aggregator else {})


def weights_file(model_format: str) -> str:
    """The file a model of ``model_format`` is served from."""
    return _NATIVE[model_format][1]
