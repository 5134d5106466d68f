"""The time of a query, not of a pair: each served configuration's nDCG@10 beside its p50/p95 time
to rerank one query's candidates (the dense first stage's top 100, the same for every row), on a
BEIR collection, side by side on one server, one query at a time, the configurations interleaved
(rotated per query) so that the machine's noise falls on all of them alike.

Configurations: BASE at fp32 (the cascade's own last stage), int8 and bf16 (where the CPU has it);
a distilled cascade (``--cascade``), and its student alone. Score cache: off (every call is cold).
Writes query-latency-<collection>.json, .md and .png (quality against latency)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from benchmarks.config import BenchmarkConfig, machine
from benchmarks.harness import percentiles_ms
from triton_rerank.metrics import ndcg_at_k

RETRIEVE_K = 100
WARM_UP_QUERIES = 2


def run_query_latency_benchmark(config: BenchmarkConfig) -> int:
    from triton_rerank.beir import load_beir

    started = time.perf_counter()
    collection = load_beir(config.latency_data, config.latency_split, max_queries=config.max_queries)
    candidates = dense_candidates(collection)
    repository, names = export_configurations(config)
    results = measure(config, repository, names, collection, candidates)
    stem = f"query-latency-{config.latency_data.name}"
    report = {
        "data": str(config.latency_data),
        "split": config.latency_split,
        "queries": len(collection.queries),
        "first_stage": f"exact dense cosine (all-MiniLM-L6-v2), top {RETRIEVE_K}, the same for every row",
        "base": str(base_model(config)),
        "cascade": str(config.cascade) if config.cascade else None,
        "cascade_report": _cascade_facts(config.cascade),
        "score_cache": "off: every call cold",
        "clients": 1,
        "machine": machine(),
        "rows": results,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{stem}.md").write_text(markdown(report))
    plot(report, out / f"{stem}.png")
    print("\n" + markdown(report) + f"\nwrote {stem}.json, .md, .png to {out} in {report['wall_s']:.0f} s")
    return 0


def base_model(config: BenchmarkConfig) -> Path:
    """BASE: the cascade's own copy when there is a cascade (so every row reranks with the same model)."""
    return config.cascade / "base" if config.cascade else config.model


def dense_candidates(collection) -> dict[str, list[str]]:
    from sentence_transformers import SentenceTransformer

    from triton_rerank.model_sources import DEFAULT_EMBEDDER, resolve_model

    embedder = SentenceTransformer(resolve_model(DEFAULT_EMBEDDER), device="cpu")
    ids = [d.id for d in collection.documents]
    corpus = embedder.encode([d.text for d in collection.documents], normalize_embeddings=True, batch_size=64)
    query_ids = list(collection.queries)
    similarity = embedder.encode([collection.queries[q] for q in query_ids], normalize_embeddings=True) @ corpus.T
    top = np.argsort(-similarity, axis=1, kind="stable")[:, :RETRIEVE_K]
    return {q: [ids[i] for i in top[n]] for n, q in enumerate(query_ids)}


def export_configurations(config: BenchmarkConfig) -> tuple[Path, dict[str, str]]:
    """One repository holding every configuration; {row: the model name that serves it}."""
    from triton_rerank.serving.export import ensure_exported
    from triton_rerank.serving.export.precision import bf16_support
    from triton_rerank.serving.layout import RepositorySettings

    repository = config.workdir() / f"query-latency-{config.latency_data.name}"
    base = str(base_model(config))
    names = {}
    if config.cascade:
        settings = RepositorySettings(name="cascade")
        ensure_exported(repository, str(config.cascade), "cross-encoder", settings=settings)
        names |= {"fp32": "cascade_last", "distilled cascade": "cascade", "student alone": "cascade_first"}
    else:
        ensure_exported(repository, base, "cross-encoder", settings=RepositorySettings(name="base_fp32"))
        names["fp32"] = "base_fp32"
    ensure_exported(repository, base, "cross-encoder", settings=RepositorySettings(name="base_int8"), precision="int8")
    names["int8"] = "base_int8"
    if not bf16_support():
        bf16 = RepositorySettings(name="base_bf16", model_format="openvino")
        ensure_exported(repository, base, "cross-encoder", settings=bf16, precision="bf16")
        names["bf16"] = "base_bf16"
    return repository, names


def measure(config: BenchmarkConfig, repository: Path, names: dict[str, str], collection, candidates) -> dict:
    from triton_rerank import TritonRerankFunction
    from triton_rerank.serving.server import EmbeddedTritonServer, free_port_settings

    texts = {d.id: d.text for d in collection.documents}
    query_ids = list(collection.queries)
    latencies = {row: [] for row in names}
    ndcgs = {row: [] for row in names}
    with EmbeddedTritonServer(repository, free_port_settings()) as server:
        clients = {row: TritonRerankFunction(server.grpc_url, model_name=name) for row, name in names.items()}
        try:
            for q in query_ids[:WARM_UP_QUERIES]:
                for client in clients.values():
                    client.score(collection.queries[q], [texts[d] for d in candidates[q]])
            rows = list(names)
            for n, q in enumerate(query_ids):
                documents = [texts[d] for d in candidates[q]]
                for row in rows[n % len(rows) :] + rows[: n % len(rows)]:
                    began = time.perf_counter()
                    scores = clients[row].score(collection.queries[q], documents)
                    latencies[row].append(time.perf_counter() - began)
                    ranked = [candidates[q][i] for i in np.argsort(-scores, kind="stable")]
                    ndcgs[row].append(ndcg_at_k(ranked, collection.judgments[q], 10))
                if (n + 1) % 25 == 0:
                    print(f"{n + 1} of {len(query_ids)} queries", flush=True)
        finally:
            for client in clients.values():
                client.close()
    fp32_mean = float(np.mean(latencies["fp32"]))
    return {
        row: {
            "model": names[row],
            "ndcg@10": round(float(np.mean(ndcgs[row])), 4),
            **{k: round(v, 1) for k, v in percentiles_ms(latencies[row]).items()},
            "mean_ms": round(float(np.mean(latencies[row])) * 1000, 1),
            "time_vs_fp32": round(float(np.mean(latencies[row])) / fp32_mean, 3),
        }
        for row in names
    }


def _cascade_facts(cascade: Path | None) -> dict | None:
    if not cascade:
        return None
    report = json.loads((cascade / "distill-report.json").read_text())
    return {
        "taught_by": "pseudo-queries" if report["settings"]["pseudo_queries"] else "judged queries",
        "data": report["data"],
        "split": report["settings"]["split"],
        "chosen": report["dev"]["chosen"],
        "wall_seconds": report["wall_seconds"],
    }


def markdown(report: dict) -> str:
    fp32 = report["rows"]["fp32"]["ndcg@10"]
    lines = [
        f"{report['data']} ({report['split']}, {report['queries']} queries); {report['first_stage']}; "
        f"score cache {report['score_cache']}; 1 client; {report['machine']}.",
        "",
        "| served | nDCG@10 | Δ fp32 | p50 ms | p95 ms | mean ms | time × fp32 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row, values in report["rows"].items():
        lines.append(
            f"| {row} | {values['ndcg@10']:.4f} | {values['ndcg@10'] - fp32:+.4f} | {values['p50_ms']:.0f} "
            f"| {values['p95_ms']:.0f} | {values['mean_ms']:.0f} | {values['time_vs_fp32']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for row, values in report["rows"].items():
        ax.errorbar(values["p50_ms"], values["ndcg@10"], xerr=[[0], [values["p95_ms"] - values["p50_ms"]]],
                    fmt="o", capsize=3)  # fmt: skip
        ax.annotate(row, (values["p50_ms"], values["ndcg@10"]), textcoords="offset points", xytext=(5, 5))
    ax.set(xlabel="rerank time per query, ms (p50; bar to p95)", ylabel="nDCG@10", xscale="log")
    ax.set_title(f"{Path(report['data']).name[:24]}, {report['queries']} queries", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
