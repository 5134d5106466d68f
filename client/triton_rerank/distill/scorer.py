"""A cross-encoder's scores as the server computes them, in process: its export (the fused ONNX
graph, fp32 or int8) in ONNX Runtime, pairs truncated as served. BASE's labels come from it (within
1e-5 of PyTorch, about three times PyTorch's speed here), and so do the dev figures of the student
as it will be served. int8 scores one pair at a time, as int8 exports serve (a dynamically quantized
score would otherwise depend on its batch-mates)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

BATCH = 16


class ExportedScorer:
    """``score(pairs)``: raw scores of ``model`` exported at ``precision``."""

    def __init__(self, model: str, precision: str = "fp32") -> None:
        from tokenizers import Tokenizer

        from triton_rerank.serving.export import export_cross_encoder, load_scorer
        from triton_rerank.serving.layout import TOKENIZER

        with tempfile.TemporaryDirectory(prefix="triton-rerank-distill-") as scratch:
            report = export_cross_encoder(model, Path(scratch), precision=precision)
            weights = Path(scratch) / "cross_encoder" / "1" / "model.onnx"
            self._tokenizer = Tokenizer.from_file(str(Path(scratch) / TOKENIZER / "1" / "tokenizer.json"))
            self._score = load_scorer(weights)  # loaded into memory: the folder may go
        self.max_length, self.inputs = report.max_length, report.model_inputs
        self.batch = 1 if precision == "int8" else BATCH
        self.export_diff = report.max_abs_diff

    def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        from triton_rerank.backends.tokenizer_model import encode

        order = np.argsort([len(q) + len(d) for q, d in pairs], kind="stable")
        out = np.empty(len(pairs), dtype=np.float64)
        for start in range(0, len(order), self.batch):
            rows = order[start : start + self.batch]
            out[rows] = self._score(encode(self._tokenizer, [pairs[i] for i in rows], self.inputs))[:, 0]
        return out
