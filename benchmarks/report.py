"""The benchmark's report: ratios against the baseline, a Markdown table, and a plot."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.harness import Cell


def save(out: Path, stem: str, report: dict, table: str) -> int:
    """``stem``.json and ``stem``.md in ``out``, the table printed; exit code 1 when a request failed."""
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{stem}.md").write_text(table)
    print("\n" + table + f"\nwrote {stem}.json, {stem}.md to {out} in {report['wall_s']:.0f} s")
    return 1 if any(cell["errors"] for cell in report.get("cells", ())) else 0


def latency_table(first_column: str, rows: dict[str, dict]) -> list[str]:
    """A Markdown table of each row's p50 and p95 (``harness.percentiles_ms``'s figures)."""
    body = [f"| {name} | {values['p50_ms']:.1f} | {values['p95_ms']:.1f} |" for name, values in rows.items()]
    return [f"| {first_column} | p50 ms | p95 ms |", "| --- | --- | --- |", *body]


def ratios(cells: list[Cell]) -> list[dict]:
    """Each served cell against the baseline at the same N and clients, and at one client."""
    by_key = {(c.variant, c.n, c.clients): c.summary() for c in cells}
    out = []
    for (variant, n, clients), s in by_key.items():
        if variant == "baseline":
            continue
        same = by_key.get(("baseline", n, clients))
        single = by_key.get(("baseline", n, 1))
        out.append(
            {
                "variant": variant,
                "n": n,
                "clients": clients,
                "x_baseline_same_clients": s["pairs_per_s_median"] / same["pairs_per_s_median"] if same else None,
                "x_baseline_1_client": s["pairs_per_s_median"] / single["pairs_per_s_median"] if single else None,
                "p50_vs_baseline": s["p50_ms"] / same["p50_ms"] if same else None,
            }
        )
    return out


# What each tier promises against fp32 PyTorch, on the benchmark's DL19 requests. (int8's bar is
# ranking quality: SciFact nDCG@10 within 0.005 of fp32, which `evaluate` measures, not this.)
TIER_BARS = {
    "exact": ("max |Δ| ≤ 1e-4", lambda a: a["max_abs_diff"] <= 1e-4),
    "near-exact": ("rank corr. ≥ 0.999, top-10 identical", lambda a: a["rank_correlation"] >= 0.999
                   and a["top10_agreement"] == 1.0),
    "int8": ("SciFact nDCG@10 within 0.005 (evaluate)", None),
}  # fmt: skip
TIER_TARGET = 1.25  # served ≥ 1.25× the fastest in-process peer of its tier


def tier_verdicts(cells: list[dict], accuracy: dict, tiers: dict) -> list[dict]:
    """Per tier and client count: the served precision against the fastest peer of its tier (and
    against the torch baseline), and whether each side meets the tier's accuracy bar."""
    rate = {(c["variant"], c["clients"]): c["pairs_per_s_median"] for c in cells if c["n"] == 100}
    out = []
    for tier, (peers, exports) in tiers.items():
        bar_text, meets = TIER_BARS[tier]
        for served, clients in ((f"served {e}", c) for e in exports for c in sorted({c for _, c in rate})):
            peer_rates = {name: rate[(name, clients)] for _, name in peers if (name, clients) in rate}
            mine = rate.get((served, clients))
            fastest = max(peer_rates, key=peer_rates.get) if peer_rates else None
            baseline = rate.get(("pymilvus (torch)", clients))
            out.append(
                {
                    "tier": tier,
                    "clients": clients,
                    "served": served,
                    "served_pairs_per_s": mine,
                    "fastest_peer": fastest,
                    "fastest_peer_pairs_per_s": peer_rates.get(fastest),
                    "x_fastest_peer": mine / peer_rates[fastest] if mine and fastest else None,
                    "x_torch": mine / baseline if mine and baseline else None,
                    "target_met": bool(mine and fastest and mine / peer_rates[fastest] >= TIER_TARGET),
                    "bar": bar_text,
                    "meets_bar": {
                        name: meets(accuracy[name]) if meets and name in accuracy else None
                        for name in [*peer_rates, served]
                    },
                }
            )
    return out


def tiers_markdown(report: dict) -> str:
    lines = [
        "# Accuracy tiers: served against the strongest in-process peers",
        "",
        f"Machine: {report['machine']}. Model: {report['model']}. Data: {report['data']}, N = 100 documents a "
        f"request. {report['rounds']} interleaved rounds; pairs/s is the median of the rounds. Accuracy against "
        f"fp32 PyTorch (pymilvus' function) on {report['accuracy_requests']} requests.",
        "",
        "| tier | variant | pairs/s, 1 client | pairs/s, 4 clients | failed requests (1 / 4 clients) | max abs diff "
        "| rank corr. | top-10 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rate = {(c["variant"], c["clients"]): c["pairs_per_s_median"] for c in report["cells"]}
    failed = {(c["variant"], c["clients"]): f"{c['errors']} of {c['requests'] + c['errors']}" for c in report["cells"]}
    for tier, names in {"baseline": ["pymilvus (torch)"], **report["tiers"]}.items():
        for name in names:
            if name in report["skipped"]:
                lines.append(f"| {tier} | {name} | not run: {report['skipped'][name][:120]} | | | | | |")
                continue
            a = report["accuracy"][name]
            lines.append(
                f"| {tier} | {name} | {rate.get((name, 1), 0):.1f} | {rate.get((name, 4), 0):.1f} "
                f"| {failed.get((name, 1), '—')} / {failed.get((name, 4), '—')} "
                f"| {a['max_abs_diff']:.2g} | {a['rank_correlation']:.4f} | {a['top10_agreement']:.0%} |"
            )
    errors = sorted({c["first_error"] for c in report["cells"] if c.get("first_error")})
    if errors:
        lines += ["", "A failed request is left out of pairs/s; first errors: " + "; ".join(errors) + "."]
    lines += [
        "",
        f"| tier | served | clients | pairs/s | fastest peer | its pairs/s | × peer (target {TIER_TARGET}) "
        "| × torch | accuracy bar | bar met |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for v in report["verdicts"]:
        met = ", ".join(f"{n}: {'yes' if ok else 'no'}" for n, ok in v["meets_bar"].items() if ok is not None)
        lines.append(
            f"| {v['tier']} | {v['served']} | {v['clients']} | {_rate(v['served_pairs_per_s'])} "
            f"| {v['fastest_peer'] or '—'} "
            f"| {_rate(v['fastest_peer_pairs_per_s'])} | {_x(v['x_fastest_peer'])} | {_x(v['x_torch'])} "
            f"| {v['bar']} | {met or '—'} |"
        )
    return "\n".join(lines) + "\n"


def families_markdown(report: dict) -> str:
    """The speed per family: one row a family, PyTorch in process beside the served fp32 and int8."""
    lines = [
        "# Speed per model family",
        "",
        f"Machine: {report['machine']}. Data: {report['data']}, {report['documents_per_request']} documents a "
        f"request, {report['clients']} client, {report['seconds_per_measurement']:.0f} s per measurement. "
        "PyTorch: the family's in-process reference (CrossEncoder.predict, or the LLM reranker's model-card code).",
        "",
        "| family | model | non-embedding parameters | tokens a pair (mean) | PyTorch pairs/s | served fp32 pairs/s "
        "| served int8 pairs/s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report["families"]:
        rates = row["pairs_per_s"]
        served = {
            precision: f"{_rate(rates[precision])} ({_x(rates[precision] / rates['torch'])})"
            if precision in rates
            else "refused by its check"
            for precision in ("fp32", "int8")
        }
        weights = " (random weights)" if row["random_weights"] else ""
        model = Path(row["model"]).name if Path(row["model"]).exists() else row["model"]  # a folder: its name
        lines.append(
            f"| {row['family']} | {model}{weights} | {row['non_embedding_parameters'] / 1e6:.0f}M "
            f"| {row['tokens_per_pair']['mean']:.0f} | {_rate(rates['torch'])} | {served['fp32']} | {served['int8']} |"
        )
    if any(row["random_weights"] for row in report["families"]):
        lines += [
            "",
            "Random weights measure speed only: the arithmetic is that of the real checkpoint's sizes, but whether "
            "int8 keeps such a model's ranking needs its real weights.",
        ]
    for name, reason in report["refused"].items():
        lines += ["", f"{name} refused: {reason}"]
    for row in report["families"]:
        for variant, error in row["errors"].items():
            lines += ["", f"{row['family']} {variant}: {error}"]
    return "\n".join(lines) + "\n"


def _rate(value: float | None) -> str:
    return f"{value:.1f}" if value else "—"


def api_overhead(cells: list[Cell]) -> list[dict]:
    """The API's cells against the direct client's at the same N and clients."""
    by_key = {(c.variant, c.n, c.clients): c.summary() for c in cells}
    out = []
    for (variant, n, clients), api in by_key.items():
        direct = by_key.get(("direct gRPC", n, clients))
        if variant != "via API" or direct is None:
            continue
        out.append(
            {
                "n": n,
                "clients": clients,
                "direct_pairs_per_s": direct["pairs_per_s_median"],
                "api_pairs_per_s": api["pairs_per_s_median"],
                "throughput_kept": api["pairs_per_s_median"] / direct["pairs_per_s_median"],
                "direct_p50_ms": direct["p50_ms"],
                "api_p50_ms": api["p50_ms"],
                "p50_added_ms": api["p50_ms"] - direct["p50_ms"],
            }
        )
    return sorted(out, key=lambda row: (row["n"], row["clients"]))


def api_markdown(report: dict) -> str:
    agreement = report["api_vs_direct_scores"]
    lines = [
        "# The rerank API against the direct gRPC client",
        "",
        f"Machine: {report['machine']}. Model: {report['model']}. Data: {report['data']}. "
        f"{report['rounds']} interleaved rounds; pairs/s is the median of the rounds. Scores through the "
        f"API vs direct: max |Δ| {agreement['max_abs_diff']:.1e} (logits), rank correlation "
        f"{agreement['rank_correlation']:.4f}.",
        "",
        "| N | clients | direct pairs/s | API pairs/s | kept | direct p50 ms | API p50 ms | added p50 ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report["overhead"]:
        lines.append(
            f"| {row['n']} | {row['clients']} | {row['direct_pairs_per_s']:.0f} | {row['api_pairs_per_s']:.0f} | "
            f"{row['throughput_kept']:.0%} | {row['direct_p50_ms']:.1f} | {row['api_p50_ms']:.1f} | "
            f"{row['p50_added_ms']:+.1f} |"
        )
    return "\n".join(lines) + "\n"


def markdown(report: dict) -> str:
    lines = [
        f"# Benchmark ({report['mode']})",
        "",
        f"Machine: {report['machine']}. Model: {report['model']}. Data: {report['data']}; "
        f"tokens/pair mean {report['tokens_per_pair']['mean']:.0f}, p95 {report['tokens_per_pair']['p95']:.0f}. "
        f"Served over {report['protocol']}, client batch_size {report['batch_size']}; {report['rounds']} "
        "interleaved rounds; pairs/s is the median of the rounds (best in brackets).",
        "",
        "| variant | N | clients | pairs/s | × baseline (same clients) | × baseline (1 client) "
        "| p50 ms | p95 ms | p99 ms | errors | queue / compute ms (cross_encoder) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    ratio = {(r["variant"], r["n"], r["clients"]): r for r in report["ratios"]}
    for s in report["cells"]:
        r = ratio.get((s["variant"], s["n"], s["clients"]), {})
        triton = s.get("triton", {}).get("cross_encoder")
        split = f"{triton['queue_ms_per_request']:.0f} / {triton['compute_ms_per_request']:.0f}" if triton else "—"
        rate = f"{s['pairs_per_s_median']:.1f} ({s['pairs_per_s_best']:.1f})"
        lines.append(
            f"| {s['variant']} | {s['n']} | {s['clients']} | {rate} "
            f"| {_x(r.get('x_baseline_same_clients'))} | {_x(r.get('x_baseline_1_client'))} "
            f"| {s['p50_ms']:.0f} | {s['p95_ms']:.0f} | {s['p99_ms']:.0f} | {s['errors']} | {split} |"
        )
    lines += [
        "",
        "| served vs baseline scores | max abs diff | rank correlation | top-10 agreement |",
        "| --- | --- | --- | --- |",
    ]
    for name, a in report["accuracy"].items():
        lines.append(f"| {name} | {a['max_abs_diff']:.2g} | {a['rank_correlation']:.4f} | {a['top10_agreement']:.0%} |")
    if report.get("levers"):
        lines += ["", "Levers, one at a time (int8 served, N = 100, 4 clients):", ""]
        lines += ["| lever | pairs/s | p50 ms | rows per execution |", "| --- | --- | --- | --- |"]
        for lever in report["levers"]:
            if "pairs_per_s_median" in lever:
                rows = lever.get("triton", {}).get("cross_encoder", {}).get("rows_per_execution")
                lines.append(
                    f"| {lever['variant']} | {lever['pairs_per_s_median']:.1f} | {lever['p50_ms']:.0f} | {rows:.0f} |"
                    if rows
                    else f"| {lever['variant']} | {lever['pairs_per_s_median']:.1f} | {lever['p50_ms']:.0f} | — |"
                )
            else:
                lines.append(
                    f"| {lever['variant']} | — | {lever['p50_ms_cache_off']:.0f} off, "
                    f"{lever['p50_ms_cache_on']:.1f} on | — |"
                )
    perf = report.get("perf_analyzer", {})
    if perf.get("ran"):
        lines += ["", f"perf_analyzer (gRPC, int8, N = {perf['n']}):", ""]
        lines += ["| concurrency | pairs/s | p50 ms | p99 ms | server queue ms | server compute ms |"]
        lines += ["| --- | --- | --- | --- | --- | --- |"]
        for r in sorted(perf["results"], key=lambda r: r["concurrency"]):
            lines.append(
                f"| {r['concurrency']} | {r['pairs_per_s']:.1f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} "
                f"| {r['server_queue_ms']:.0f} | {r['server_compute_ms']:.0f} |"
            )
    elif perf:
        lines += ["", f"perf_analyzer did not run: {perf['why']}"]
    return "\n".join(lines) + "\n"


def _x(value: float | None) -> str:
    return f"{value:.2f}×" if value else "—"


def plot(report: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ns = sorted({s["n"] for s in report["cells"]})
    fig, axes = plt.subplots(1, len(ns), figsize=(5 * len(ns), 4), squeeze=False)
    for ax, n in zip(axes[0], ns, strict=True):
        for variant in dict.fromkeys(s["variant"] for s in report["cells"]):
            points = sorted(
                (s["clients"], s["pairs_per_s_median"])
                for s in report["cells"]
                if s["variant"] == variant and s["n"] == n
            )
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=variant)
        ax.set(title=f"1 query x {n} documents", xlabel="concurrent clients", ylabel="pairs/s", xscale="log")
        ax.set_xticks(
            sorted({s["clients"] for s in report["cells"]}),
            labels=sorted({str(s["clients"]) for s in report["cells"]}, key=int),
        )
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="center right")
    fig.suptitle(f"Reranking throughput, {report['machine']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True
