"""Reduced precision from a checked fp32 graph, and what it costs: int8 (ONNX Runtime's dynamic
quantization, per-channel weights: about twice as fast on CPUs with VNNI), bf16 (the graph in
OpenVINO, which runs it in bfloat16 on CPUs with AVX512-BF16 or AMX: near-exact, and faster than
int8 here) or fp16 (for GPUs).
The cost is measured on the built-in sample corpus: the largest score difference to fp32 and how
well each sample query's ranking holds."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from triton_rerank.backends.runner_model import bf16_missing, length_slices, score_in_slices
from triton_rerank.backends.tokenizer_model import Prompt, encode
from triton_rerank.metrics import rank_correlation, top_k_overlap
from triton_rerank.samples import SAMPLE_QUERIES, sample_texts
from triton_rerank.serving import layout
from triton_rerank.serving.export.graphs import (
    PROTOBUF_LIMIT,
    graph_files,
    keep_used_domains,
    load_scorer,
    remove_graph,
    save_graph,
)
from triton_rerank.serving.export_options import served_format

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrecisionReport:
    """What a reduced precision costs against the fp32 export, on the built-in sample corpus."""

    precision: str
    max_abs_diff: float  # largest |score - fp32 score| (embedding component for a bi-encoder)
    rank_correlation: float  # Spearman correlation with fp32's scores, averaged over the sample queries
    top5_agreement: float  # share of fp32's top 5 documents kept in the top 5, averaged over the queries
    pairs_checked: int


def settings_for_precision(settings: layout.RepositorySettings, precision: str) -> layout.RepositorySettings:
    """int8 runs row by row in the embedded runner unless asked otherwise: dynamic quantization
    takes one activation scale per tensor, so in a batch each score would depend on its batch-mates;
    one row per call keeps every score the pair's own, at almost no cost (no padding at all).
    Its threads then take rows of their own rather than splitting each row's small operators, which
    are too small to split between cores (docs/performance.md has the measurements). OpenVINO's
    static int8 keeps slices of 8 rows, each thread taking its own: 11% more pairs/s at 1 client and
    21% at 4 than splitting each slice's operators, on 2 cores (docs/precision-tiers.md). bf16 does
    the same: 1% / 3% more on idle cores, 22% more while a test suite shared them."""
    if precision == "bf16":
        settings = settings.replace(model_format=served_format(settings.model_format, precision), bf16=True)
    elif precision != "int8":
        return settings
    elif settings.model_format != "openvino":  # OpenVINO's static int8 batches as fp32 does
        rows = 1 if settings.runner_slice_rows is None else settings.runner_slice_rows
        settings = settings.replace(runner_slice_rows=rows)
    return settings.replace(runner_parallelism=settings.runner_parallelism or "slices")


_FFN_MATMUL = re.compile(r"layer\.(\d+)/(intermediate|output)/dense/MatMul$")


def quantize_first_token_apart(model) -> None:
    """Rewrite the feed-forward MatMuls of the first half of the layers, ``X·W``, as
    ``Concat(X[:, :1]·W, X[:, 1:]·W)`` along the sequence, so that dynamic quantization gives the
    first token its own activation scale.

    Dynamic quantization takes one activation scale per tensor, and in BERT-style models the first
    token ([CLS], which the score is read from) carries by far the largest feed-forward activations,
    widest in the early layers, where int8's error starts: with one scale every other token would be
    rounded that much coarser. Keeping that row in fp32 instead was no better and slower (its fp32
    weights are read for one row); splitting every layer bought little more for twice the cost.
    Node names are those of the Hugging Face BERT family's ONNX export; a graph without them is
    left whole. docs/int8.md tells how this was found and what it measured."""
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


def convert_onnx(path: Path, precision: str) -> None:
    """Rewrite the checked fp32 graph at ``path`` in place at ``precision`` (int8 or fp16)."""
    import onnx

    replacing = graph_files(path)
    model = onnx.load(str(path))
    large = sum(tensor.ByteSize() for tensor in model.graph.initializer) > PROTOBUF_LIMIT
    if precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_first_token_apart(model)
        # Per-channel weights keep rankings far better than per-tensor at no cost in speed. Only
        # MatMul and Attention are quantized: an int8 embedding table saves memory, not time, and
        # costs accuracy. DefaultTensorType: the fused graph's contrib ops defeat shape inference
        # without it. reduce_range: 7-bit weights, so that a score is the same on every x86 CPU. Without
        # VNNI (AVX2, AVX-512 before Cascade Lake, AMD before Zen 4) ONNX Runtime's u8 x s8 kernels add
        # pairs of products in 16 bits, which saturate on 8-bit weights (a random-weight model's
        # ranking fell to a rank correlation of 0.71 on such a CPU); see docs/int8.md.
        quantize_dynamic(
            model,
            path,
            op_types_to_quantize=["MatMul", "Attention"],
            per_channel=True,
            reduce_range=True,
            weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            use_external_data_format=large,
        )
        model = onnx.load(str(path))
        replacing += graph_files(path)
    else:
        from onnxruntime.transformers.onnx_model import OnnxModel

        fp16 = OnnxModel(model)
        fp16.convert_float_to_float16(keep_io_types=True)  # ids in, fp32 scores out, as before
        model = fp16.model
    keep_used_domains(model)
    save_graph(model, path, replacing)


def bf16_support() -> str:
    """Why this machine cannot run bf16 ("" when it can): OpenVINO runs bfloat16 only on CPUs with
    native instructions for it (AVX512-BF16 or AMX), and would fall back to fp32 without a word."""
    try:
        import openvino as ov
    except ImportError as err:
        return f"bf16 runs in OpenVINO, which is not installed: pip install 'triton-rerank[serve]' ({err})"
    missing = bf16_missing(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    return f"bf16 cannot be exported here: {missing}" if missing else ""


def convert_openvino(onnx_path: Path, precision: str, calibration: list[list[np.ndarray]] = ()) -> Path:
    """The checked fp32 ONNX graph at ``onnx_path`` as OpenVINO IR beside it (``model.xml`` and
    ``model.bin``); the ONNX file is removed. bf16 keeps fp32 weights (the runtime computes in
    bf16); int8 is NNCF's static post-training quantization, its activation scales taken from the
    ``calibration`` batches (tokenized rows, as the runner slices them), with the transformer
    preset, which keeps softmax, layer norms and the like out of int8."""
    import openvino as ov

    target = onnx_path.with_name(layout.OPENVINO_FILE)
    model = ov.convert_model(str(onnx_path))
    if precision == "int8":
        import nncf

        names = [port.get_any_name() for port in model.inputs]
        batches = [dict(zip(names, batch, strict=True)) for batch in calibration]
        model = nncf.quantize(
            model,
            nncf.Dataset(batches),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(batches),
            # 7-bit weights in every layer (NNCF's default fixes the first only): without VNNI the
            # CPU's int8 dot products saturate on 8-bit weights (see convert_onnx, docs/int8.md).
            advanced_parameters=nncf.AdvancedQuantizationParameters(overflow_fix=nncf.OverflowFix.ENABLE),
        )
    # compress_to_fp16=False: fp16 weights would round them once more before bf16 does.
    ov.save_model(model, str(target), compress_to_fp16=False)
    remove_graph(onnx_path)
    return target


def calibration_id(path: str = "") -> str:
    """What an NNCF int8 export was calibrated on, as its export.json records it: the built-in
    sample pairs, or the SHA-256 of the pairs file (so that new pairs make a new export)."""
    import hashlib

    return f"sha256:{hashlib.sha256(Path(path).read_bytes()).hexdigest()}" if path else "built-in sample pairs"


def builtin_calibration_pairs() -> list[tuple[str, str]]:
    """The pairs NNCF calibrates on when the user gives none: every sample query with every sample text."""
    return [(query, text) for query in SAMPLE_QUERIES for text in sample_texts()]


def calibration_batches(tokenizer, settings, path: str = "", slice_rows: int = 8) -> list[list[np.ndarray]]:
    """NNCF's calibration data: the pairs in ``path`` (JSON lines of query and document) or the
    built-in sample pairs, tokenized as the server will and cut into the runner's slices."""
    import json

    if path:
        rows = []
        for number, line in enumerate(Path(path).read_text().splitlines(), 1):
            try:
                row = json.loads(line)
                rows.append((row["query"], row["document"]))
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(
                    f"{path} line {number}: a calibration pair is a JSON object with 'query' and 'document' ({err!r})"
                ) from None
        if not rows:
            raise ValueError(f"{path} holds no calibration pairs")
    else:
        rows = builtin_calibration_pairs()
    encoded = encode(tokenizer, _as_served(settings, rows), settings.model_inputs)
    return [batch for _, batch in length_slices(encoded, slice_rows)]


def _as_served(settings, rows: list[tuple[str, str]]) -> list:
    """(query, document) rows as the tokenizer step reads them: as they are, or in the LLM's prompt."""
    if not settings.prompt_template:
        return rows
    prompt = Prompt(settings.prompt_template, settings.instruction)
    return [prompt.render(*row) for row in rows]


def measure(path: Path, precision: str, fp32_score, tokenizer, settings, device: str = "cpu") -> PrecisionReport:
    """What the reduced-precision file at ``path`` costs against ``fp32_score`` on the sample
    corpus, scored as the runner will serve it (in slices of ``runner_slice_rows``)."""
    reduced_model = load_scorer(path, device)
    slice_rows = settings.runner_slice_rows or 0

    def reduced_score(inputs: list[np.ndarray]) -> np.ndarray:
        return score_in_slices(reduced_model, inputs, slice_rows)

    texts = sample_texts()
    fp32, reduced = [], []
    for query in SAMPLE_QUERIES:
        if settings.kind != "bi-encoder":
            encoded = encode(tokenizer, _as_served(settings, [(query, text) for text in texts]), settings.model_inputs)
            fp32.append(fp32_score(encoded)[:, 0])
            reduced.append(reduced_score(encoded)[:, 0])
        else:  # rank the corpus by cosine similarity; the embeddings are L2-normalised
            encoded = encode(tokenizer, [query, *texts], settings.model_inputs)
            for score, out in ((fp32_score, fp32), (reduced_score, reduced)):
                vectors = score(encoded)
                out.append(vectors[1:] @ vectors[0])
    if settings.kind != "bi-encoder":
        max_abs_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(fp32, reduced, strict=True))
    else:
        encoded = encode(tokenizer, texts, settings.model_inputs)
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
