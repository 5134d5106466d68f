"""Negatives for training: the user's own first stage's near misses (hard negatives), guarded
against the unjudged true positives among them, and random documents beside them.

The guard is sentence-transformers' ``relative_margin`` (its docs recommend 0.05): a first-stage
hit may serve as a negative for a positive only if the embedder scores it at most ``(1 - margin)``
times that positive (cosine, whichever first stage found the hit: a BM25 or fused score exists only
for what a search returned, and a judged positive may not be among it). Hits that score as high as
a judged positive are the likeliest unjudged positives, and training them down teaches the model to
miss relevant documents. Judged negatives (grade 0) are always kept: someone looked at them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from triton_rerank.training.data import TrainingData, TrainingDataError
from triton_rerank.training.first_stage import FirstStage, Hits


@dataclass
class MiningReport:
    """What the guard did: counts over every (query, positive) pair."""

    positives: int = 0
    candidates: int = 0  # first-stage hits looked at, one per pair and hit
    judged_positive: int = 0  # hits that are a judged positive of the query: never negatives
    over_margin: int = 0  # hits the margin kept out
    hard: int = 0  # hits left as hard negatives
    judged_negative: int = 0  # grade-0 judgments, always negatives
    seconds: float = 0.0
    by_query: dict = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "by_query"}


def first_stage_hits(data: TrainingData, first_stage: FirstStage, depth: int) -> dict[str, Hits]:
    """The first stage's top ``depth`` for every query of ``data``."""
    ids = list(data.queries)
    return dict(zip(ids, first_stage.search([data.queries[q] for q in ids], depth), strict=True))


def negative_pools(
    data: TrainingData, hits: dict[str, Hits], first_stage: FirstStage, depth: int, margin: float
) -> tuple[dict[tuple[str, str], list[str]], MiningReport]:
    """{(query, positive): the documents it may be trained against}, judged negatives first."""
    report, pools = MiningReport(), {}
    for query, judged in data.judgments.items():
        positives = [d for d, g in judged.items() if g > 0]
        positive_texts = {data.corpus[d] for d in positives}
        judged_negatives = [d for d, g in judged.items() if g == 0]
        candidates = [doc for doc, _ in hits[query][:depth] if doc in data.corpus]  # else nothing to read:
        # the title pseudo-queries' corpus lacks the documents that are all title
        scores = first_stage.scores(data.queries[query], positives + candidates)
        for positive in positives:
            threshold = scores[positive] - margin * abs(scores[positive])
            pool = list(judged_negatives)
            for doc in candidates:
                report.candidates += 1
                if doc in judged or data.corpus[doc] in positive_texts:
                    report.judged_positive += doc not in judged_negatives
                elif scores[doc] > threshold:
                    report.over_margin += 1
                else:
                    pool.append(doc)
                    report.hard += 1
            report.positives += 1
            report.judged_negative += len(judged_negatives)
            pools[(query, positive)] = pool
    return pools, report


def sample_groups(
    data: TrainingData, pools: dict[tuple[str, str], list[str]], *, hard: int, random_: int, epochs: int, seed: int
) -> list[tuple[str, list[str], list[float]]]:
    """``epochs`` x one group per (query, positive): (query, [positive, negatives...], labels).

    Negatives are drawn afresh each epoch; where a pool holds fewer than ``hard``, random documents
    make up the count, so that every group has the same size (and BCE one ``pos_weight``)."""
    rng = random.Random(seed)
    corpus_ids = list(data.corpus)
    top = data.max_grade
    for query, judged in data.judgments.items():
        if len(corpus_ids) <= sum(g > 0 for g in judged.values()):
            raise TrainingDataError(
                f"query {query!r}: every document of the corpus is one of its positives; "
                "there is nothing to train it against"
            )
    groups = []
    for _ in range(epochs):
        for (query, positive), pool in pools.items():
            judged = data.judgments[query]
            negatives = rng.sample(pool, min(hard, len(pool)))
            while len(negatives) < hard + random_:
                doc = rng.choice(corpus_ids)
                if doc not in judged or judged[doc] == 0:
                    negatives.append(doc)
            documents = [positive, *negatives]
            labels = [judged[positive] / top] + [0.0] * len(negatives)
            groups.append((data.queries[query], [data.corpus[d] for d in documents], labels))
    rng.shuffle(groups)
    return groups
