"""What one training run reads, mines, trains and writes: a frozen, checked settings object, so that
``triton-rerank train`` and ``triton_rerank.training.train`` run the same. Each field is one flag
(``flags.add_flags``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from triton_rerank.errors import RerankInputError
from triton_rerank.model_sources import DEFAULT_EMBEDDER


def _help(text: str) -> dict:
    return {"help": text}


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """A fine-tuning run (``triton-rerank train --help`` says what each field does)."""

    data: Path = field(
        metadata=_help(
            "a BEIR folder (corpus, queries.jsonl, qrels/<split>.tsv) or a JSONL file of "
            '{"query", "positives": [...], "negatives": [...]}'
        )
    )
    model: str = field(
        metadata=_help(
            "a cross-encoder to continue from, or a plain encoder (BERT, RoBERTa, XLM-R, "
            "...) that gets a new one-logit head"
        )
    )
    output: Path = field(metadata=_help("the folder to write the trained CrossEncoder into; must not exist"))
    split: str = field(default="train", metadata=_help("the BEIR qrels split to train on"))
    skip_unknown_documents: bool = field(
        default=False,
        metadata=_help(
            "train without qrels rows naming documents the corpus lacks (a corpus that is a pool of a "
            "larger one); without it they are an error"
        ),
    )
    dev_split: str | None = field(
        default=None, metadata=_help("a BEIR qrels split to choose checkpoints on (default: --dev-fraction of --split)")
    )
    dev_fraction: float = field(default=0.1, metadata=_help("the seeded fraction of training queries held out as dev"))
    max_dev_queries: int = field(
        default=100,
        metadata=_help(
            "at most this many dev queries (seeded; from --dev-fraction the rest train): each dev evaluation "
            "reranks dev queries x --dev-depth pairs, so a large split would spend the budget on evaluations"
        ),
    )
    pseudo_queries: Literal["titles"] | None = field(
        default=None,
        metadata=_help(
            "no labels: train on documents' titles (or first sentences) as queries for their own text; "
            "qrels are not read (default: off)"
        ),
    )
    max_pseudo_queries: int = field(default=2000, metadata=_help("documents sampled as pseudo-queries"))
    mix_pseudo_queries: Literal["auto", "titles", "none"] = field(
        default="auto",
        metadata=_help(
            "with labels, train on --max-pseudo-queries documents' titles as queries for their own text "
            "beside them, which gives a new head its start (auto: titles from a plain encoder on a BEIR "
            "folder, none from a cross-encoder)"
        ),
    )
    max_minutes: float = field(
        default=15.0, metadata=_help("the training budget; the learning-rate schedule ends with it")
    )
    max_steps: int | None = field(
        default=None,
        metadata=_help(
            "also a budget in steps: training ends at whichever of it and --max-minutes comes first, so that a "
            "run takes the same steps on any machine (default: the time budget alone)"
        ),
    )
    loss: Literal["bce", "lambda"] = field(
        default="bce",
        metadata=_help(
            "bce: binary cross-entropy on pairs with pos_weight = negatives per positive; lambda: "
            "LambdaLoss on each positive's list (see docs/training.md)"
        ),
    )
    hard_negatives: int = field(default=5, metadata=_help("first-stage negatives per positive, fresh each epoch"))
    random_negatives: int = field(default=1, metadata=_help("random corpus negatives per positive"))
    mining_depth: int = field(default=30, metadata=_help("first-stage candidates hard negatives are drawn from"))
    relative_margin: float = field(
        default=0.05,
        metadata=_help(
            "guard against unjudged positives: a mined negative's first-stage score must be at most "
            "(1 - margin) x its positive's"
        ),
    )
    dev_depth: int = field(default=30, metadata=_help("first-stage candidates reranked on dev"))
    evaluations: int = field(default=4, metadata=_help("dev evaluations during training, evenly over the budget"))
    blend: bool = field(
        default=True,
        metadata=_help(
            "choose on dev a weight to blend the reranker's score with the first stage's (z-scored); "
            "kept only where it measures better"
        ),
    )
    learning_rate: float | None = field(
        default=None, metadata=_help("peak learning rate (default: 2e-5 from a cross-encoder, 7e-5 from an encoder)")
    )
    batch_size: int = field(default=16, metadata=_help("pairs per step (bce) or lists per step (lambda)"))
    max_length: int = field(default=256, metadata=_help("tokens a pair is truncated to in training"))
    embedder_model: str = field(
        default=DEFAULT_EMBEDDER, metadata=_help("the in-process first stage's bi-encoder (no --milvus-uri)")
    )
    milvus_uri: str | None = field(
        default=None, metadata=_help("mine from this Milvus collection (ingest's), through --triton-url's embedder")
    )
    milvus_token: str | None = field(default=None, repr=False, metadata={"cli": False})
    milvus_ca_file: str | None = field(default=None, metadata={"cli": False})
    collection: str = field(default="documents", metadata=_help("the Milvus collection to mine from"))
    first_stage: Literal["auto", "dense", "bm25", "hybrid"] = field(
        default="auto",
        metadata=_help(
            "how --milvus-uri's collection is searched for negatives and dev candidates: as the pipeline "
            "searches it (auto: hybrid where the collection has BM25, else dense); without --milvus-uri, dense"
        ),
    )
    fusion: Literal["relative", "rrf", "weighted"] = field(
        default="relative", metadata=_help("how a hybrid first stage fuses its legs, as `search --fusion`")
    )
    triton_url: str | None = field(default=None, metadata=_help("the Triton serving the embedder for --milvus-uri"))
    seed: int = field(default=0, metadata=_help("seeds the dev split, the sampling and the trainer"))
    force: bool = field(default=False, metadata=_help("write the model even when it does not beat the base on dev"))

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.dev_fraction < 1:
            problems.append(f"--dev-fraction must be in (0, 1), got {self.dev_fraction}")
        if not self.max_minutes > 0:
            problems.append(f"--max-minutes must be > 0, got {self.max_minutes}")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"--max-steps must be >= 1, got {self.max_steps}")
        for name in ("hard_negatives", "random_negatives"):
            if getattr(self, name) < 0:
                problems.append(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.hard_negatives + self.random_negatives < 1:
            problems.append("a positive needs at least one negative: raise --hard-negatives or --random-negatives")
        counts = ("mining_depth", "dev_depth", "evaluations", "batch_size", "max_length", "max_pseudo_queries")
        for name in (*counts, "max_dev_queries"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.dev_depth < 10:
            problems.append(f"--dev-depth must be >= 10 (nDCG@10 reads 10), got {self.dev_depth}")
        if not 0 <= self.relative_margin < 1:
            problems.append(f"--relative-margin must be in [0, 1), got {self.relative_margin}")
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            problems.append(f"--learning-rate must be in (0, 1), got {self.learning_rate}")
        if self.milvus_uri and not self.triton_url:
            problems.append("--milvus-uri mines through the served embedder: name it with --triton-url")
        problems.extend(self._first_stage_problems())
        if self.pseudo_queries and self.mix_pseudo_queries == "titles":
            problems.append("--pseudo-queries trains on titles alone: leave out --mix-pseudo-queries")
        if self.pseudo_queries and self.dev_split:
            problems.append("--pseudo-queries reads no qrels: leave out --dev-split")
        if problems:
            raise RerankInputError("; ".join(problems))

    def _first_stage_problems(self) -> list[str]:
        if not self.milvus_uri:
            if self.first_stage in ("auto", "dense") and self.fusion == "relative":
                return []
            return [
                "--first-stage and --fusion choose how --milvus-uri's collection is searched; without one, "
                "the data's corpus is searched in-process, dense"
            ]
        try:
            self.search_stage()
        except RerankInputError as err:
            return [str(err)]
        return []

    def search_stage(self):
        """The ``FirstStage`` that --first-stage and --fusion name (``auto`` resolved against the collection)."""
        from triton_rerank.first_stage import FirstStage

        return FirstStage(self.first_stage, self.fusion)
