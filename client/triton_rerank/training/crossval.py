"""Query-level k-fold cross-validation of ``train``: each fold trains on the other folds' judged
queries (its dev split carved from them) and is tested on its own, so every query is tested once,
on a model that never saw it. The collection is read and embedded once for all folds.

Each test query's first-stage top ``test_depth`` is reranked by the base model and by the fold's
trained model, each alone and blended with the weight its own dev split chose; "shipped" is what
``train`` would leave the user with: the trained model where it beat the base on dev, else the base.
"""

from __future__ import annotations

import dataclasses
import json
import random
import tempfile
from pathlib import Path

import numpy as np

import triton_rerank.training.model as model_module
from triton_rerank.beir import load_beir
from triton_rerank.model_sources import resolve_model
from triton_rerank.training.config import TrainConfig
from triton_rerank.training.data import TrainingData
from triton_rerank.training.dev import DevSet
from triton_rerank.training.mining import first_stage_hits
from triton_rerank.training.runner import load_training, open_first_stage, train


def cross_validate(config: TrainConfig, folds: int, test_depth: int) -> dict:
    full = load_training(config)  # every judged query
    qrels = load_beir(Path(config.data), config.split).judgments  # tested on every judgment, pooled or not
    ids = sorted(full.queries)
    random.Random(config.seed).shuffle(ids)
    fold_of = {q: n % folds for n, q in enumerate(ids)}
    base_name = resolve_model(config.model)
    base = model_module.load(base_name, model_module.model_kind(base_name), config.max_length, "cpu")
    rows, per_query = [], {}
    with open_first_stage(config, full.corpus) as first_stage, tempfile.TemporaryDirectory() as scratch:
        test_hits = first_stage_hits(full, first_stage, test_depth)
        for fold in range(folds):
            tested = sorted(q for q in ids if fold_of[q] == fold)
            test = TrainingData(full.corpus, {q: full.queries[q] for q in tested}, {q: qrels[q] for q in tested})
            rest = full.subset(sorted(q for q in ids if fold_of[q] != fold))
            fold_config = dataclasses.replace(config, output=Path(scratch) / f"fold-{fold}", force=True)
            report = train(
                fold_config,
                data=rest.split(config.dev_fraction, config.seed, config.max_dev_queries),
                first_stage=first_stage,
            )
            trained = model_module.load(str(fold_config.output), "cross-encoder", config.max_length, "cpu")
            values = _fold_values(DevSet(test, test_hits, test_depth), base, trained, report)
            rows.append(
                {
                    "fold": fold,
                    "queries": len(test.queries),
                    "dev": report["dev_results"],
                    "recipe": report["recipe"],
                    "test_ndcg@10": {k: _mean(v) for k, v in values.items()},
                }
            )
            for name, by_query in values.items():
                per_query.setdefault(name, {}).update(by_query)
            print(f"fold {fold}: {json.dumps(rows[-1]['test_ndcg@10'])}", flush=True)
    overall = {name: _mean(v) for name, v in per_query.items()}
    return {
        "config": {k: str(v) for k, v in dataclasses.asdict(config).items()},
        "folds": rows,
        "overall_ndcg@10": overall,
        "queries": len(ids),
        "test_depth": test_depth,
    }


def _fold_values(test_set: DevSet, base, trained, report: dict) -> dict[str, dict[str, float]]:
    dev = report["dev_results"]
    base_scores, trained_scores = test_set.score(base), test_set.score(trained)
    values = {
        "first stage": test_set.per_query(test_set.first_scores),
        "base": test_set.per_query(base_scores),
        "base blended": test_set.per_query(base_scores, dev["base"]["blend_weight"]),
        "trained": test_set.per_query(trained_scores),
        "trained blended": test_set.per_query(trained_scores, dev["trained"]["blend_weight"]),
    }
    better = dev["trained"]["blended_ndcg@10"] > dev["base"]["blended_ndcg@10"]
    values["shipped"] = values["trained blended"] if better else values["base blended"]
    return values


def _mean(values: dict[str, float]) -> float:
    return round(float(np.mean(list(values.values()))), 4)
