"""One distillation, end to end: read the queries as ``train`` reads them, find their candidates with
the first stage, score them with BASE, train the student to BASE's scores in what is left of the
budget, then choose on dev how the cascade is served (the student's precision and how many documents
go on to BASE) and write the cascade folder only when dev says it ranks like BASE."""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import numpy as np

from triton_rerank.distill.config import DistillConfig
from triton_rerank.distill.verdict import DevLists, choose
from triton_rerank.errors import RerankInputError
from triton_rerank.model_sources import resolve_model
from triton_rerank.training.data import TrainingData, TrainingDataError

MIN_TEACHING_QUERIES = 20
MIN_DEV_QUERIES = 10
MIN_STEPS = 10
# Seconds kept for after training: two exports of the student and its dev scores at each precision.
EXPORT_RESERVE_S = 60


class NotHeldError(RerankInputError):
    """On dev, no cascade of the student ranks like BASE: nothing was written."""


def distill(config: DistillConfig) -> dict:
    """Run ``config``; returns the report written into the cascade folder (``distill-report.json``)."""
    from triton_rerank.distill.scorer import ExportedScorer
    from triton_rerank.training.model import model_kind

    started = time.perf_counter()
    output = Path(config.output)
    if output.exists():
        raise RerankInputError(f"--output {output} exists: name a new folder (nothing is overwritten)")
    base = resolve_model(config.model)
    if (kind := model_kind(base)) != "cross-encoder":
        raise RerankInputError(f"--model {config.model} is a plain {kind}, not a cross-encoder: distil a reranker")
    teaching, dev = _read(config)
    candidates = _candidates(config, teaching, dev)
    teacher = ExportedScorer(base)
    pairs, labels, rate = _labels(config, teaching, candidates, teacher)
    dev_lists = DevLists(dev, {q: candidates[q] for q in dev.queries}, teacher)
    print(f"distill: BASE scored {len(pairs) + dev_lists.pairs} pairs at {rate:.0f} pairs/s", flush=True)
    staging = output.parent / f".{output.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        report = _train_and_judge(config, base, staging, (pairs, labels, rate), dev_lists, started)
        report["queries"] = {"teaching": len(teaching.queries), "dev": len(dev.queries)}
        report["wall_seconds"] = round(time.perf_counter() - started, 1)
        _write(config, base, staging, report)
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(f"wrote {output}: {report['verdict']}", flush=True)
    return report


def _read(config: DistillConfig) -> tuple[TrainingData, TrainingData]:
    from triton_rerank.training.runner import read_data

    teaching, dev = read_data(config.reading())
    if len(teaching.queries) < MIN_TEACHING_QUERIES or len(dev.queries) < MIN_DEV_QUERIES:
        raise TrainingDataError(
            f"{config.data} is too small to distil from: {len(teaching.queries)} teaching and {len(dev.queries)} dev "
            f"queries; a student needs at least {MIN_TEACHING_QUERIES} and {MIN_DEV_QUERIES} "
            "(use --pseudo-queries titles for a corpus of few judged queries)"
        )
    if len(teaching.corpus) < config.depth:
        raise TrainingDataError(
            f"{config.data} holds {len(teaching.corpus)} documents, fewer than --depth {config.depth}: "
            "too small to distil a reranker of its candidates from"
        )
    return teaching.sample(config.max_queries, config.seed), dev


def _candidates(config: DistillConfig, teaching: TrainingData, dev: TrainingData) -> dict[str, list[str]]:
    """Each query's first-stage top ``depth``: what the cascade will be given to rerank."""
    from triton_rerank.training.first_stage import InProcessDense

    first_stage = InProcessDense(teaching.corpus, config.embedder_model)
    queries = {**teaching.queries, **dev.queries}
    ids = list(queries)
    hits = first_stage.search([queries[q] for q in ids], config.depth)
    return {q: [d for d, _ in found] for q, found in zip(ids, hits, strict=True)}


def _labels(config: DistillConfig, teaching: TrainingData, candidates, teacher):
    """(pairs, BASE's scores, BASE's pairs/s): per teaching query, half of ``pairs_per_query`` from
    the top of its candidates (where the order decides what BASE reads) and half from the rest
    (which the student must learn to put below)."""
    rng = random.Random(config.seed)
    pairs = []
    for q, ids in candidates.items():
        if q not in teaching.queries:
            continue
        head = config.pairs_per_query // 2
        chosen = ids[:head] + rng.sample(ids[head:], min(len(ids) - head, config.pairs_per_query - head))
        pairs += [(teaching.queries[q], teaching.corpus[d]) for d in chosen]
    started = time.perf_counter()
    labels = teacher.score(pairs)
    return pairs, labels, len(pairs) / max(time.perf_counter() - started, 1e-9)


def _train_and_judge(config: DistillConfig, base: str, staging: Path, labelled, dev_lists, started: float) -> dict:
    from transformers import AutoConfig

    from triton_rerank.distill import student as student_module

    pairs, labels, rate = labelled
    base_layers = AutoConfig.from_pretrained(base).num_hidden_layers
    step_s = student_module.step_seconds_estimate(rate, config.batch_size, config.layers, base_layers)
    dev_s = 2 * dev_lists.pairs / rate * max(config.layers / base_layers, 0.15) * 3  # int8 row by row, fp32
    seconds = config.max_minutes * 60 - (time.perf_counter() - started) - dev_s - EXPORT_RESERVE_S
    if seconds < MIN_STEPS * step_s and not (config.max_steps and seconds > config.max_steps * step_s):
        spent = time.perf_counter() - started
        needed = np.ceil((spent + dev_s + EXPORT_RESERVE_S + MIN_STEPS * step_s) / 60)
        raise RerankInputError(
            f"--max-minutes {config.max_minutes:g} is too small: reading, searching and scoring took {spent:.0f} s, "
            f"the dev check needs about {dev_s + EXPORT_RESERVE_S:.0f} s, and {MIN_STEPS} training steps about "
            f"{MIN_STEPS * step_s:.0f} s here; give at least {needed:.0f} "
            "minutes (or fewer --max-queries / --max-dev-queries)"
        )
    if len(pairs) < config.batch_size:
        raise TrainingDataError(f"{len(pairs)} teaching pairs are fewer than one --batch-size ({config.batch_size})")
    folder = staging / "student"
    model, tokenizer = student_module.make_student(base, config.layers, folder, dev_lists.max_length)
    recipe = student_module.fit(
        model, tokenizer, pairs, labels, seconds=seconds, max_steps=config.max_steps,
        batch_size=config.batch_size, learning_rate=config.learning_rate, seed=config.seed,
        max_length=dev_lists.max_length,
    )  # fmt: skip
    student_module.save(model, tokenizer, folder)
    verdict = choose(config, folder, dev_lists, base_layers)
    if not verdict["holds"]:
        raise NotHeldError(
            f"on dev the cascade does not rank like BASE: nDCG@10 {verdict['best']['ndcg@10']:.4f} at best "
            f"(k={verdict['best']['k']}, student {verdict['best']['precision']}) against BASE's "
            f"{verdict['base_ndcg@10']:.4f} reading all {config.depth} (tolerance {config.tolerance}): nothing written "
            f"to {config.output}. Give it more minutes or queries, more --layers, or a larger --k"
        )
    return {"recipe": recipe | {"layers": config.layers, "base_layers": base_layers}, "dev": verdict}


def _write(config: DistillConfig, base: str, staging: Path, report: dict) -> None:
    import dataclasses
    import json

    from triton_rerank.distill.card import model_card
    from triton_rerank.serving.export.cascade import CascadeSpec, write_cascade

    chosen = report["dev"]["chosen"]
    if Path(base).is_dir():
        shutil.copytree(base, staging / "base", ignore=shutil.ignore_patterns(".git", "*.partial"))
    else:  # a hub id: what was loaded, saved
        from sentence_transformers.cross_encoder import CrossEncoder

        CrossEncoder(base, device="cpu").save_pretrained(str(staging / "base"))
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(config).items()}
    report.update(base_model=config.model, data=str(config.data), settings=settings, seed=config.seed)
    report["verdict"] = (
        f"dev nDCG@10 {chosen['ndcg@10']:.4f} (cascade: student {chosen['precision']}, k={chosen['k']}) against "
        f"BASE's {report['dev']['base_ndcg@10']:.4f} reading all {config.depth}"
    )
    spec = CascadeSpec(first="student", last="base", k=chosen["k"], first_precision=chosen["precision"])
    write_cascade(staging, spec, {"base_model": config.model})
    (staging / "distill-report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (staging / "README.md").write_text(model_card(report), encoding="utf-8")
