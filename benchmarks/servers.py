"""The served variants a benchmark compares: exports of one model, each on its own embedded
server, and copies of a repository with one config lever changed. (The rerank API in front of one:
``benchmarks.api_process.ApiProcess``.)"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Served:
    name: str
    repository: Path
    server: object = None  # EmbeddedTritonServer

    def start(self, **server_settings) -> Served:
        from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

        self.server = EmbeddedTritonServer(self.repository, free_port_settings(**server_settings)).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def url(self, protocol: str) -> str:
        return self.server.grpc_url if protocol == "grpc" else self.server.http_url


# Export variants by name: (precision, model format).
EXPORTS = {
    "fp32": ("fp32", "onnx"),
    "int8": ("int8", "onnx"),
    "bf16": ("bf16", "openvino"),
    "int8-openvino": ("int8", "openvino"),
}


def export_repositories(model: Path, work: Path, variants=("fp32", "int8")) -> dict[str, Path]:
    """Exports of ``model``, one per name in ``variants`` (``EXPORTS``), kept in ``work`` and reused
    when the model is the same."""
    from triton_rerank.serving.export import ensure_exported
    from triton_rerank.serving.layout import RepositorySettings

    repositories = {}
    for variant in variants:
        precision, model_format = EXPORTS[variant]
        repository = work / f"repository-{variant}"
        settings = RepositorySettings(model_format=model_format)
        report = ensure_exported(repository, str(model), "cross-encoder", settings=settings, precision=precision)
        if report is not None:
            reduced = report.reduced_precision
            extra = f"; vs fp32 rank correlation {reduced.rank_correlation:.4f}" if reduced else ""
            print(f"exported {variant}: |ONNX fp32 - PyTorch| {report.max_abs_diff:.1e}{extra}", flush=True)
        repositories[variant] = repository
    return repositories


def lever_repository(source: Path, target: Path, edit: Callable) -> Path:
    """A copy of ``source`` whose tokenizer, cross_encoder and reranker configs ``edit(name, config)`` changes."""
    from triton_rerank.serving.repository import load_config, to_pbtxt

    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    for name in ("tokenizer", "cross_encoder", "reranker"):
        path = target / name / "config.pbtxt"
        config = load_config(path)
        edit(name, config)
        path.write_text(to_pbtxt(config))
    return target
