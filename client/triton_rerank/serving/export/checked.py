"""The one way a model gets into a repository: built in a staging folder, checked against the
PyTorch reference on sample inputs tokenized as the server will, reduced in precision and measured,
and only then moved into place. A check that fails leaves the repository as it was."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import triton_rerank.protocol as protocol_names
import triton_rerank.serving.export.graphs as graphs
import triton_rerank.serving.export.precision as precision
from triton_rerank.backends.tokenizer_model import encode
from triton_rerank.serving import layout
from triton_rerank.serving import repository as repo
from triton_rerank.serving.export_options import ExportOptions
from triton_rerank.serving.install import install

log = logging.getLogger(__name__)

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
SAMPLE_TEXTS = [pair[1] for pair in SAMPLE_PAIRS] + [_LONG + " tail", "q"]


class ExportError(RuntimeError):
    """The model cannot be exported as asked."""


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
    max_abs_diff: float  # the fp32 graph against PyTorch
    tolerance: float
    pairs_checked: int  # sample inputs checked: pairs, or texts for a bi-encoder
    precision: str = "fp32"
    reduced_precision: precision.PrecisionReport | None = None
    calibration: str = ""  # which pairs set an NNCF int8 export's scales (precision.calibration_id)
    # What it was exported with (RepositorySettings, ExportOptions): a deploy makes the next version so.
    settings: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ExportJob:
    """One model to write: what to export, what it must score, and how to serve it."""

    model: str  # as the user named it: recorded in export.json
    activation: str  # how the reference turns outputs into scores: recorded in export.json
    wrapper: Any  # a torch.nn.Module: positional ids in, outputs out
    tokenizer: Any  # the model's fast (transformers) tokenizer
    settings: layout.RepositorySettings
    samples: list  # pairs or texts
    expected: np.ndarray  # the reference's outputs for the samples, one row each
    fuse_config: Any  # the model's config when ONNX Runtime may fuse its graph, else None
    trace_device: str  # where a TorchScript trace runs: cpu or cuda
    options: ExportOptions


def servable_tokenizer(model: str, tokenizer) -> tuple:
    """The tokenizer, if the server can run it, and the id tensors the model takes."""
    if not tokenizer.is_fast:
        raise ExportError(f"{model}: the server needs a fast (Rust) tokenizer; {type(tokenizer).__name__} is not one")
    if tokenizer.pad_token is None:
        raise ExportError(f"{model}: the tokenizer has no pad token; batches cannot be padded")
    return tokenizer, tuple(name for name in layout.BERT_INPUTS if name in tokenizer.model_input_names)


def save_tokenizer(tokenizer, folder: Path, max_length: int):
    """Save the tokenizer files, and a ``tokenizer.json`` that carries the padding and truncation
    transformers applies at call time, so that the server needs only the ``tokenizers`` library."""
    from tokenizers import Tokenizer

    tokenizer.save_pretrained(folder)
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.enable_padding(
        direction=tokenizer.padding_side,
        pad_id=tokenizer.pad_token_id,
        pad_type_id=tokenizer.pad_token_type_id,
        pad_token=tokenizer.pad_token,
    )
    backend.enable_truncation(max_length, strategy="longest_first", direction=tokenizer.truncation_side)
    backend.save(str(folder / "tokenizer.json"))
    return backend


def write_checked(job: ExportJob, repository: Path) -> ExportReport:
    """Export ``job`` into a staging folder beside ``repository``, check it, reduce its precision
    and measure the cost, then move the family's models into ``repository``."""
    settings, options = job.settings, job.options
    family = settings.family
    if options.precision == "bf16" and (missing := precision.bf16_support()):
        raise ExportError(missing)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=_existing_parent(repository)) as staging:
        staging = Path(staging)
        repo.write_configs(staging, settings)
        tokenizer = save_tokenizer(job.tokenizer, staging / family.tokenizer / "1", settings.max_length)
        # An OpenVINO (bf16, int8) export starts as the checked fp32 ONNX graph, converted after the check.
        traced_format = "onnx" if settings.model_format == "openvino" else settings.model_format
        weights = staging / family.model / "1" / layout.weights_file(traced_format)
        example = encode(tokenizer, job.samples[:2], settings.model_inputs)
        if traced_format == "onnx":
            graphs.export_onnx(job.wrapper, example, weights, settings, job.fuse_config)
        else:
            graphs.export_torchscript(job.wrapper.to(job.trace_device), example, weights, job.trace_device)
        score = graphs.load_scorer(weights, job.trace_device)
        max_abs_diff = _difference(score, tokenizer, job)
        if not max_abs_diff <= options.tolerance:  # NaN fails too
            raise ExportCheckError(
                f"exported {weights.name} differs from the PyTorch model by {max_abs_diff:.3g} "
                f"(tolerance {options.tolerance:g}) on {len(job.samples)} samples; nothing was written"
            )
        reduced, calibration = None, []
        if options.precision != "fp32":
            weights, reduced, calibration = _reduce_precision(job, weights, example, tokenizer, score)
        report = ExportReport(
            model=job.model,
            repository=str(repository),
            model_format=settings.model_format,
            max_length=settings.max_length,
            model_inputs=list(settings.model_inputs),
            activation=job.activation,
            max_abs_diff=max_abs_diff,
            tolerance=options.tolerance,
            pairs_checked=len(job.samples),
            precision=options.precision,
            reduced_precision=reduced,
            calibration=precision.calibration_id(options.calibration) if calibration else "",
            settings=asdict(settings),
            options=asdict(options),
        )
        (weights.parent / "export.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
        _stamp_model_id(staging / family.ensemble / "config.pbtxt", weights)
        _install(staging, repository, family.names)
    log.info("exported %s to %s (max |diff| %.2g)", job.model, repository, max_abs_diff)
    return report


def _reduce_precision(job: ExportJob, weights: Path, example, tokenizer, score):
    """The checked fp32 model in ``job.options.precision``: (its weights, what it costs against fp32,
    the calibration batches int8 used); refused below the rank-correlation bar."""
    settings, options = job.settings, job.options
    calibration = []
    if settings.model_format == "torchscript":  # fp16: the same model traced again, in half precision
        graphs.export_torchscript(job.wrapper.half(), example, weights, job.trace_device)
    elif settings.model_format == "openvino":
        if options.precision == "int8":  # its activation scales come from these (bf16 needs none)
            try:
                calibration = precision.calibration_batches(tokenizer, settings, options.calibration)
            except (OSError, ValueError) as err:
                raise ExportError(f"calibration pairs: {err}") from None
        weights = precision.convert_openvino(weights, options.precision, calibration)
    else:
        precision.convert_onnx(weights, options.precision)
    reduced = precision.measure(weights, options.precision, score, tokenizer, settings, job.trace_device)
    if not reduced.rank_correlation >= options.rank_correlation_bar:
        raise ExportCheckError(
            f"{options.precision} {weights.name} keeps a rank correlation of only "
            f"{reduced.rank_correlation:.4f} with fp32 on the sample queries (at least "
            f"{options.rank_correlation_bar:g} asked); nothing was written"
        )
    return weights, reduced, calibration


def _difference(score, tokenizer, job: ExportJob) -> float:
    """The largest difference to the reference, the samples tokenized as the server will
    (tokenizer.json) and run once as one padded batch and once row by row: a tokenization that
    differs from sentence-transformers', a shape frozen by the exporter, or padding that leaks
    into results all show up here."""
    names = job.settings.model_inputs
    batched = score(encode(tokenizer, job.samples, names))
    single = np.concatenate([score(encode(tokenizer, [sample], names)) for sample in job.samples])
    return float(max(np.max(np.abs(job.expected - batched)), np.max(np.abs(job.expected - single))))


def _stamp_model_id(ensemble_config: Path, weights: Path) -> None:
    """The digest of the model's files (weights, external data, OpenVINO's .bin) as the ensemble's
    ``model_id``: what the score cache keys a version on."""
    digest = hashlib.sha256()
    for path in sorted(p for p in weights.parent.iterdir() if p.is_file() and p.name != "export.json"):
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    config = repo.load_config(ensemble_config)
    config.parameters[protocol_names.MODEL_ID].string_value = digest.hexdigest()[:16]
    ensemble_config.write_text(repo.to_pbtxt(config))


def _existing_parent(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path.parent


def _install(staging: Path, repository: Path, names: tuple[str, ...]) -> None:
    """Move the checked models into place, replacing what an earlier export of them left (one swap,
    marked while it lasts: ``serving.install``)."""
    install(staging, repository, names)
