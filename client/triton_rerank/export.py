"""Export a Hugging Face cross-encoder into a Triton model repository, and prove the export.

``export_cross_encoder`` writes ``cross_encoder/1/model.onnx`` (or ``model.pt``), the tokenizer
files into ``tokenizer/1/``, and every ``config.pbtxt``. Before anything is written it scores
sample pairs with the exported file and with sentence-transformers' ``CrossEncoder`` (PyTorch) and
raises ``ExportCheckError`` when they differ by more than the tolerance.

Needs the ``export`` extra (torch, transformers, sentence-transformers, onnx, onnxruntime).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from triton_rerank import repository as repo

try:
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForSequenceClassification
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError(f"exporting needs the 'export' extra: pip install 'triton-rerank[export]' ({err})") from err

log = logging.getLogger(__name__)

DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L-6-v2"
DEFAULT_TOLERANCE = 1e-4
ONNX_OPSET = 17
# ONNX Runtime's transformer fusions (Attention, SkipLayerNorm, ...) know these architectures.
_FUSABLE = {"bert"}

_LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 120)
SAMPLE_PAIRS = [
    ("what is the capital of france?", "Paris is the capital and largest city of France."),
    ("what is the capital of france?", "Berlin is the capital of Germany."),
    ("how do vaccines work", _LONG),  # longer than any max_length: truncated
    (_LONG, "a short document"),  # a query longer than max_length
    ("café naïve façade — 東京 🚀", "Unicode: émigré, Straße, 北京, emoji 😀👍"),
    ("an empty document", ""),
    ("a whitespace document", "   \t\n "),
]


class ExportError(RuntimeError):
    """The model cannot be exported as a reranker."""


class ExportCheckError(ExportError):
    """The exported file does not score like the PyTorch model."""


@dataclass(frozen=True)
class ExportReport:
    model: str
    repository: str
    model_format: str
    max_length: int
    model_inputs: list[str]
    activation: str
    max_abs_diff: float
    tolerance: float
    pairs_checked: int


class _LogitsOnly(torch.nn.Module):
    """Positional ids in, logits out: the signature both exporters need."""

    def __init__(self, model: torch.nn.Module, input_names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *ids: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.input_names, ids, strict=True))).logits


def export_cross_encoder(
    model: str = DEFAULT_MODEL,
    repository: Path | str = "model_repository",
    *,
    model_format: Literal["onnx", "torchscript"] = "onnx",
    optimize: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
    settings: repo.RepositorySettings | None = None,
) -> ExportReport:
    """Export ``model`` (hub id or local folder) into ``repository``; see the module docstring.

    Args:
        settings: Serving settings (device, batching, threads); the model-specific fields
            (format, inputs, max_length) are filled in from the model.
    """
    reference = CrossEncoder(model, device="cpu")
    tokenizer = reference.tokenizer
    if not tokenizer.is_fast:
        raise ExportError(f"{model}: the server needs a fast (Rust) tokenizer; {type(tokenizer).__name__} is not one")
    hf_model = AutoModelForSequenceClassification.from_pretrained(model, attn_implementation="eager").eval()
    if hf_model.config.num_labels != 1:
        raise ExportError(f"{model} has {hf_model.config.num_labels} labels; a reranker must output one score per pair")
    model_inputs = tuple(name for name in repo.BERT_INPUTS if name in tokenizer.model_input_names)
    settings = (settings or repo.RepositorySettings()).replace(
        model_format=model_format, model_inputs=model_inputs, max_length=reference.max_seq_length
    )
    trace_device = "cpu"
    if model_format == "torchscript":  # a trace is bound to the device it ran on
        if settings.device == "auto":
            settings = settings.replace(device="gpu" if torch.cuda.is_available() else "cpu")
        if settings.device == "gpu":
            if not torch.cuda.is_available():
                raise ExportError(
                    "a TorchScript trace runs only on the kind of device it was traced on: export with "
                    "--device gpu on a machine with a CUDA GPU, or use --format onnx"
                )
            trace_device = "cuda"
    activation = type(reference.activation_fn).__name__
    if activation != "Identity":
        log.warning(
            "sentence-transformers applies %s to %s's scores by default; the server returns raw logits: "
            "pass activation='sigmoid' to TritonRerankFunction for the same scores",
            activation,
            model,
        )

    repository = Path(repository)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=_existing_parent(repository)) as staging:
        staging = Path(staging)
        repo.write_configs(staging, settings)
        served_tokenizer = _save_tokenizer(tokenizer, staging / repo.TOKENIZER / "1", settings)
        weights = (
            staging / repo.CROSS_ENCODER / "1" / (repo.ONNX_FILE if model_format == "onnx" else repo.TORCHSCRIPT_FILE)
        )
        wrapper = _LogitsOnly(hf_model, model_inputs)
        example = _encode(served_tokenizer, SAMPLE_PAIRS[:2], settings)
        if model_format == "onnx":
            _export_onnx(wrapper, example, weights, settings, hf_model.config if optimize else None)
        else:
            _export_torchscript(wrapper.to(trace_device), example, weights, trace_device)

        expected = reference.predict(SAMPLE_PAIRS, activation_fn=torch.nn.Identity(), batch_size=len(SAMPLE_PAIRS))
        score = load_scorer(weights, trace_device)
        # Tokenized as the server will (tokenizer.json), scored once as one padded batch and once
        # pair by pair: a tokenization that differs from sentence-transformers', a shape frozen by
        # the exporter, or padding that leaks into scores all show up as a difference.
        batched = score(_encode(served_tokenizer, SAMPLE_PAIRS, settings))
        single = np.concatenate([score(_encode(served_tokenizer, [pair], settings)) for pair in SAMPLE_PAIRS])
        expected = np.asarray(expected, dtype=np.float64)
        max_abs_diff = float(max(np.max(np.abs(expected - batched)), np.max(np.abs(expected - single))))
        report = ExportReport(
            model=str(model),
            repository=str(repository),
            model_format=model_format,
            max_length=settings.max_length,
            model_inputs=list(model_inputs),
            activation=activation,
            max_abs_diff=max_abs_diff,
            tolerance=tolerance,
            pairs_checked=len(SAMPLE_PAIRS),
        )
        if not max_abs_diff <= tolerance:  # NaN fails too
            raise ExportCheckError(
                f"exported {weights.name} differs from the PyTorch model by {max_abs_diff:.3g} "
                f"(tolerance {tolerance:g}) on {len(SAMPLE_PAIRS)} sample pairs; nothing was written"
            )
        (weights.parent / "export.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
        _install(staging, repository)
    log.info("exported %s to %s (max |diff| %.2g)", model, repository, max_abs_diff)
    return report


def _save_tokenizer(tokenizer, folder: Path, settings: repo.RepositorySettings):
    """Save the tokenizer files, and a ``tokenizer.json`` that carries the padding and truncation
    transformers applies at call time, so that the server needs only the ``tokenizers`` library."""
    from tokenizers import Tokenizer

    if tokenizer.pad_token is None:
        raise ExportError(f"{tokenizer.name_or_path}: the tokenizer has no pad token; batches cannot be padded")
    tokenizer.save_pretrained(folder)
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.enable_padding(
        direction=tokenizer.padding_side,
        pad_id=tokenizer.pad_token_id,
        pad_type_id=tokenizer.pad_token_type_id,
        pad_token=tokenizer.pad_token,
    )
    backend.enable_truncation(settings.max_length, strategy="longest_first", direction=tokenizer.truncation_side)
    backend.save(str(folder / "tokenizer.json"))
    return backend


def _encode(served_tokenizer, pairs, settings: repo.RepositorySettings) -> list[np.ndarray]:
    """Tokenize as the served ``tokenizer`` model does: its ``tokenizer.json``, ``encode_batch``."""
    encodings = served_tokenizer.encode_batch(list(pairs))
    fields = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
    return [np.array([getattr(e, fields[name]) for e in encodings], dtype=np.int64) for name in settings.model_inputs]


def _export_onnx(wrapper, example, path: Path, settings: repo.RepositorySettings, fuse_config) -> None:
    dynamic = {name: {0: "batch", 1: "sequence"} for name in settings.model_inputs}
    with warnings.catch_warnings():  # tracer chatter; the export check proves the graph instead
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            tuple(torch.from_numpy(a) for a in example),
            str(path),
            input_names=list(settings.model_inputs),
            output_names=[repo.ONNX_OUTPUT],
            dynamic_axes={**dynamic, repo.ONNX_OUTPUT: {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,  # the legacy exporter's graph is the one ONNX Runtime fuses fully
        )
    if fuse_config is None:
        return
    if fuse_config.model_type not in _FUSABLE:
        log.info("no ONNX Runtime fusions for model_type %r; keeping the plain graph", fuse_config.model_type)
        return
    from onnxruntime.transformers.optimizer import optimize_model

    fused = optimize_model(
        str(path), model_type="bert", num_heads=fuse_config.num_attention_heads, hidden_size=fuse_config.hidden_size
    )
    fused.save_model_to_file(str(path))


def _export_torchscript(wrapper, example, path: Path, device: str) -> None:
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, tuple(torch.from_numpy(a).to(device) for a in example), strict=False)
    traced.save(str(path))


def load_scorer(path: Path, device: str = "cpu"):
    """A function: tokenized inputs -> logits (float64, one per row), for ``model.onnx`` / ``model.pt``
    (a TorchScript file on the ``device`` it was traced for)."""
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [node.name for node in session.get_inputs()]

        def run(inputs: list[np.ndarray]) -> np.ndarray:
            return session.run(None, dict(zip(names, inputs, strict=True)))[0]

    else:
        module = torch.jit.load(str(path), map_location=device).eval()

        def run(inputs: list[np.ndarray]) -> np.ndarray:
            with torch.inference_mode():
                return module(*[torch.from_numpy(a).to(device) for a in inputs]).cpu().numpy()

    return lambda inputs: run(inputs).reshape(len(inputs[0]), -1)[:, 0].astype(np.float64)


def _existing_parent(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path.parent


def _install(staging: Path, repository: Path) -> None:
    """Move the checked models into place, replacing what an earlier export left."""
    for name in repo.MODEL_NAMES:
        target = repository / name
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(staging / name), str(target))
