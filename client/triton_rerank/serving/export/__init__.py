"""Export Hugging Face models into a Triton model repository, and prove each export.

``export_cross_encoder`` writes the ``reranker`` family (``tokenizer``, ``cross_encoder``,
``reranker``), ``export_bi_encoder`` the ``embedder`` family, each replacing only its own models.
Before anything is written the exported file scores sample inputs, tokenized as the server will,
and the result is compared with sentence-transformers in PyTorch; above the tolerance
``ExportCheckError`` is raised and the repository is left as it was. By concern:

    models.py     the two kinds of model and their in-process references; is_exported / ensure_exported
    checked.py    staging, the check against PyTorch, and the install (write_checked)
    graphs.py     ONNX graph (fused) or TorchScript trace, and an in-process scorer for either
    precision.py  int8 / fp16 from the checked fp32 graph, and what it costs
    (ExportOptions, the precision and how strictly an export is checked, is ../export_options.py:
    the command line reads it without importing torch)

Needs the ``export`` extra (torch, transformers, sentence-transformers, onnx, onnxruntime).
"""

try:
    import onnx  # noqa: F401
    import sentence_transformers  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError(f"exporting needs the 'export' extra: pip install 'triton-rerank[export]' ({err})") from err

from triton_rerank.serving.export.checked import ExportCheckError, ExportError, ExportReport
from triton_rerank.serving.export.graphs import load_scorer
from triton_rerank.serving.export.models import (
    ensure_exported,
    export_bi_encoder,
    export_cross_encoder,
    export_model,
    is_exported,
    reference_reranker,
)
from triton_rerank.serving.export.precision import PrecisionReport
from triton_rerank.serving.export_options import ExportOptions

__all__ = [
    "ExportCheckError",
    "ExportError",
    "ExportOptions",
    "ExportReport",
    "PrecisionReport",
    "ensure_exported",
    "export_bi_encoder",
    "export_cross_encoder",
    "export_model",
    "is_exported",
    "load_scorer",
    "reference_reranker",
]
