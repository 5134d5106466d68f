"""Export Hugging Face models into a Triton model repository, and prove each export.

``export_cross_encoder`` writes ``cross_encoder/1/model.onnx`` (or ``model.pt``), the tokenizer
files into ``tokenizer/1/``, and the reranker family's ``config.pbtxt`` files; ``export_bi_encoder``
writes the embedder family (``embed_tokenizer``, ``bi_encoder``, ``embedder``) the same way. Before
anything is written the exported file scores sample inputs, tokenized as the server will, and the
result is compared with sentence-transformers in PyTorch (``CrossEncoder.predict`` /
``SentenceTransformer.encode``); above the tolerance ``ExportCheckError`` is raised and the
repository is left as it was. Each export replaces only its own family's models.

``precision`` picks the model's arithmetic: ``fp32``; ``int8`` (ONNX dynamic quantization,
per-channel weights: about twice as fast on CPUs with VNNI); or ``fp16`` (for GPUs: the ONNX graph
converted, or a TorchScript trace of the model in half precision on the GPU). A reduced
precision is made from the checked fp32 graph and its cost is measured and reported: the largest
score difference to fp32 and how well it keeps fp32's ranking of the built-in sample corpus.

Needs the ``export`` extra (torch, transformers, sentence-transformers, onnx, onnxruntime).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from triton_rerank import repository as repo
from triton_rerank.metrics import rank_correlation, top_k_overlap
from triton_rerank.samples import SAMPLE_QUERIES, sample_texts

try:
    import torch
    from sentence_transformers import CrossEncoder, SentenceTransformer
    from transformers import AutoModel, AutoModelForSequenceClassification
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError(f"exporting needs the 'export' extra: pip install 'triton-rerank[export]' ({err})") from err

log = logging.getLogger(__name__)

DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L-6-v2"
DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_TOLERANCE = 1e-4
PRECISIONS = ("fp32", "int8", "fp16")
Precision = Literal["fp32", "int8", "fp16"]
# A reduced precision must keep at least this rank correlation with fp32 on the sample queries;
# a broken conversion lands near 0, a sound int8 model near 0.98.
DEFAULT_MIN_RANK_CORRELATION = 0.9
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
SAMPLE_TEXTS = [pair[1] for pair in SAMPLE_PAIRS] + [_LONG + " tail", "q"]


class ExportError(RuntimeError):
    """The model cannot be exported as asked."""


class ExportCheckError(ExportError):
    """The exported file does not score like the PyTorch model."""


@dataclass(frozen=True)
class PrecisionReport:
    """What a reduced precision costs against the fp32 export, on the built-in sample corpus."""

    precision: str
    max_abs_diff: float  # largest |score - fp32 score| (embedding component for a bi-encoder)
    rank_correlation: float  # Spearman correlation with fp32's scores, averaged over the sample queries
    top5_agreement: float  # share of fp32's top 5 documents kept in the top 5, averaged over the queries
    pairs_checked: int


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
    reduced_precision: PrecisionReport | None = None


class _LogitsOnly(torch.nn.Module):
    """Positional ids in, logits out: the signature both exporters need."""

    def __init__(self, model: torch.nn.Module, input_names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *ids: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.input_names, ids, strict=True))).logits


class _PooledEmbeddings(torch.nn.Module):
    """Positional ids in, sentence embeddings out: the encoder, then sentence-transformers'
    pooling (mean over the attention mask, or CLS) and L2 normalisation, in one graph."""

    def __init__(self, model: torch.nn.Module, input_names: tuple[str, ...], pooling: str) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names
        self.pooling = pooling

    def forward(self, *ids: torch.Tensor) -> torch.Tensor:
        inputs = dict(zip(self.input_names, ids, strict=True))
        tokens = self.model(**inputs).last_hidden_state
        if self.pooling == "cls":
            pooled = tokens[:, 0]
        else:
            mask = inputs["attention_mask"].unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)


def export_cross_encoder(
    model: str = DEFAULT_MODEL,
    repository: Path | str = "model_repository",
    *,
    model_format: Literal["onnx", "torchscript"] = "onnx",
    precision: Precision = "fp32",
    optimize: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
    min_rank_correlation: float = DEFAULT_MIN_RANK_CORRELATION,
    settings: repo.RepositorySettings | None = None,
) -> ExportReport:
    """Export ``model`` (hub id or local folder) into ``repository``; see the module docstring.

    Args:
        precision: ``fp32``, ``int8`` (ONNX only) or ``fp16`` (ONNX, or TorchScript on a GPU).
        min_rank_correlation: The least rank correlation with fp32 a reduced precision may keep.
        settings: Serving settings (device, batching, threads); the model-specific fields
            (format, inputs, max_length) are filled in from the model.
    """
    _check_precision(precision, model_format)
    reference = CrossEncoder(model, device="cpu")
    tokenizer, model_inputs = _servable_tokenizer(model, reference.tokenizer)
    hf_model = AutoModelForSequenceClassification.from_pretrained(model, attn_implementation="eager").eval()
    if hf_model.config.num_labels != 1:
        raise ExportError(f"{model} has {hf_model.config.num_labels} labels; a reranker must output one score per pair")
    settings = (settings or repo.DEFAULT_RERANKER_SETTINGS).replace(
        kind="cross-encoder",
        dimension=1,
        model_format=model_format,
        model_inputs=model_inputs,
        max_length=reference.max_seq_length,
    )
    settings = _settings_for_precision(settings, precision)
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
        if precision == "fp16" and trace_device != "cuda":
            raise ExportError("fp16 TorchScript is traced on the GPU it serves on: export with --device gpu")
    activation = type(reference.activation_fn).__name__
    if activation != "Identity":
        log.warning(
            "sentence-transformers applies %s to %s's scores by default; the server returns raw logits: "
            "pass activation='sigmoid' to TritonRerankFunction for the same scores",
            activation,
            model,
        )

    expected = reference.predict(SAMPLE_PAIRS, activation_fn=torch.nn.Identity(), batch_size=len(SAMPLE_PAIRS))
    return _write_checked(
        _LogitsOnly(hf_model, model_inputs),
        tokenizer,
        settings,
        Path(repository),
        samples=SAMPLE_PAIRS,
        expected=np.asarray(expected, dtype=np.float64).reshape(-1, 1),
        fuse_config=hf_model.config if optimize else None,
        trace_device=trace_device,
        tolerance=tolerance,
        precision=precision,
        min_rank_correlation=min_rank_correlation,
        model=str(model),
        activation=activation,
    )


def export_bi_encoder(
    model: str = DEFAULT_EMBEDDER,
    repository: Path | str = "model_repository",
    *,
    precision: Precision = "fp32",
    optimize: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
    min_rank_correlation: float = DEFAULT_MIN_RANK_CORRELATION,
    settings: repo.RepositorySettings | None = None,
) -> ExportReport:
    """Export a sentence-transformers bi-encoder (hub id or local folder) as the ``embedder``.

    The ONNX graph holds the encoder, the model's pooling (mean or CLS) and L2 normalisation, so
    the served embeddings equal ``SentenceTransformer.encode(..., normalize_embeddings=True)``.
    A reduced precision is ranked by cosine similarity of the sample queries to the sample corpus.
    """
    _check_precision(precision, "onnx")
    reference = SentenceTransformer(model, device="cpu")
    modules = [type(module).__name__ for module in reference]
    if modules[:2] != ["Transformer", "Pooling"] or any(m not in ("Normalize",) for m in modules[2:]):
        raise ExportError(f"{model}: expected Transformer, Pooling[, Normalize] modules, found {modules}")
    pooling = getattr(reference[1], "pooling_mode", None)
    if pooling not in ("mean", "cls"):
        raise ExportError(f"{model}: pooling {pooling!r} is not supported (mean or cls)")
    tokenizer, model_inputs = _servable_tokenizer(model, reference.tokenizer)
    hf_model = AutoModel.from_pretrained(model, attn_implementation="eager").eval()
    settings = (settings or repo.DEFAULT_EMBEDDER_SETTINGS).replace(
        kind="bi-encoder",
        model_format="onnx",
        model_inputs=model_inputs,
        max_length=reference.max_seq_length,
        # sentence-transformers 6 renamed get_sentence_embedding_dimension; older releases lack the new name
        dimension=getattr(reference, "get_embedding_dimension", reference.get_sentence_embedding_dimension)(),
    )
    settings = _settings_for_precision(settings, precision)
    expected = reference.encode(SAMPLE_TEXTS, normalize_embeddings=True, batch_size=len(SAMPLE_TEXTS))
    return _write_checked(
        _PooledEmbeddings(hf_model, model_inputs, pooling),
        tokenizer,
        settings,
        Path(repository),
        samples=SAMPLE_TEXTS,
        expected=np.asarray(expected, dtype=np.float64),
        fuse_config=hf_model.config if optimize else None,
        trace_device="cpu",
        tolerance=tolerance,
        precision=precision,
        min_rank_correlation=min_rank_correlation,
        model=str(model),
        activation=f"{pooling} pooling, L2 normalised",
    )


def _write_checked(
    wrapper,
    tokenizer,
    settings,
    repository: Path,
    *,
    samples,
    expected,
    fuse_config,
    trace_device,
    tolerance,
    precision,
    min_rank_correlation,
    **about,
) -> ExportReport:
    """Export ``wrapper`` with the configs and tokenizer into a staging folder, check it against
    ``expected`` (one row per sample), convert it to ``precision`` and measure what that costs,
    and only then move the family's models into ``repository``."""
    family = settings.family
    with tempfile.TemporaryDirectory(prefix=".export-", dir=_existing_parent(repository)) as staging:
        staging = Path(staging)
        repo.write_configs(staging, settings)
        served_tokenizer = _save_tokenizer(tokenizer, staging / family.tokenizer / "1", settings)
        filename = repo.ONNX_FILE if settings.model_format == "onnx" else repo.TORCHSCRIPT_FILE
        weights = staging / family.model / "1" / filename
        example = _encode(served_tokenizer, samples[:2], settings)
        if settings.model_format == "onnx":
            _export_onnx(wrapper, example, weights, settings, fuse_config)
        else:
            _export_torchscript(wrapper.to(trace_device), example, weights, trace_device)

        score = load_scorer(weights, trace_device)
        # Tokenized as the server will (tokenizer.json), run once as one padded batch and once
        # row by row: a tokenization that differs from sentence-transformers', a shape frozen by
        # the exporter, or padding that leaks into results all show up as a difference.
        batched = score(_encode(served_tokenizer, samples, settings))
        single = np.concatenate([score(_encode(served_tokenizer, [sample], settings)) for sample in samples])
        max_abs_diff = float(max(np.max(np.abs(expected - batched)), np.max(np.abs(expected - single))))
        reduced = None
        if precision != "fp32" and max_abs_diff <= tolerance:
            if settings.model_format == "torchscript":  # fp16: the same model traced again, in half precision
                _export_torchscript(wrapper.half(), example, weights, trace_device)
            reduced = _reduce_precision(weights, precision, score, served_tokenizer, settings, trace_device)
        report = ExportReport(
            precision=precision,
            reduced_precision=reduced,
            repository=str(repository),
            model_format=settings.model_format,
            max_length=settings.max_length,
            model_inputs=list(settings.model_inputs),
            max_abs_diff=max_abs_diff,
            tolerance=tolerance,
            pairs_checked=len(samples),
            **about,
        )
        if not max_abs_diff <= tolerance:  # NaN fails too
            raise ExportCheckError(
                f"exported {weights.name} differs from the PyTorch model by {max_abs_diff:.3g} "
                f"(tolerance {tolerance:g}) on {len(samples)} samples; nothing was written"
            )
        if reduced is not None and not reduced.rank_correlation >= min_rank_correlation:
            raise ExportCheckError(
                f"{precision} {weights.name} keeps a rank correlation of only {reduced.rank_correlation:.3f} "
                f"with fp32 on the sample queries (at least {min_rank_correlation:g} asked); nothing was written"
            )
        (weights.parent / "export.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
        _install(staging, repository, family.names)
    log.info("exported %s to %s (max |diff| %.2g)", about["model"], repository, max_abs_diff)
    return report


def ensure_exported(
    repository: Path | str,
    model: str,
    kind: str,
    precision: Precision = "fp32",
    *,
    model_format: Literal["onnx", "torchscript"] = "onnx",
    settings: repo.RepositorySettings | None = None,
) -> ExportReport | None:
    """Export ``model`` (resolved by ``models.resolve_model``) as ``kind`` unless ``is_exported``
    says the repository already holds it; returns the new export's report, or None."""
    from triton_rerank.models import resolve_model

    source = resolve_model(model)
    if is_exported(repository, source, kind, precision, model_format=model_format, settings=settings):
        return None
    if kind == "bi-encoder":
        return export_bi_encoder(source, repository, precision=precision, settings=settings)
    return export_cross_encoder(source, repository, model_format=model_format, precision=precision, settings=settings)


def is_exported(
    repository: Path | str,
    source: str,
    kind: str,
    precision: Precision = "fp32",
    *,
    model_format: Literal["onnx", "torchscript"] = "onnx",
    settings: repo.RepositorySettings | None = None,
) -> bool:
    """Whether ``repository`` holds a complete export of ``source`` (a resolved model) as ``kind``
    in that format and precision: its weights, configs that still say the exported max_length and,
    when ``settings`` are given, a model config that says what they say (device, accelerator, batching)."""
    family = repo.FAMILIES[kind]
    manifest = Path(repository) / family.model / "1" / "export.json"
    if not manifest.exists():
        return False
    report = json.loads(manifest.read_text())
    weights = manifest.parent / (repo.ONNX_FILE if report.get("model_format") == "onnx" else repo.TORCHSCRIPT_FILE)
    tokenizer_config = repo.load_config(Path(repository) / family.tokenizer / "config.pbtxt")
    return (
        report.get("model") == source
        and report.get("precision", "fp32") == precision
        and report.get("model_format") == model_format
        and weights.exists()
        and tokenizer_config.parameters["max_length"].string_value == str(report.get("max_length"))
        and (settings is None or _config_matches(Path(repository) / family.model, settings, kind, report))
    )


def _config_matches(model_dir: Path, settings: repo.RepositorySettings, kind: str, report: dict) -> bool:
    """Whether the model's config.pbtxt is the one ``settings`` would write for this export."""
    on_disk = repo.load_config(model_dir / "config.pbtxt")
    wanted = settings.replace(
        kind=kind,
        dimension=on_disk.output[0].dims[0],
        model_format=report["model_format"],
        model_inputs=tuple(report["model_inputs"]),
        max_length=report["max_length"],
    )
    return repo.model_config(_settings_for_precision(wanted, report.get("precision", "fp32"))) == on_disk


def _servable_tokenizer(model: str, tokenizer) -> tuple:
    """The tokenizer, if the server can run it, and the id tensors the model takes."""
    if not tokenizer.is_fast:
        raise ExportError(f"{model}: the server needs a fast (Rust) tokenizer; {type(tokenizer).__name__} is not one")
    if tokenizer.pad_token is None:
        raise ExportError(f"{model}: the tokenizer has no pad token; batches cannot be padded")
    return tokenizer, tuple(name for name in repo.BERT_INPUTS if name in tokenizer.model_input_names)


def _save_tokenizer(tokenizer, folder: Path, settings: repo.RepositorySettings):
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
    backend.enable_truncation(settings.max_length, strategy="longest_first", direction=tokenizer.truncation_side)
    backend.save(str(folder / "tokenizer.json"))
    return backend


def _encode(served_tokenizer, samples, settings: repo.RepositorySettings) -> list[np.ndarray]:
    """Tokenize (pairs or texts) as the served tokenizer model does: ``tokenizer.json``, ``encode_batch``."""
    encodings = served_tokenizer.encode_batch(list(samples))
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
            output_names=[settings.family.model_output],
            dynamic_axes={**dynamic, settings.family.model_output: {0: "batch"}},
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
    _keep_used_domains(fused.model)
    fused.save_model_to_file(str(path))


def _keep_used_domains(model) -> None:
    """ONNX Runtime's tools stamp every opset domain they know; keep those the graph uses, so an
    older runtime (onnxruntime 1.19 in the 24.10 Triton container) meets no domain it lacks."""
    used = {""} | {node.domain for node in model.graph.node}
    kept = [opset for opset in model.opset_import if opset.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)


_FFN_MATMUL = re.compile(r"layer\.(\d+)/(intermediate|output)/dense/MatMul$")


def _quantize_first_token_apart(model) -> None:
    """Rewrite the feed-forward MatMuls of the first half of the layers, ``X·W``, as
    ``Concat(X[:, :1]·W, X[:, 1:]·W)`` along the sequence, so that dynamic quantization gives the
    first token its own activation scale.

    Dynamic quantization takes one activation scale per tensor, and in BERT-style models the first
    token ([CLS], which the score is read from) carries by far the largest feed-forward activations:
    on MiniLM-L6 it widened their range 2-4.5x in layers 0-3 (1-1.4x in layers 4-5), so all other
    tokens were rounded that much coarser. The early layers are where int8's error starts (keeping
    any one node of layers 3-5 in fp32 changed nothing). Measured on 3,000 SciFact-train pairs: RMS
    score error to fp32 0.155 -> 0.078, Spearman 0.977 -> 0.990, for 2-10% of int8's speed on DL19
    pairs (in-process and served, side by side). The first row in fp32 instead was no better (0.079)
    and cost 10% in-process: its fp32 weights are read for one row; splitting all six layers bought
    little more (0.075) for twice the cost. Node names are those of the Hugging Face BERT family's
    ONNX export; a graph without them is left whole."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {initializer.name for initializer in graph.initializer}
    ffn = {
        node.name: int(match.group(1))
        for node in graph.node
        if node.op_type == "MatMul" and node.input[1] in weights and (match := _FFN_MATMUL.search(node.name))
    }
    if not ffn:
        return
    first_half = max(1, (max(ffn.values()) + 1) // 2)
    bounds = {"first_row/zero": 0, "first_row/one": 1, "first_row/end": np.iinfo(np.int64).max}
    graph.initializer.extend(numpy_helper.from_array(np.array([v], np.int64), name) for name, v in bounds.items())
    nodes = []
    for node in graph.node:
        if ffn.get(node.name, first_half) >= first_half:
            nodes.append(node)
            continue
        (x, w), (y,), name = node.input, node.output, node.name
        seq = "first_row/one"  # the sequence axis, and the first row's end
        nodes += [
            helper.make_node("Slice", [x, "first_row/zero", "first_row/one", seq], [f"{name}/first"], f"{name}/First"),
            helper.make_node("Slice", [x, "first_row/one", "first_row/end", seq], [f"{name}/rest"], f"{name}/Rest"),
            helper.make_node("MatMul", [f"{name}/first", w], [f"{name}/first_out"], f"{name}/FirstRow"),
            helper.make_node("MatMul", [f"{name}/rest", w], [f"{name}/rest_out"], f"{name}/OtherRows"),
            helper.make_node("Concat", [f"{name}/first_out", f"{name}/rest_out"], [y], f"{name}/Concat", axis=1),
        ]
    del graph.node[:]
    graph.node.extend(nodes)


def _settings_for_precision(settings: repo.RepositorySettings, precision: str) -> repo.RepositorySettings:
    """int8 runs row by row in the embedded runner unless asked otherwise: dynamic quantization
    takes one activation scale per tensor, so in a batch each score would depend on its batch-mates;
    one row per call keeps every score the pair's own, at almost no cost (no padding at all).
    Its threads then take rows of their own rather than splitting each row's small operators:
    measured side by side, served, N = 100: 250 vs 201 pairs/s at 1 client, 249 vs 207 at 4."""
    if precision != "int8":
        return settings
    return settings.replace(
        runner_slice_rows=1 if settings.runner_slice_rows is None else settings.runner_slice_rows,
        runner_parallelism=settings.runner_parallelism or "slices",
    )


def _check_precision(precision: str, model_format: str) -> None:
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "int8" and model_format != "onnx":
        raise ExportError("int8 is made from the ONNX graph: export with --format onnx")


def _reduce_precision(
    path: Path, precision: str, fp32_score, served_tokenizer, settings, device: str = "cpu"
) -> PrecisionReport:
    """Convert the checked fp32 ``path`` in place to ``precision`` (a TorchScript file arrives
    already traced at it), and measure on the sample corpus what that costs: how far scores move,
    and how well each sample query's ranking holds."""
    import onnx

    if path.suffix != ".onnx":
        model = None
    elif precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        model = onnx.load(str(path))
        _quantize_first_token_apart(model)
        # Per-channel weights keep rankings far better than per-tensor at no cost in speed. Only
        # MatMul and Attention are quantized: an int8 embedding table saves no time, only memory
        # (36 MB for MiniLM-L6), and costs accuracy (RMS score error to fp32 0.078 -> 0.092).
        # DefaultTensorType: the fused graph's contrib ops defeat shape inference without it.
        # The root-logger advice to "run pre-processing" is about static quantization; it is muted.
        logging.disable(logging.WARNING)
        try:
            quantize_dynamic(
                model,
                path,
                op_types_to_quantize=["MatMul", "Attention"],
                per_channel=True,
                weight_type=QuantType.QInt8,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        finally:
            logging.disable(logging.NOTSET)
        model = onnx.load(str(path))
    else:
        from onnxruntime.transformers.onnx_model import OnnxModel

        fp16 = OnnxModel(onnx.load(str(path)))
        fp16.convert_float_to_float16(keep_io_types=True)  # ids in, fp32 scores out, as before
        model = fp16.model
    if model is not None:
        _keep_used_domains(model)
        onnx.save(model, str(path))

    reduced_model = load_scorer(path, device)
    if settings.runner_slice_rows == 1:  # scored as the runner will serve it: one row per call

        def reduced_score(inputs: list[np.ndarray]) -> np.ndarray:
            rows = []
            for i in range(len(inputs[0])):
                width = int(np.flatnonzero(inputs[1][i]).max()) + 1  # cut to its last real token, as the runner does
                rows.append(reduced_model([array[i : i + 1, :width] for array in inputs]))
            return np.concatenate(rows)

    else:
        reduced_score = reduced_model
    texts = sample_texts()
    fp32, reduced = [], []
    for query in SAMPLE_QUERIES:
        if settings.kind == "cross-encoder":
            encoded = _encode(served_tokenizer, [(query, text) for text in texts], settings)
            fp32.append(fp32_score(encoded)[:, 0])
            reduced.append(reduced_score(encoded)[:, 0])
        else:  # rank the corpus by cosine similarity; the embeddings are L2-normalised
            encoded = _encode(served_tokenizer, [query, *texts], settings)
            for score, out in ((fp32_score, fp32), (reduced_score, reduced)):
                vectors = score(encoded)
                out.append(vectors[1:] @ vectors[0])
    if settings.kind == "cross-encoder":
        max_abs_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(fp32, reduced, strict=True))
    else:
        encoded = _encode(served_tokenizer, texts, settings)
        max_abs_diff = float(np.max(np.abs(fp32_score(encoded) - reduced_score(encoded))))
    report = PrecisionReport(
        precision=precision,
        max_abs_diff=max_abs_diff,
        rank_correlation=float(np.mean([rank_correlation(a, b) for a, b in zip(fp32, reduced, strict=True)])),
        top5_agreement=float(np.mean([top_k_overlap(a, b, 5) for a, b in zip(fp32, reduced, strict=True)])),
        pairs_checked=len(texts) * len(SAMPLE_QUERIES),
    )
    log.info("%s: %s", precision, report)
    return report


def _export_torchscript(wrapper, example, path: Path, device: str) -> None:
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, tuple(torch.from_numpy(a).to(device) for a in example), strict=False)
    traced.save(str(path))


def load_scorer(path: Path, device: str = "cpu"):
    """A function: tokenized inputs -> outputs (float64, one row per input row), for ``model.onnx`` / ``model.pt``
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
                return module(*[torch.from_numpy(a).to(device) for a in inputs]).float().cpu().numpy()

    return lambda inputs: run(inputs).reshape(len(inputs[0]), -1).astype(np.float64)


def _existing_parent(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path.parent


def _install(staging: Path, repository: Path, names: tuple[str, ...]) -> None:
    """Move the checked models into place, replacing what an earlier export of them left."""
    for name in names:
        target = repository / name
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(staging / name), str(target))
