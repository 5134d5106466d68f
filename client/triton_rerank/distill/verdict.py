"""The dev check: the cascade served as it will be (the student exported at each precision it may be
served at, BASE's own scores for what goes on to BASE), judged by nDCG@10 against BASE reading every
candidate. Of the (precision, k) that keep BASE's nDCG@10 within the tolerance, the cheapest is chosen."""

from __future__ import annotations

import time

import numpy as np

from triton_rerank.backends.cascade_model import chosen_rows, combine
from triton_rerank.metrics import ndcg_at_k

KS = (5, 10, 15, 20, 25, 30, 40, 50)  # documents that go on to BASE, tried in this order


class DevLists:
    """The dev queries' candidates, as the cascade will be given them, with BASE's scores."""

    def __init__(self, dev, candidates: dict[str, list[str]], teacher) -> None:
        self.dev, self.candidates, self.max_length = dev, candidates, teacher.max_length
        self.pair_list = [(dev.queries[q], dev.corpus[d]) for q, ids in candidates.items() for d in ids]
        self.pairs = len(self.pair_list)
        self.base, self.base_rate = self.scored(teacher)

    def scored(self, scorer) -> tuple[dict[str, np.ndarray], float]:
        """(each query's candidates' scores by ``scorer``, its pairs per second)."""
        started = time.perf_counter()
        flat = scorer.score(self.pair_list)
        rate = self.pairs / max(time.perf_counter() - started, 1e-9)
        scores, start = {}, 0
        for q, ids in self.candidates.items():
            scores[q], start = flat[start : start + len(ids)], start + len(ids)
        return scores, rate

    def ndcg(self, scores: dict[str, np.ndarray]) -> float:
        values = []
        for q, ids in self.candidates.items():
            order = np.argsort(-np.asarray(scores[q]), kind="stable")
            values.append(ndcg_at_k([ids[i] for i in order], self.dev.judgments[q], 10))
        return float(np.mean(values))

    def cascade(self, student: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
        out = {}
        for q in self.candidates:
            chosen = chosen_rows(student[q], k)
            out[q] = combine(student[q], chosen, self.base[q][chosen])
        return out


def choose(config, students, lists: DevLists, deadline: float) -> dict:
    """The dev figures of every (student, k) tried, and the cheapest that holds. ``students``:
    (label, folder, precision, calibration file) in the order to try them; one that would start after
    ``deadline`` (time.monotonic) is left untried, and said so."""
    from triton_rerank.distill.scorer import ExportedScorer

    base_ndcg = lists.ndcg(lists.base)
    depth = max(len(ids) for ids in lists.candidates.values())
    ks = [config.k] if config.k else [k for k in KS if k < depth] or [depth]
    rows, alone, untried = [], {}, []
    for name, folder, precision, calibration in students:
        if rows and time.monotonic() > deadline:
            untried.append(name)
            continue
        scores, rate = lists.scored(ExportedScorer(str(folder), precision, calibration))
        alone[name] = round(lists.ndcg(scores), 4)
        for k in ks:
            ndcg = lists.ndcg(lists.cascade(scores, k))
            cost = lists.base_rate / rate + k / depth  # of BASE reading all, in process
            rows.append({"student": name, "k": k, "ndcg@10": round(ndcg, 4), "cost": round(cost, 3),
                         "holds": bool(ndcg >= base_ndcg - config.tolerance)})  # fmt: skip
        print(f"distill: dev, student {name}: alone {alone[name]}, cascade "
              f"{[(r['k'], r['ndcg@10'], r['cost']) for r in rows[-len(ks):]]}", flush=True)  # fmt: skip
    chosen = pick(rows)
    return {
        "queries": len(lists.candidates),
        "depth": depth,
        "base_ndcg@10": round(base_ndcg, 4),
        "tolerance": config.tolerance,
        "student_alone_ndcg@10": alone,
        "tried": rows,
        "untried (budget)": untried,
        "cost": "the cascade's in-process time per query as a fraction of BASE reading every candidate",
        "holds": chosen is not None,
        "chosen": chosen,
        "best": max(rows, key=lambda r: (r["ndcg@10"], -r["cost"])),
    }


def pick(rows: list[dict]) -> dict | None:
    """The cheapest configuration that holds BASE's ranking (ties: the better nDCG@10), or None."""
    holding = [r for r in rows if r["holds"]]
    return min(holding, key=lambda r: (r["cost"], -r["ndcg@10"])) if holding else None
