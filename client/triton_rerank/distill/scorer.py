"""A cross-encoder's scores as the server computes them, in process: its export (the fused ONNX
graph at fp32 or int8, or OpenVINO's int8 or bf16) run by the same runtime the server runs, pairs
truncated as served. BASE's scores come from it (within 1e-5 of PyTorch, faster), and so do the dev
figures of each student as it would be served. ONNX Runtime's int8 scores one pair at a time, as
int8 exports serve (a dynamically quantized score would otherwise depend on its batch-mates)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

BATCH = 16
# A student's precision -> (the export's precision, its model format).
SERVED_AS = {
    "fp32": ("fp32", "onnx"),
    "int8": ("int8", "onnx"),
    "int8-openvino": ("int8", "openvino"),
    "bf16": ("bf16", "openvino"),
}


class ExportedScorer:
    """``score(pairs)``: raw scores of ``model`` exported as ``precision`` (a ``SERVED_AS`` key)."""

    def __init__(self, model: str, precision: str = "fp32", calibration: str = "") -> None:
        from tokenizers import Tokenizer

        from triton_rerank.serving.export import export_cross_encoder, load_scorer
        from triton_rerank.serving.layout import CROSS_ENCODER, TOKENIZER, RepositorySettings, weights_file

        exported, model_format = SERVED_AS[precision]
        options = {"calibration": calibration} if calibration else {}
        settings = RepositorySettings(model_format=model_format)
        with tempfile.TemporaryDirectory(prefix="triton-rerank-distill-") as scratch:
            report = export_cross_encoder(model, Path(scratch), settings=settings, precision=exported, **options)
            weights = Path(scratch) / CROSS_ENCODER / "1" / weights_file(report.model_format)
            self._tokenizer = Tokenizer.from_file(str(Path(scratch) / TOKENIZER / "1" / "tokenizer.json"))
            self._score = load_scorer(weights)  # loaded into memory: the folder may go
        self.max_length, self.inputs = report.max_length, report.model_inputs
        self.batch = 1 if precision == "int8" else BATCH

    def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        from triton_rerank.backends.tokenizer_model import encode

        order = np.argsort([len(q) + len(d) for q, d in pairs], kind="stable")
        out = np.empty(len(pairs), dtype=np.float64)
        for start in range(0, len(order), self.batch):
            rows = order[start : start + self.batch]
            out[rows] = self._score(encode(self._tokenizer, [pairs[i] for i in rows], self.inputs))[:, 0]
        return out
