"""One evaluation, end to end: export and serve (or use a running Triton), the served runs, the
reference, any other in-process rerankers a caller brings (the benchmarks' peers), the metrics side
by side, the noise band, and the report."""

from __future__ import annotations

import json
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path

from triton_rerank.beir import load_beir
from triton_rerank.evaluation.config import CASCADE_NAME, EvaluationConfig
from triton_rerank.evaluation.html_report import write_html
from triton_rerank.evaluation.reference import exact_bm25, reference_runs
from triton_rerank.evaluation.served import served_runs
from triton_rerank.metrics import evaluate, noise_band
from triton_rerank.serving.layout import RepositorySettings

# Other rerankers of the first stage's very candidates: (queries, {query id: candidate ids}, {document
# id: text}, timings to fill in) -> {name: {query id: ranked ids}}.
InProcessRuns = Callable[[dict, dict, dict, dict], dict[str, dict]]


def run_evaluation(config: EvaluationConfig, peers: InProcessRuns | None = None) -> dict:
    """Evaluate, print the table, write ``config.out``; returns the report. ``peers`` rerank the
    served first stage's candidates in-process too (``benchmarks.peer_evaluation``)."""
    from triton_rerank.serving.server import triton_for

    collection = load_beir(config.data, config.split, max_queries=config.max_queries)
    documents, queries, qrels = collection.documents, collection.queries, collection.judgments
    print(f"{config.data.name}: {len(documents)} documents, {len(queries)} judged queries ({config.split})", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="triton-rerank-eval-") as workdir,
        triton_for(config.triton_url, config.repository, exports(config)) as (url, server),
    ):
        milvus_uri = config.milvus_uri or str(Path(workdir) / "evaluation.db")
        stats_url = server.http_url if server is not None else None
        first_stages, reranked, served_scores, served_timings = served_runs(
            config, documents, queries, url, milvus_uri, stats_url
        )
    first_stage = next(iter(first_stages.values()))  # the one the policies, cascade, peers and reference read
    on = {name: "" if name == "dense" else f" {'BM25' if name == 'bm25' else name}" for name in first_stages}
    rows = {
        f"first stage: Milvus{on[name] or ' ' + config.index} (served)": evaluate(run, qrels)
        for name, run in first_stages.items()
    }
    first_scores = next(iter(rows.values()))
    scored = {name: evaluate(run, qrels) for name, run in reranked.items()}  # each run's metrics, once
    rows.update(served_rows(config, scored, on))
    if config.rerank_data is not None:
        served_timings.update(gain_kept(first_scores, scored))
    timings = {"served": served_timings}
    peer_names = []
    if peers is not None:
        texts = {d.id: d.text for d in documents}
        timings["peers"] = {}
        for name, run in peers(queries, first_stage, texts, timings["peers"]).items():
            rows[f"reranked: {name} on Milvus top-{config.retrieve_k} (in-process peer)"] = evaluate(run, qrels)
            peer_names.append(name)
    if any(name != "dense" for name in first_stages):  # Milvus' BM25 beside exact ones (cheap: always)
        rows = {
            f"first stage: exact BM25{', stemmed' if stem else ''} (bm25s, in-process)": evaluate(
                exact_bm25(config, documents, queries, stem=stem), qrels
            )
            for stem in (True, False)
        } | rows
    band = None
    if not config.no_reference:
        exact, exact_reranked, same_candidates, reference_scores, timings["reference"] = reference_runs(
            config, documents, queries, first_stage
        )
        reference = "CrossEncoder" if config.reranker_kind == "cross-encoder" else "the model card's code"
        rows = {
            "first stage: exact cosine (in-process)": evaluate(exact, qrels),
            **rows,
            f"reranked: {reference} on exact top-{config.retrieve_k} (in-process)": evaluate(exact_reranked, qrels),
            f"reranked: {reference} on Milvus top-{config.retrieve_k} (in-process)": evaluate(same_candidates, qrels),
        }
        if served_scores:  # the served scores against the reference's, same candidates
            band = noise_band(reference_scores, served_scores, first_stage, qrels)
    print_table(config, len(queries), rows, band)
    report = write_report(config, len(queries), len(documents), rows, timings, band, peer_names)
    return write_html(config.out.with_suffix(".html"), report, first_stages, reranked, qrels, queries)


def exports(config: EvaluationConfig) -> list[tuple[str, str, dict]]:
    """The models to export and serve: the reranker, the embedder and, with a cascade, its second stage."""

    def kind(kind: str) -> dict:  # an instruction is an LLM reranker's only
        instruction = {"instruction": config.instruction} if config.instruction and kind == "llm-reranker" else {}
        return {"kind": kind, **instruction}

    settings = RepositorySettings(model_format=config.model_format, **kind(config.reranker_kind))
    models = [
        (config.reranker_model, config.reranker_kind, {"precision": config.precision, "settings": settings}),
        (config.embedder_model, "bi-encoder", {}),
    ]
    if config.cascade_model:
        cascade = RepositorySettings(name=CASCADE_NAME, **kind(config.cascade_kind))
        options = {"precision": config.cascade_precision, "settings": cascade}
        models.append((config.cascade_model, config.cascade_kind, options))
    return models


def served_rows(config: EvaluationConfig, scored: dict[str, dict], on: dict[str, str]) -> dict[str, dict]:
    """Each served reranking's metrics under the name the table shows; ``on`` names each first stage
    in a row (empty for dense)."""
    rows = {}
    primary = next(iter(on.values()))
    for name, scores in scored.items():
        if name.startswith("after "):  # another first stage's candidates, reranked
            rows[f"reranked: Triton on Milvus{on[name[len('after ') :]]} top-{config.retrieve_k} (served)"] = scores
            continue
        if name.startswith("cascade"):
            on = f"the reranker's top-{config.cascade_k}" if name.startswith("cascade top") else "them alone"
            rows[f"reranked: cascade ({config.cascade_model}) on {on} (served)"] = scores
            continue
        if config.rerank_data is not None and name != "short":
            what = f", {config.rerank_data.name} texts, long_documents={name}"
        else:
            what = "" if name in ("short", "first") else f", long_documents={name}"
        rows[f"reranked: Triton on Milvus{primary} top-{config.retrieve_k} (served{what})"] = scores
    return rows


def gain_kept(first_scores: dict, scored: dict[str, dict]) -> dict[str, float | None]:
    """How much of the short documents' nDCG@10 gain over the first stage each policy keeps."""
    first = first_scores["ndcg@10"]
    gain = scored["short"]["ndcg@10"] - first
    kept_by = {}
    for name, scores in scored.items():
        if name == "short":
            continue
        if gain <= 0:  # the reranker does not beat the first stage here: there is no gain to keep
            kept_by[f"gain_kept_{name}"] = None
            kept_of_short = scores["ndcg@10"] / scored["short"]["ndcg@10"]
            print(
                f"long_documents={name}: {kept_of_short:.0%} of the short documents' nDCG@10 "
                "(they score below the first stage: no gain to keep)",
                flush=True,
            )
            continue
        kept = (scores["ndcg@10"] - first) / gain
        kept_by[f"gain_kept_{name}"] = kept
        print(f"long_documents={name}: keeps {kept:.0%} of the short documents' nDCG@10 gain", flush=True)
    return kept_by


def print_table(config: EvaluationConfig, queries: int, rows: dict, band: dict | None) -> None:
    print(f"\n| {config.data.name} {config.split} ({queries} queries) | nDCG@10 | MRR@10 | Recall@100 |")
    print("| --- | --- | --- | --- |")
    for name, scores in rows.items():
        print(f"| {name} | {scores['ndcg@10']:.4f} | {scores['mrr@10']:.4f} | {scores['recall@100']:.4f} |")
    if band is not None:
        print(
            f"\nserved - in-process scores: RMS {band['rms_error']:.2g}; nDCG@10 moves by {band['observed']:+.4f}. "
            f"Those errors in random order ({band['draws']} draws) move it by {band['mean']:+.4f} on average "
            f"(5-95%: {band['p5']:+.4f} to {band['p95']:+.4f}): a change inside that band is near-ties changing places."
        )


def write_report(
    config: EvaluationConfig, queries: int, documents: int, rows: dict, timings: dict, band: dict | None, peers: list
) -> dict:
    report = {
        "data": str(config.data),
        "split": config.split,
        "queries": queries,
        "documents": documents,
        "reranker_model": config.reranker_model,
        "reranker_kind": config.reranker_kind,
        "instruction": config.instruction,
        "cascade": {
            "model": config.cascade_model,
            "kind": config.cascade_kind,
            "precision": config.cascade_precision,
            "k": config.cascade_k,
        }
        if config.cascade_model
        else None,
        "reranker_precision": config.precision,
        "reranker_format": config.model_format if config.precision != "bf16" else "openvino",
        "embedder_model": config.embedder_model,
        "index": config.index,
        "first_stage": [stage.name for stage in config.first_stages()],
        "retrieve_k": config.retrieve_k,
        "rerank_data": str(config.rerank_data) if config.rerank_data else None,
        "long_documents": list(config.long_documents),
        "peers": peers,
        "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
        "results": rows,
        "noise_band": band,
        "timings": timings,
    }
    config.out.parent.mkdir(parents=True, exist_ok=True)
    config.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {config.out}")
    return report
