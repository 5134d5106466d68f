"""What one distillation reads, tries and writes: a frozen, checked settings object, so that
``triton-rerank distill`` and ``triton_rerank.distill.distill`` run the same. Each field is one flag."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from triton_rerank.errors import RerankInputError
from triton_rerank.model_sources import DEFAULT_EMBEDDER

# A student's precisions: how the first stage may be served (OpenVINO's int8 is NNCF's static int8,
# calibrated on the collection's own pairs; bf16 needs AVX512-BF16 or AMX).
STUDENT_PRECISIONS = ("int8-openvino", "int8", "bf16", "fp32")


def _help(text: str) -> dict:
    return {"help": text}


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """A distillation run (``triton-rerank distill --help`` says what each field does)."""

    data: Path = field(
        metadata=_help("a BEIR folder (corpus, queries.jsonl, qrels/<split>.tsv), read as `train` reads it")
    )
    model: str = field(metadata=_help("the cross-encoder to make cheaper (BASE): the cascade's last stage, as it is"))
    output: Path = field(metadata=_help("the cascade folder to write; must not exist"))
    split: str = field(default="train", metadata=_help("the BEIR qrels split whose queries judge and calibrate"))
    pseudo_queries: Literal["titles"] | None = field(
        default=None,
        metadata=_help(
            "no judged queries: documents' titles (or first sentences) as queries for their own text "
            "(default: the split's judged queries)"
        ),
    )
    max_pseudo_queries: int = field(default=1000, metadata=_help("documents sampled as pseudo-queries"))
    max_minutes: float = field(default=15.0, metadata=_help("the whole run's budget; students are tried within it"))
    student_precisions: str = field(
        default="int8-openvino",
        metadata=_help(f"how a student may be served, comma-separated, of {', '.join(STUDENT_PRECISIONS)}"),
    )
    student_lengths: str = field(
        default="64,128,full",
        metadata=_help("tokens a student reads per pair, comma-separated (full: as many as BASE)"),
    )
    k: int | None = field(
        default=None,
        metadata=_help(
            "documents of a call that go on to BASE (default: the cheapest on dev that keeps BASE's nDCG@10 "
            "within --tolerance, of 5, 10, 15, 20, 25, 30, 40, 50)"
        ),
    )
    tolerance: float = field(
        default=0.005, metadata=_help("the most dev nDCG@10 the cascade may lose to BASE reading every candidate")
    )
    depth: int = field(
        default=100, metadata=_help("first-stage candidates per dev query, as the cascade will see them")
    )
    dev_fraction: float = field(default=0.5, metadata=_help("the seeded fraction of queries held out as dev"))
    max_dev_queries: int = field(default=50, metadata=_help("at most this many dev queries, each reading --depth"))
    calibration_pairs: int = field(
        default=300, metadata=_help("the other queries' pairs an OpenVINO int8 student is calibrated on")
    )
    embedder_model: str = field(default=DEFAULT_EMBEDDER, metadata=_help("the in-process first stage's bi-encoder"))
    seed: int = field(default=0, metadata=_help("seeds the dev split and the calibration sample"))

    def __post_init__(self) -> None:
        problems = []
        if not self.max_minutes > 0:
            problems.append(f"--max-minutes must be > 0, got {self.max_minutes}")
        for name in ("max_pseudo_queries", "max_dev_queries", "calibration_pairs"):
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
        try:
            self.students()
        except ValueError as err:
            problems.append(str(err))
        if problems:
            raise RerankInputError("; ".join(problems))

    def students(self) -> list[tuple[str, int | None]]:
        """Every (precision, tokens read; None: as many as BASE) to try."""
        precisions = [p.strip() for p in self.student_precisions.split(",") if p.strip()]
        if not precisions or set(precisions) - set(STUDENT_PRECISIONS):
            raise ValueError(f"--student-precisions must name some of {', '.join(STUDENT_PRECISIONS)}")
        lengths = []
        for item in (p.strip() for p in self.student_lengths.split(",") if p.strip()):
            if item != "full" and not (item.isdigit() and int(item) >= 8):
                raise ValueError(f"--student-lengths: {item!r} is neither 'full' nor a token count >= 8")
            lengths.append(None if item == "full" else int(item))
        if not lengths:
            raise ValueError("--student-lengths names none")
        return [(p, n) for p in precisions for n in lengths]

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
