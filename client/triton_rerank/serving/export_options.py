"""How a model is exported: its arithmetic and how strictly it is checked (the serving side of an
export is ``repository.RepositorySettings``). The ``export`` command's flags come from these fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PRECISIONS = ("fp32", "int8", "fp16", "bf16")
Precision = Literal["fp32", "int8", "fp16", "bf16"]
DEFAULT_TOLERANCE = 1e-4
# A reduced precision must keep at least this rank correlation with fp32 on the sample queries;
# a broken conversion lands near 0, a sound int8 model near 0.98. bf16 is sold as near-exact, so
# its bar is higher: a sound bf16 export keeps ~0.998 on the sample's 16 documents a query, where
# one swap of two near-tied neighbours already costs 0.003. (The near-exact tier's own bar, 0.999
# and the same top 10 over DL19's 100 documents a query, is the benchmark's: docs/precision-tiers.md.)
DEFAULT_MIN_RANK_CORRELATION = 0.9
MIN_RANK_CORRELATION = {"bf16": 0.99}


def served_format(model_format: str, precision: str) -> str:
    """The format an export of ``precision`` is served in: bf16 runs in OpenVINO (its IR, with
    bf16 inference on CPUs that have AVX512-BF16 or AMX); the others in the format asked."""
    return "openvino" if precision == "bf16" else model_format


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    precision: Precision = field(
        default="fp32",
        metadata={"help": "arithmetic: int8 for CPUs (ONNX Runtime's dynamic quantization; with --model-format "
                  "openvino, NNCF's static int8, calibrated); bf16 (OpenVINO) for CPUs with AVX512-BF16 or AMX, "
                  "near-exact; fp16 for GPUs (ONNX, or TorchScript traced on the GPU)"},
    )  # fmt: skip
    optimize: bool = field(default=True, metadata={"help": "apply ONNX Runtime's transformer graph fusions"})
    calibration: str = field(
        default="",
        metadata={"help": "NNCF int8's calibration pairs: a JSON-lines file of {\"query\", \"document\"} (default: "
                  "the built-in sample pairs)"},
    )  # fmt: skip
    tolerance: float = field(
        default=DEFAULT_TOLERANCE, metadata={"help": "largest |score difference| to PyTorch that passes the check"}
    )
    min_rank_correlation: float | None = field(
        default=None,
        metadata={"help": f"least rank correlation with fp32 a reduced-precision export must keep (default: "
                  f"{DEFAULT_MIN_RANK_CORRELATION}; bf16 {MIN_RANK_CORRELATION['bf16']})"},
    )  # fmt: skip

    @property
    def rank_correlation_bar(self) -> float:
        if self.min_rank_correlation is not None:
            return self.min_rank_correlation
        return MIN_RANK_CORRELATION.get(self.precision, DEFAULT_MIN_RANK_CORRELATION)
