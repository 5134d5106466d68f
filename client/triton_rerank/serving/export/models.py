"""The two kinds of model a repository serves: a cross-encoder becomes the ``reranker`` family,
a sentence-transformers bi-encoder the ``embedder`` family. Each is loaded with its in-process
reference, whose outputs on the sample inputs the export must reproduce."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import CrossEncoder, SentenceTransformer
from transformers import AutoModel, AutoModelForSequenceClassification

import triton_rerank.serving.export.cascade as cascade
from triton_rerank.model_sources import DEFAULT_EMBEDDER, DEFAULT_RERANKER, resolve_model
from triton_rerank.serving import layout
from triton_rerank.serving import repository as repo
from triton_rerank.serving.export.checked import (
    SAMPLE_PAIRS,
    SAMPLE_TEXTS,
    ExportError,
    ExportJob,
    ExportReport,
    servable_tokenizer,
    write_checked,
)
from triton_rerank.serving.export.graphs import LogitsOnly, PooledEmbeddings
from triton_rerank.serving.export.precision import calibration_id, settings_for_precision
from triton_rerank.serving.export_options import PRECISIONS, ExportOptions, served_format

log = logging.getLogger(__name__)


def export_cross_encoder(
    model: str = DEFAULT_RERANKER,
    repository: Path | str = "generated/model_repository",
    *,
    model_format: str | None = None,
    settings: layout.RepositorySettings | None = None,
    **options,
) -> ExportReport:
    """Export a cross-encoder (hub id or local folder) as the ``reranker`` into ``repository``.

    Args:
        model_format: ``onnx`` (onnxruntime backend), ``torchscript`` (pytorch backend) or
            ``openvino`` (int8 or bf16); default: that of ``settings``, else onnx.
        settings: Serving settings (device, batching, threads); the model-specific fields
            (format, inputs, max_length) are filled in from the model.
        options: ``ExportOptions`` fields: precision, optimize, tolerance, min_rank_correlation.
    """
    options = ExportOptions(**options)
    model_format = model_format or (settings.model_format if settings else "onnx")
    _check_precision(options.precision, model_format)
    reference = CrossEncoder(model, device="cpu")
    tokenizer, model_inputs = servable_tokenizer(model, reference.tokenizer)
    hf_model = AutoModelForSequenceClassification.from_pretrained(model, attn_implementation="eager").eval()
    if hf_model.config.num_labels != 1:
        raise ExportError(f"{model} has {hf_model.config.num_labels} labels; a reranker must output one score per pair")
    settings = (settings or layout.DEFAULT_RERANKER_SETTINGS).replace(
        kind="cross-encoder",
        dimension=1,
        model_format=model_format,
        model_inputs=model_inputs,
        max_length=reference.max_seq_length,
        reserved_tokens=tokenizer.num_special_tokens_to_add(pair=True),  # [CLS] [SEP] [SEP] for BERT
    )
    settings, trace_device = _trace_device(settings_for_precision(settings, options.precision), options.precision)
    activation = type(reference.activation_fn).__name__
    if activation != "Identity":
        log.warning(
            "sentence-transformers applies %s to %s's scores by default; the server returns raw logits: "
            "pass activation='sigmoid' to TritonRerankFunction for the same scores",
            activation,
            model,
        )
    expected = reference.predict(SAMPLE_PAIRS, activation_fn=torch.nn.Identity(), batch_size=len(SAMPLE_PAIRS))
    job = ExportJob(
        model=str(model),
        activation=activation,
        wrapper=LogitsOnly(hf_model, model_inputs),
        tokenizer=tokenizer,
        settings=settings,
        samples=SAMPLE_PAIRS,
        expected=np.asarray(expected, dtype=np.float64).reshape(-1, 1),
        fuse_config=hf_model.config if options.optimize else None,
        trace_device=trace_device,
        options=options,
    )
    return write_checked(job, Path(repository))


def export_bi_encoder(
    model: str = DEFAULT_EMBEDDER,
    repository: Path | str = "generated/model_repository",
    *,
    settings: layout.RepositorySettings | None = None,
    **options,
) -> ExportReport:
    """Export a sentence-transformers bi-encoder (hub id or local folder) as the ``embedder``.

    The ONNX graph holds the encoder, the model's pooling (mean or CLS) and L2 normalisation, so
    the served embeddings equal ``SentenceTransformer.encode(..., normalize_embeddings=True)``.
    A reduced precision is ranked by cosine similarity of the sample queries to the sample corpus.
    """
    options = ExportOptions(**options)
    _check_precision(options.precision, "onnx")
    reference = SentenceTransformer(model, device="cpu")
    modules = [type(module).__name__ for module in reference]
    if modules[:2] != ["Transformer", "Pooling"] or any(m not in ("Normalize",) for m in modules[2:]):
        raise ExportError(f"{model}: expected Transformer, Pooling[, Normalize] modules, found {modules}")
    pooling = getattr(reference[1], "pooling_mode", None)
    if pooling not in ("mean", "cls"):
        raise ExportError(f"{model}: pooling {pooling!r} is not supported (mean or cls)")
    tokenizer, model_inputs = servable_tokenizer(model, reference.tokenizer)
    hf_model = AutoModel.from_pretrained(model, attn_implementation="eager").eval()
    settings = (settings or layout.DEFAULT_EMBEDDER_SETTINGS).replace(
        kind="bi-encoder",
        model_format="onnx",
        model_inputs=model_inputs,
        max_length=reference.max_seq_length,
        # sentence-transformers 6 renamed get_sentence_embedding_dimension; older releases lack the new name
        dimension=getattr(reference, "get_embedding_dimension", reference.get_sentence_embedding_dimension)(),
    )
    expected = reference.encode(SAMPLE_TEXTS, normalize_embeddings=True, batch_size=len(SAMPLE_TEXTS))
    job = ExportJob(
        model=str(model),
        activation=f"{pooling} pooling, L2 normalised",
        wrapper=PooledEmbeddings(hf_model, model_inputs, pooling),
        tokenizer=tokenizer,
        settings=settings_for_precision(settings, options.precision),
        samples=SAMPLE_TEXTS,
        expected=np.asarray(expected, dtype=np.float64),
        fuse_config=hf_model.config if options.optimize else None,
        trace_device="cpu",
        options=options,
    )
    return write_checked(job, Path(repository))


def export_model(
    model: str, repository: Path | str, kind: str, *, settings: layout.RepositorySettings | None = None, **options
) -> ExportReport:
    """``export_cross_encoder``, ``export_llm_reranker`` or ``export_bi_encoder``, as ``kind`` says;
    a cascade folder (``triton-rerank distill``'s) is exported as its two stages and their chain."""
    if cascade.is_cascade(model):
        if kind != "cross-encoder":
            raise ExportError(f"{model} is a cascade of cross-encoders, not a {kind}")
        return export_cascade(model, repository, settings=settings, **options)
    if kind == "bi-encoder":
        return export_bi_encoder(model, repository, settings=settings, **options)
    if kind == "llm-reranker":
        from triton_rerank.serving.export.llm import export_llm_reranker

        return export_llm_reranker(model, repository, settings=settings, **options)
    return export_cross_encoder(model, repository, settings=settings, **options)


def reference_reranker(model: str, kind: str = "cross-encoder", instruction: str | None = None):
    """``predict(pairs) -> scores`` as the reranker ``model`` scores in process, raw: a cross-encoder's
    logits (``CrossEncoder.predict``), an LLM reranker's logit(yes) - logit(no) (its model card's code)."""
    source = resolve_model(model)
    if cascade.is_cascade(source):
        spec = cascade.read_cascade(source)
        return cascade.reference(
            spec, reference_reranker(str(Path(source) / spec.first)), reference_reranker(str(Path(source) / spec.last))
        )
    if kind == "llm-reranker":
        from triton_rerank.serving.export.llm import CardReranker

        return CardReranker(source, instruction).predict
    cross_encoder = CrossEncoder(source, device="cpu")
    return lambda pairs: np.asarray(
        cross_encoder.predict(pairs, activation_fn=torch.nn.Identity(), batch_size=32), dtype=np.float64
    )


def ensure_exported(
    repository: Path | str,
    model: str,
    kind: str,
    *,
    settings: layout.RepositorySettings | None = None,
    **options,
) -> ExportReport | None:
    """Export ``model`` (resolved by ``models.resolve_model``) as ``kind`` unless ``is_exported``
    says the repository already holds it; returns the new export's report, or None."""
    source = resolve_model(model)
    precision = options.get("precision", "fp32")
    model_format = settings.model_format if settings else "onnx"
    calibration = options.get("calibration")
    if cascade.is_cascade(source):
        if cascade_exported(repository, source, precision, settings):
            return None
        return export_model(source, repository, kind, settings=settings, **options)
    if is_exported(
        repository, source, kind, precision, model_format=model_format, settings=settings, calibration=calibration
    ):
        return None
    return export_model(source, repository, kind, settings=settings, **options)


def is_exported(
    repository: Path | str,
    source: str,
    kind: str,
    precision: str = "fp32",
    *,
    model_format: str = "onnx",
    settings: layout.RepositorySettings | None = None,
    calibration: str | None = None,
) -> bool:
    """Whether ``repository`` holds a complete export of ``source`` (a resolved model) as ``kind``
    in that format and precision: its weights, configs that still say the exported max_length and,
    when ``settings`` are given, a model config that says what they say (device, accelerator, batching),
    Python models whose code is this package's (an upgrade re-exports rather than serve old code)
    and, when ``calibration`` is given ("" for the built-in pairs), an NNCF int8 export calibrated on it."""
    family = (settings.replace(kind=kind) if settings else layout.RepositorySettings(kind=kind)).family
    manifest = Path(repository) / family.model / "1" / "export.json"
    if not manifest.exists():
        return False
    report = json.loads(manifest.read_text())
    weights = manifest.parent / layout.weights_file(report.get("model_format", "onnx"))
    tokenizer_config = repo.load_config(Path(repository) / family.tokenizer / "config.pbtxt")
    if calibration is not None and report.get("calibration"):
        try:
            if report["calibration"] != calibration_id(calibration):
                return False
        except OSError:  # no such pairs file: the export says so
            return False
    return (
        report.get("model") == source
        and report.get("precision", "fp32") == precision
        and report.get("model_format") == served_format(model_format, precision)
        and weights.exists()
        and tokenizer_config.parameters["max_length"].string_value == str(report.get("max_length"))
        and all(
            _same_code(Path(repository) / name / "1" / "model.py", code)
            for name, code in layout.python_models(family).items()
        )
        and (settings is None or _config_matches(Path(repository) / family.model, settings, kind, report))
    )


def export_cascade(folder: str | Path, repository: Path | str, *, settings=None, **options) -> ExportReport:
    """Export the cascade in ``folder`` (``serving/export/cascade.py``): both stages (the first at the
    precision it was distilled for, the last as ``options`` say, fp32 by default), then their chain."""
    folder, repository = Path(folder), Path(repository)
    spec = cascade.read_cascade(folder)
    settings = (settings or layout.DEFAULT_RERANKER_SETTINGS).replace(kind="cross-encoder")
    _, first_name, last_name = cascade.member_names(settings)
    first_options = {k: v for k, v in options.items() if k not in ("precision", "calibration")}
    if spec.first_calibration:
        first_options["calibration"] = str(folder / spec.first / spec.first_calibration)
    first_settings = settings.replace(name=first_name, model_format=spec.first_format)
    last_settings = settings.replace(name=last_name)
    export_cross_encoder(str(folder / spec.first), repository, settings=first_settings,
                         precision=spec.first_precision, **first_options)  # fmt: skip
    last = export_cross_encoder(str(folder / spec.last), repository, settings=last_settings, **options)
    return cascade.install_chain(folder, repository, spec, settings, last)


def cascade_exported(repository: Path | str, source: str, precision: str, settings=None) -> bool:
    """Whether ``repository`` holds the cascade ``source``: its chain, and both stages as exported."""
    settings = (settings or layout.DEFAULT_RERANKER_SETTINGS).replace(kind="cross-encoder")
    _, first_name, last_name = cascade.member_names(settings)
    spec = cascade.read_cascade(source)
    return (
        cascade.chain_exported(repository, source, precision, settings)
        and is_exported(
            repository,
            str(Path(source) / spec.first),
            "cross-encoder",
            spec.first_precision,
            model_format=spec.first_format,
            settings=settings.replace(name=first_name, model_format=spec.first_format),
            calibration=str(Path(source) / spec.first / spec.first_calibration) if spec.first_calibration else None,
        )
        and is_exported(
            repository,
            str(Path(source) / spec.last),
            "cross-encoder",
            precision,
            settings=settings.replace(name=last_name),
        )
    )


def _same_code(copy: Path, source: Path) -> bool:
    return copy.exists() and copy.read_bytes() == source.read_bytes()


def _config_matches(model_dir: Path, settings: layout.RepositorySettings, kind: str, report: dict) -> bool:
    """Whether the model's config.pbtxt is the one ``settings`` would write for this export."""
    on_disk = repo.load_config(model_dir / "config.pbtxt")
    wanted = settings.replace(
        kind=kind,
        dimension=on_disk.output[0].dims[0],
        model_format=report["model_format"],
        model_inputs=tuple(report["model_inputs"]),
        max_length=report["max_length"],
    )
    return repo.model_config(settings_for_precision(wanted, report.get("precision", "fp32"))) == on_disk


def _check_precision(precision: str, model_format: str) -> None:
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision in ("int8", "bf16") and model_format not in ("onnx", "openvino"):
        raise ExportError(f"{precision} is made from the ONNX graph: export with --model-format onnx or openvino")
    if model_format == "openvino" and precision not in ("int8", "bf16"):
        raise ExportError(f"model format openvino serves int8 or bf16 exports, not {precision}")


def _trace_device(settings: layout.RepositorySettings, precision: str) -> tuple[layout.RepositorySettings, str]:
    """Where the model is traced: a TorchScript trace is bound to the device it ran on, so its
    instance group follows the export machine's device unless a GPU is asked for (and present)."""
    if settings.model_format != "torchscript":
        return settings, "cpu"
    if settings.device == "auto":
        settings = settings.replace(device="gpu" if torch.cuda.is_available() else "cpu")
    trace_device = "cpu"
    if settings.device == "gpu":
        if not torch.cuda.is_available():
            raise ExportError(
                "a TorchScript trace runs only on the kind of device it was traced on: export with "
                "--device gpu on a machine with a CUDA GPU, or use --model-format onnx"
            )
        trace_device = "cuda"
    if precision == "fp16" and trace_device != "cuda":
        raise ExportError("fp16 TorchScript is traced on the GPU it serves on: export with --device gpu")
    return settings, trace_device
