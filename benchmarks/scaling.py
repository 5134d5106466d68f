"""How the served speed scales with the model family and with the cores (``benchmark --families``
and ``--cpu-scaling``).

Families: each family's served pairs/s, fp32 and int8, beside its in-process PyTorch reference, on
the same DL19 requests; XLM-R and Qwen3 at their checkpoints' sizes with random weights where no
checkpoint is at hand (``bench.families``). Writes families-benchmark.json and .md.

CPU scaling 1,2,4,...: the served int8 with the server pinned to that many cores. Writes
cpu-scaling.json and .md.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from benchmarks.config import BenchmarkConfig, data_description, machine

FAMILY_PRECISIONS = ("fp32", "int8")
FAMILY_N = 10  # documents a request: the big families read about 2 pairs/s on 2 cores


def run_families(config: BenchmarkConfig) -> int:
    """Each family's served pairs/s, fp32 and int8, beside its in-process PyTorch reference, on
    the same DL19 requests, one client; random-weight shapes where no checkpoint is at hand."""
    from benchmarks.families import parse_family
    from benchmarks.report import families_markdown
    from benchmarks.servers import Served
    from benchmarks.workload import load_requests

    started = time.perf_counter()
    data, work = config.dl19(), config.workdir()
    requests = load_requests(data, FAMILY_N, 43)
    repository = work / "families-repository"
    if not config.family and not config.model.exists():
        print(f"no model at {config.model}: pass --model, or the families with --family", file=sys.stderr)
        return 2
    try:
        families = [parse_family(f) for f in config.family or [f"minilm-l6={config.model}", *DEFAULT_SHAPES]]
        paths = {label: family_model(label, model, work, config) for label, model, _ in families}
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    refused: dict[str, str] = {}  # int8 exports below their accuracy bar, with the check's words
    models = {}
    for label, model, kind in families:
        export_family(label, paths[label], kind, repository, refused)
        models[label] = (model, paths[label], kind)
    served = Served("families", repository).start()
    try:
        rows = [
            measure_family(label, *found, repository, served.url(config.protocol), requests, config, refused)
            for label, found in models.items()
        ]
    finally:
        served.stop()
    report = {
        "machine": machine(),
        "data": data_description(data),
        "documents_per_request": FAMILY_N,
        "clients": 1,
        "seconds_per_measurement": config.seconds,
        "families": rows,
        "refused": refused,
        "wall_s": time.perf_counter() - started,
    }
    (config.out / "families-benchmark.json").write_text(json.dumps(report, indent=2) + "\n")
    table = families_markdown(report)
    (config.out / "families-benchmark.md").write_text(table)
    print(
        f"\n{table}\nwrote families-benchmark.json, families-benchmark.md to {config.out} in {report['wall_s']:.0f} s"
    )
    # An int8 export its accuracy check refused is a finding, reported; failed requests fail the run.
    return 1 if any(row["errors"] for row in rows) else 0


def family_model(label: str, model: str, work: Path, config: BenchmarkConfig) -> str:
    """The folder or hub id to export: a ``shape:`` model is built once in ``work``."""
    from benchmarks.families import SHAPE_PREFIX, build_shape

    if not model.startswith(SHAPE_PREFIX):
        return model
    folder = work / "shapes" / label
    if not (folder / "config.json").exists():
        print(f"building {label} ({model}, random weights) ...", flush=True)
        texts = vocabulary_texts(config.data.parent / "scifact")
        build_shape(model.removeprefix(SHAPE_PREFIX), folder, texts=texts, qwen3_tokenizer=config.qwen3_tokenizer)
    return str(folder)


def export_family(label: str, model: str, kind: str, repository: Path, refused: dict) -> None:
    """``model`` exported as ``LABEL-fp32`` and ``LABEL-int8`` beside the other families; an int8
    export its check refuses is skipped, with the reason."""
    from triton_rerank.serving.export import ExportCheckError, ensure_exported
    from triton_rerank.serving.layout import RepositorySettings

    for precision in FAMILY_PRECISIONS:
        name = f"{label}-{precision}"
        print(f"exporting {name} ...", flush=True)
        try:
            ensure_exported(repository, model, kind, settings=RepositorySettings(name=name), precision=precision)
        except ExportCheckError as err:
            if precision == "fp32":
                raise
            refused[name] = str(err)


def measure_family(label, model, path, kind, repository: Path, url: str, requests, config, refused: dict) -> dict:
    """One family's row: its size, tokens per pair, and pairs/s in PyTorch and served."""
    from benchmarks.families import SHAPE_PREFIX, non_embedding_parameters
    from benchmarks.harness import Cell, run_clients, served_scorer
    from benchmarks.workload import tokens_per_pair
    from triton_rerank.backends.tokenizer_model import Prompt
    from triton_rerank.serving.export import reference_reranker
    from triton_rerank.serving.export.llm import QWEN3_INSTRUCTION, QWEN3_TEMPLATE

    render = Prompt(QWEN3_TEMPLATE, QWEN3_INSTRUCTION).render if kind == "llm-reranker" else None
    tokenizer_json = repository / f"{label}-fp32_tokenizer" / "1" / "tokenizer.json"
    row = {
        "family": label,
        "model": model,
        "kind": kind,
        "random_weights": model.startswith(SHAPE_PREFIX),
        "non_embedding_parameters": non_embedding_parameters(path),
        "tokens_per_pair": tokens_per_pair(tokenizer_json, requests[:8], render),
        "pairs_per_s": {},
        "errors": {},
    }
    predict = reference_reranker(path, kind)
    variants = {"torch": lambda: lambda query, documents: predict([(query, d) for d in documents])}
    for precision in FAMILY_PRECISIONS:
        if f"{label}-{precision}" not in refused:
            name = f"{label}-{precision}"
            variants[precision] = served_scorer(url, config.batch_size, model_name=name)
    for variant, make_scorer in variants.items():
        make_scorer()(requests[0].query, requests[0].documents)  # warm-up: first calls allocate
        cell = Cell(f"{label} {variant}", FAMILY_N, 1)
        cell.add(run_clients(make_scorer, requests[1:], 1, duration_s=config.seconds))
        summary = cell.summary()
        row["pairs_per_s"][variant] = summary["pairs_per_s_median"]
        if summary["errors"]:
            row["errors"][variant] = f"{summary['errors']} failed, first: {summary['first_error']}"
        print(f"{label:<12} {variant:<6} {summary['pairs_per_s_median']:8.2f} pairs/s", flush=True)
    return row


DEFAULT_SHAPES = ("xlmr-large=shape:xlm-roberta-large", "qwen3-0.6b=shape:qwen3-reranker-0.6b")


def vocabulary_texts(scifact_folder: Path) -> list[str]:
    """What the XLM-R shape's vocabulary is trained on: SciFact's abstracts (never benchmarked; the
    folder beside the DL19 one), or synthetic passages without them."""
    import gzip

    scifact = scifact_folder / "corpus.jsonl.gz"
    if scifact.exists():
        with gzip.open(scifact, "rt") as lines:
            return [(row["title"] + " " + row["text"]) for row in map(json.loads, lines)]
    from benchmarks.workload import synthetic_passages

    return synthetic_passages(2000)


def run_cpu_scaling(config: BenchmarkConfig) -> int:
    """Served int8 pairs/s on 1, 2, 4, ... cores: the server (and the Python models it starts)
    pinned to the first C cores with C intra-op threads, its clients on the other cores where there
    are others; the efficiency per core is pairs/s per core against one core's."""
    from benchmarks.harness import Cell, run_clients, served_scorer
    from benchmarks.servers import Served
    from benchmarks.workload import load_requests
    from triton_rerank.serving.export import ensure_exported
    from triton_rerank.serving.layout import RepositorySettings

    started = time.perf_counter()
    usable = sorted(os.sched_getaffinity(0))
    if config.cpu_scaling[-1] > len(usable):
        print(f"error: {config.cpu_scaling[-1]} cores asked, this process may use {len(usable)}", file=sys.stderr)
        return 2
    data = config.data if config.data.exists() else None
    requests = load_requests(data, 100, 64)
    rows = []
    for cores in config.cpu_scaling:
        settings = RepositorySettings(intra_op_threads=cores, tokenizer_instances=max(1, cores // 4))
        repository = config.out / "work" / f"repository-int8-{cores}-cores"
        ensure_exported(repository, str(config.model), "cross-encoder", settings=settings, precision="int8")
        server_cpus, client_cpus = usable[:cores], usable[cores:] or usable
        clients = max(4, 2 * cores)
        served = Served(f"int8 on {cores} cores", repository).start(cpus=frozenset(server_cpus))
        os.sched_setaffinity(0, client_cpus)
        try:
            make_scorer = served_scorer(served.url(config.protocol), config.batch_size)
            make_scorer()(requests[0].query, requests[0].documents)  # warm-up
            cell = Cell(served.name, 100, clients)
            cell.add(run_clients(make_scorer, requests, clients, duration_s=config.seconds))
        finally:
            os.sched_setaffinity(0, usable)
            served.stop()
        summary = cell.summary()
        rows.append(
            {
                "cores": cores,
                "client_cores": len(client_cpus),
                "clients_share_the_server_cores": client_cpus == usable,
                "clients": clients,
                "pairs_per_s": summary["pairs_per_s_median"],
                "p50_ms": summary["p50_ms"],
                "errors": summary["errors"],
            }
        )
        print(f"{cores:>3} cores: {summary['pairs_per_s_median']:8.1f} pairs/s, {clients} clients", flush=True)
    return _scaling_report(config, data, rows, started)


def _scaling_report(config: BenchmarkConfig, data, rows: list[dict], started: float) -> int:
    """Writes cpu-scaling.json and .md; 1 when a request failed."""
    one_core = rows[0]["pairs_per_s"] / rows[0]["cores"]
    for row in rows:
        row["efficiency_per_core"] = row["pairs_per_s"] / (row["cores"] * one_core)
    report = {
        "machine": machine(),
        "model": str(config.model.name),
        "data": data_description(data),
        "documents_per_request": 100,
        "seconds_per_measurement": config.seconds,
        "rows": rows,
        "wall_s": time.perf_counter() - started,
    }
    (config.out / "cpu-scaling.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "| server cores | client cores | clients | pairs/s | pairs/s per core | efficiency per core (vs the first) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        shared = " (shared)" if row["clients_share_the_server_cores"] else ""
        lines.append(
            f"| {row['cores']} | {row['client_cores']}{shared} | {row['clients']} | {row['pairs_per_s']:.1f} "
            f"| {row['pairs_per_s'] / row['cores']:.1f} | {row['efficiency_per_core']:.0%} |"
        )
    (config.out / "cpu-scaling.md").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines) + f"\nwrote cpu-scaling.json, cpu-scaling.md to {config.out}")
    return 1 if any(row["errors"] for row in rows) else 0
