"""How a model is exported: its arithmetic and how strictly it is checked (the serving side of an
export is ``repository.RepositorySettings``). The ``export`` command's flags come from these fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PRECISIONS = ("fp32", "int8", "fp16")
Precision = Literal["fp32", "int8", "fp16"]
DEFAULT_TOLERANCE = 1e-4
# A reduced precision must keep at least this rank correlation with fp32 on the sample queries;
# a broken conversion lands near 0, a sound int8 model near 0.98.
DEFAULT_MIN_RANK_CORRELATION = 0.9


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    precision: Precision = field(
        default="fp32",
        metadata={"help": "arithmetic: int8 (ONNX dynamic quantization) for CPUs; fp16 for GPUs (ONNX, or "
                  "TorchScript traced on the GPU)"},
    )  # fmt: skip
    optimize: bool = field(default=True, metadata={"help": "apply ONNX Runtime's transformer graph fusions"})
    tolerance: float = field(
        default=DEFAULT_TOLERANCE, metadata={"help": "largest |score difference| to PyTorch that passes the check"}
    )
    min_rank_correlation: float = field(
        default=DEFAULT_MIN_RANK_CORRELATION,
        metadata={"help": "least rank correlation with fp32 an int8/fp16 export must keep"},
    )
