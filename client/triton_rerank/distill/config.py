"""What one distillation reads, learns and writes: a frozen, checked settings object, so that
``triton-rerank distill`` and ``triton_rerank.distill.distill`` run the same. Each field is one flag."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from triton_rerank.errors import RerankInputError
from triton_rerank.model_sources import DEFAULT_EMBEDDER


def _help(text: str) -> dict:
    return {"help": text}


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """A distillation run (``triton-rerank distill --help`` says what each field does)."""

    data: Path = field(
        metadata=_help("a BEIR folder (corpus, queries.jsonl, qrels/<split>.tsv), read as `train` reads it")
    )
    model: str = field(metadata=_help("the cross-encoder to distil (BASE): the cascade's last stage, served as it is"))
    output: Path = field(metadata=_help("the cascade folder to write; must not exist"))
    split: str = field(default="train", metadata=_help("the BEIR qrels split whose queries teach the student"))
    pseudo_queries: Literal["titles"] | None = field(
        default=None,
        metadata=_help(
            "no judged queries: documents' titles (or first sentences) are the queries; BASE's scores are "
            "the labels either way, so qrels only choose the queries (default: the split's queries)"
        ),
    )
    max_pseudo_queries: int = field(default=1000, metadata=_help("documents sampled as pseudo-queries"))
    max_queries: int = field(default=600, metadata=_help("at most this many queries teach (seeded sample)"))
    max_minutes: float = field(
        default=15.0, metadata=_help("the whole run's budget: teacher scoring, training and the dev check")
    )
    max_steps: int | None = field(default=None, metadata=_help("also a budget in training steps (default: time alone)"))
    layers: int = field(default=2, metadata=_help("the student: BASE's first LAYERS layers and its head, distilled"))
    student_precision: Literal["fp32", "int8"] = field(
        default="int8", metadata=_help("what the student is served at (int8 where the dev check says it holds)")
    )
    k: int | None = field(
        default=None,
        metadata=_help(
            "documents of a call that go on to BASE (default: the fewest on dev that keep BASE's nDCG@10 "
            "within --tolerance, of 10, 15, 20, 25, 30, 40, 50)"
        ),
    )
    tolerance: float = field(
        default=0.005, metadata=_help("the most dev nDCG@10 the cascade may lose to BASE reading all candidates")
    )
    depth: int = field(default=100, metadata=_help("first-stage candidates per query, as the cascade will see them"))
    pairs_per_query: int = field(
        default=16, metadata=_help("candidates scored per teaching query: half the first stage's best, half the rest")
    )
    dev_fraction: float = field(default=0.2, metadata=_help("the seeded fraction of queries held out as dev"))
    max_dev_queries: int = field(default=60, metadata=_help("at most this many dev queries, each reading --depth"))
    batch_size: int = field(default=32, metadata=_help("pairs per training step"))
    learning_rate: float = field(default=1e-4, metadata=_help("peak learning rate of the student"))
    embedder_model: str = field(default=DEFAULT_EMBEDDER, metadata=_help("the in-process first stage's bi-encoder"))
    seed: int = field(default=0, metadata=_help("seeds the dev split, the sampling and the training"))

    def __post_init__(self) -> None:
        problems = []
        if not self.max_minutes > 0:
            problems.append(f"--max-minutes must be > 0, got {self.max_minutes}")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"--max-steps must be >= 1, got {self.max_steps}")
        for name in ("layers", "max_queries", "max_pseudo_queries", "pairs_per_query", "max_dev_queries",
                     "batch_size"):  # fmt: skip
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.depth < 10:
            problems.append(f"--depth must be >= 10 (nDCG@10 reads 10), got {self.depth}")
        if self.k is not None and not 1 <= self.k <= self.depth:
            problems.append(f"--k must be from 1 to --depth ({self.depth}), got {self.k}")
        if not 0 < self.dev_fraction < 1:
            problems.append(f"--dev-fraction must be in (0, 1), got {self.dev_fraction}")
        if not 0 <= self.tolerance < 1:
            problems.append(f"--tolerance must be in [0, 1), got {self.tolerance}")
        if not 0 < self.learning_rate < 1:
            problems.append(f"--learning-rate must be in (0, 1), got {self.learning_rate}")
        if problems:
            raise RerankInputError("; ".join(problems))

    def reading(self):
        """The ``TrainConfig`` that reads the same data as ``train`` would (its data fields only)."""
        from triton_rerank.training.config import TrainConfig

        return TrainConfig(
            data=self.data,
            model=self.model,
            output=self.output,
            split=self.split,
            pseudo_queries=self.pseudo_queries,
            max_pseudo_queries=self.max_pseudo_queries,
            dev_fraction=self.dev_fraction,
            max_dev_queries=self.max_dev_queries,
            seed=self.seed,
        )
