"""What one evaluation reads, serves and compares: a frozen, checked settings object, so that the
evaluation runs the same from the command line and from Python."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from triton_rerank.first_stage import DEFAULT_RRF_K, DEFAULT_WEIGHTS, FirstStage
from triton_rerank.model_sources import DEFAULT_EMBEDDER, DEFAULT_RERANKER

CASCADE_NAME = "cascade"  # the second reranker's ensemble in the evaluation's repository


@dataclass(frozen=True, kw_only=True)
class EvaluationConfig:
    """An evaluation of ``data``'s ``split`` (``triton-rerank evaluate --help`` says what each does)."""

    data: Path
    split: str = "test"
    reranker_model: str = DEFAULT_RERANKER
    reranker_kind: str = "cross-encoder"
    embedder_model: str = DEFAULT_EMBEDDER
    precision: str = "fp32"
    model_format: str = "onnx"
    instruction: str | None = None
    cascade_model: str | None = None
    cascade_kind: str = "cross-encoder"
    cascade_precision: str = "fp32"
    cascade_k: int = 20
    repository: Path = Path("generated/model_repository")
    triton_url: str | None = None  # None: export into ``repository`` and start the embedded server
    milvus_uri: str | None = None  # None: a temporary Milvus Lite file
    milvus_token: str | None = field(default=None, repr=False)
    milvus_ca_file: str | None = None
    index: str = "HNSW"
    first_stage: Sequence[str] = ("auto",)  # each evaluated, then reranked, on the same queries; auto: as search
    fusion: Sequence[str] = (FirstStage.fusion,)  # how hybrid fuses its legs (triton_rerank.first_stage): one each
    rrf_k: int = DEFAULT_RRF_K
    weights: tuple[float, float] | None = None
    leg_k: int | None = None
    retrieve_k: int = 100
    max_queries: int | None = None
    no_reference: bool = False
    rerank_data: Path | None = None
    long_documents: Sequence[str] = ("first",)
    out: Path = Path("generated/evaluation.json")

    def __post_init__(self) -> None:
        self.first_stages()  # a bad first stage or fusion setting fails here, before anything is served
        if len(self.first_stage) > 1 and (
            self.cascade_model or self.rerank_data or list(self.long_documents) != ["first"]
        ):
            raise ValueError(
                "several --first-stage values compare first stages, each reranked once: leave out --cascade-model, "
                "--rerank-data and --long-documents"
            )
        if self.cascade_model and not 10 <= self.cascade_k <= self.retrieve_k:
            raise ValueError(f"--cascade-k must be from 10 (nDCG@10 reads 10) to --retrieve-k, got {self.cascade_k}")
        if self.cascade_model and self.rerank_data:
            raise ValueError("--cascade-model reranks the collection's own texts: leave out --rerank-data")

    def first_stages(self) -> list[FirstStage]:
        """The first stages to evaluate, in the order given; the fusion settings go to hybrid."""
        for names, flag in ((self.first_stage, "--first-stage"), (self.fusion, "--fusion")):
            if len(set(names)) != len(names) or not names:
                raise ValueError(f"{flag} names each once, got {list(names)}")
        stages = []
        for kind in self.first_stage:
            if kind not in ("hybrid", "auto"):
                stages.append(FirstStage(kind))
                continue
            for fusion in self.fusion:
                weights = self.weights if fusion in DEFAULT_WEIGHTS else None
                stages.append(FirstStage(kind, fusion=fusion, rrf_k=self.rrf_k, weights=weights, leg_k=self.leg_k))
        return stages

    def open_store(self, uri: str):
        """The evaluation's Milvus collection at ``uri``."""
        from triton_rerank.store import MilvusStore

        return MilvusStore(
            uri, token=self.milvus_token, ca_file=self.milvus_ca_file, collection="evaluation", index=self.index
        )
