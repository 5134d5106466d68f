"""One distillation, end to end: read the queries as ``train`` reads them, find the dev queries'
candidates with the first stage, score them with BASE, then try each student (BASE reading fewer
tokens at a lower precision, calibrated on the other queries' pairs) as the first stage of a cascade,
and write the cheapest cascade that dev says ranks like BASE; nothing when none does."""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

from triton_rerank.distill.config import DistillConfig
from triton_rerank.distill.verdict import DevLists, choose
from triton_rerank.errors import RerankInputError
from triton_rerank.model_sources import resolve_model
from triton_rerank.training.data import TrainingData, TrainingDataError

MIN_DEV_QUERIES = 10
CALIBRATION_PER_QUERY = 3  # pairs per calibration query, from the top of its candidates down


class NotHeldError(RerankInputError):
    """On dev, no cascade of a student ranks like BASE: nothing was written."""


def distill(config: DistillConfig) -> dict:
    """Run ``config``; returns the report written into the cascade folder (``distill-report.json``)."""
    from triton_rerank.distill.scorer import ExportedScorer
    from triton_rerank.training.model import model_kind

    started = time.monotonic()
    deadline = started + config.max_minutes * 60
    output = Path(config.output)
    if output.exists():
        raise RerankInputError(f"--output {output} exists: name a new folder (nothing is overwritten)")
    base = resolve_model(config.model)
    if (kind := model_kind(base)) != "cross-encoder":
        raise RerankInputError(f"--model {config.model} is a plain {kind}, not a cross-encoder: distil a reranker")
    rest, dev = _read(config)
    candidates = _candidates(config, rest, dev)
    dev_lists = DevLists(dev, {q: candidates[q] for q in dev.queries}, ExportedScorer(base))
    spent = time.monotonic() - started
    print(f"distill: BASE scored {dev_lists.pairs} dev pairs at {dev_lists.base_rate:.0f} pairs/s", flush=True)
    if time.monotonic() + dev_lists.pairs / dev_lists.base_rate > deadline:  # a student costs about that
        raise RerankInputError(
            f"--max-minutes {config.max_minutes:g} is too small: reading, searching and BASE's dev scores took "
            f"{spent:.0f} s, and one student takes about {dev_lists.pairs / dev_lists.base_rate:.0f} s more here; "
            f"give at least {(spent + 2 * dev_lists.pairs / dev_lists.base_rate) / 60:.1f} minutes "
            "(or fewer --max-dev-queries, a smaller --depth)"
        )
    staging = output.parent / f".{output.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        verdict = _judge(config, base, staging, _calibration(config, rest, candidates), dev_lists, deadline)
        report = {"dev": verdict, "queries": {"dev": len(dev.queries), "calibration": len(rest.queries)}}
        report["wall_seconds"] = round(time.monotonic() - started, 1)
        _write(config, base, staging, report)
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(f"wrote {output}: {report['verdict']}", flush=True)
    return report


def _read(config: DistillConfig) -> tuple[TrainingData, TrainingData]:
    """(the queries that calibrate, the dev queries that judge)."""
    from triton_rerank.training.runner import read_data

    rest, dev = read_data(config.reading())
    if len(dev.queries) < MIN_DEV_QUERIES:
        raise TrainingDataError(
            f"{config.data} is too small to distil from: {len(dev.queries)} dev queries of "
            f"{len(dev.queries) + len(rest.queries)}; the verdict needs at least {MIN_DEV_QUERIES} "
            "(use --pseudo-queries titles for a corpus with few judged queries)"
        )
    if len(rest.corpus) < config.depth:
        raise TrainingDataError(
            f"{config.data} holds {len(rest.corpus)} documents, fewer than --depth {config.depth}: "
            "too small to distil a reranker of that many candidates from"
        )
    return rest, dev


def _candidates(config: DistillConfig, rest: TrainingData, dev: TrainingData) -> dict[str, list[str]]:
    """Each query's first-stage top ``depth``: what the cascade will be given to rerank."""
    from triton_rerank.training.first_stage import InProcessDense

    first_stage = InProcessDense(rest.corpus, config.embedder_model)
    wanted = -(-config.calibration_pairs // CALIBRATION_PER_QUERY)
    queries = {**rest.sample(wanted, config.seed).queries, **dev.queries}
    ids = list(queries)
    hits = first_stage.search([queries[q] for q in ids], config.depth)
    return {q: [d for d, _ in found] for q, found in zip(ids, hits, strict=True)}


def _calibration(config: DistillConfig, rest: TrainingData, candidates) -> list[tuple[str, str]]:
    """Pairs of the queries dev does not judge, from the top of their candidates and below."""
    rng = random.Random(config.seed)
    pairs = []
    for q in (q for q in candidates if q in rest.queries):
        ids = candidates[q]
        chosen = [ids[0], *rng.sample(ids[1:], min(len(ids) - 1, CALIBRATION_PER_QUERY - 1))]
        pairs += [(rest.queries[q], rest.corpus[d]) for d in chosen]
    return pairs[: config.calibration_pairs]


def _judge(config: DistillConfig, base: str, staging: Path, calibration, dev_lists, deadline: float) -> dict:
    """Each student built in ``staging/students``, judged on dev (cheapest first); the chosen one
    moved to ``staging/student``."""
    from triton_rerank.distill.student import CALIBRATION_FILE, label, make_student

    students = []
    for precision, length in sorted(config.students(), key=lambda s: (s[1] or 10**9, s[0])):
        folder = make_student(base, staging / "students" / f"{precision}-{length or 'all'}", length, calibration)
        calibrated = str(folder / CALIBRATION_FILE) if precision == "int8-openvino" else ""
        students.append((label(precision, length), folder, precision, calibrated))
    verdict = choose(config, students, dev_lists, deadline)
    if not verdict["holds"]:
        best = verdict["best"]
        raise NotHeldError(
            f"on dev the cascade does not rank like BASE: nDCG@10 {best['ndcg@10']:.4f} at best "
            f"(k={best['k']}, student {best['student']}) against BASE's {verdict['base_ndcg@10']:.4f} reading all "
            f"{config.depth} (tolerance {config.tolerance}): nothing written to {config.output}. Try a larger --k, "
            "longer --student-lengths or another --student-precisions"
        )
    chosen = next(s for s in students if s[0] == verdict["chosen"]["student"])
    chosen[1].rename(staging / "student")
    shutil.rmtree(staging / "students")
    verdict["chosen"] |= {"precision": chosen[2], "calibration": CALIBRATION_FILE if chosen[3] else ""}
    return verdict


def _write(config: DistillConfig, base: str, staging: Path, report: dict) -> None:
    import dataclasses
    import json

    from triton_rerank.distill.card import model_card
    from triton_rerank.distill.scorer import SERVED_AS
    from triton_rerank.distill.student import make_student
    from triton_rerank.serving.export.cascade import CascadeSpec, write_cascade

    chosen = report["dev"]["chosen"]
    make_student(base, staging / "base", None, [])  # BASE as it is: its own length, no calibration pairs
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(config).items()}
    report.update(base_model=config.model, data=str(config.data), settings=settings, seed=config.seed)
    report["verdict"] = (
        f"dev nDCG@10 {chosen['ndcg@10']:.4f} (student {chosen['student']}, k={chosen['k']}, cost "
        f"{chosen['cost']:.2f}x) against BASE's {report['dev']['base_ndcg@10']:.4f} reading all {config.depth}"
    )
    precision, model_format = SERVED_AS[chosen["precision"]]
    spec = CascadeSpec(first="student", last="base", k=chosen["k"], first_precision=precision,
                       first_format=model_format, first_calibration=chosen["calibration"])  # fmt: skip
    write_cascade(staging, spec, {"base_model": config.model})
    (staging / "distill-report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (staging / "README.md").write_text(model_card(report), encoding="utf-8")
