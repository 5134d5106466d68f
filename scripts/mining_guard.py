#!/usr/bin/env python
"""How well the hard-negative guard (sentence-transformers' relative margin) keeps unjudged true
positives out of the negatives: on a collection with judgments, half of each query's positives are
hidden (as if nobody had judged them), negatives are mined from the first stage's top --depth with
each margin, and the share of mined negatives that are hidden positives is counted.

    python scripts/mining_guard.py --data ../shared/data/msmarco-passage-dl19-bm25top100 --split test
"""

import argparse
import json
import random
import sys
from pathlib import Path

from triton_rerank.beir import load_beir
from triton_rerank.model_sources import DEFAULT_EMBEDDER
from triton_rerank.training.data import TrainingData
from triton_rerank.training.first_stage import InProcessDense
from triton_rerank.training.mining import first_stage_hits, negative_pools


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--depth", type=int, default=30)
    parser.add_argument("--margins", default="0,0.02,0.05,0.1,0.2")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    collection = load_beir(args.data, args.split)
    documents, queries, qrels = collection.documents, collection.queries, collection.judgments
    corpus = {d.id: d.text for d in documents}
    rng = random.Random(args.seed)
    judged, hidden = {}, {}
    for query, grades in qrels.items():
        positives = sorted(d for d, g in grades.items() if g > 0 and d in corpus)
        if len(positives) < 2:
            continue
        hide = set(rng.sample(positives, len(positives) // 2))
        hidden[query] = hide
        judged[query] = {d: g for d, g in grades.items() if d in corpus and d not in hide}
    data = TrainingData(corpus, {q: queries[q] for q in judged}, judged)
    first_stage = InProcessDense(corpus, DEFAULT_EMBEDDER)
    hits = first_stage_hits(data, first_stage, args.depth)
    rows = []
    for margin in map(float, args.margins.split(",")):
        pools, report = negative_pools(data, hits, first_stage, args.depth, margin)
        mined = [(q, d) for (q, _), pool in pools.items() for d in pool if d not in data.judgments[q]]
        false = sum(d in hidden[q] for q, d in mined)
        rows.append(
            {
                "margin": margin,
                "hard_negatives": len(mined),
                "per_positive": round(len(mined) / report.positives, 2),
                "hidden_positives_among_them": false,
                "share": round(false / max(1, len(mined)), 4),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"queries": len(judged), "hidden_positives": sum(map(len, hidden.values())), "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
