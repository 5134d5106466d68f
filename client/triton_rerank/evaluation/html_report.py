"""``evaluate``'s report for a person: one self-contained HTML file beside the JSON (no script, no
CDN; inline SVG charts). It shows the summary table, each query's nDCG@10 before and after
reranking (which queries the reranker hurt, and by how much), and the first stages side by side,
each alone and reranked."""

from __future__ import annotations

import html
from pathlib import Path

from triton_rerank.metrics import ndcg_at_k

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:1rem auto;padding:0 1rem;color:#1f2328}
table{border-collapse:collapse;margin:0.5rem 0 1.5rem}td,th{border:1px solid #d0d7de;padding:0.25rem 0.5rem;
text-align:left;font-size:0.875rem}td.n{text-align:right;font-variant-numeric:tabular-nums}
.hurt{color:#cf222e}.helped{color:#1a7f37}svg{max-width:100%;height:auto}p.note{color:#57606a}"""


def per_query(run: dict, qrels: dict) -> dict[str, float]:
    """Each judged query's nDCG@10 (a query with no relevant document is left out, as ``evaluate`` does)."""
    judged = [q for q in qrels if any(g > 0 for g in qrels[q].values())]
    return {q: ndcg_at_k(run.get(q, []), qrels[q], 10) for q in judged}


def _cell(value: float) -> str:
    return f'<td class="n">{value:.4f}</td>'


def summary_table(rows: dict) -> str:
    best = max(scores["ndcg@10"] for scores in rows.values()) or 1.0
    body = "".join(
        f"<tr><td>{html.escape(name)}</td>{_cell(s['ndcg@10'])}{_cell(s['mrr@10'])}{_cell(s['recall@100'])}"
        f'<td><svg width="160" height="12"><rect width="{160 * s["ndcg@10"] / best:.1f}" height="12" '
        f'fill="{"#0969da" if name.startswith("reranked") else "#8c959f"}"/></svg></td></tr>'
        for name, s in rows.items()
    )
    return f"<table><tr><th>run</th><th>nDCG@10</th><th>MRR@10</th><th>Recall@100</th><th></th></tr>{body}</table>"


def scatter(before: dict[str, float], after: dict[str, float], size: int = 320) -> str:
    """Each query as a dot: nDCG@10 of the first stage (x) and reranked (y); above the diagonal, it helped."""
    pad, span = 32, size - 48
    dots = "".join(
        f'<circle cx="{pad + span * before[q]:.1f}" cy="{pad / 2 + span * (1 - after[q]):.1f}" r="3" '
        f'fill="{"#1a7f37" if after[q] > before[q] else "#cf222e" if after[q] < before[q] else "#8c959f"}" '
        f'fill-opacity="0.6"><title>{html.escape(q)}: {before[q]:.3f} → {after[q]:.3f}</title></circle>'
        for q in before
    )
    frame = (
        f'<line x1="{pad}" y1="{pad / 2 + span}" x2="{pad + span}" y2="{pad / 2}" stroke="#d0d7de"/>'
        f'<rect x="{pad}" y="{pad / 2}" width="{span}" height="{span}" fill="none" stroke="#8c959f"/>'
        f'<text x="{pad + span / 2}" y="{size - 4}" text-anchor="middle" font-size="11">first stage nDCG@10</text>'
        f'<text x="10" y="{pad / 2 + span / 2}" font-size="11" transform="rotate(-90 10 {pad / 2 + span / 2})" '
        'text-anchor="middle">reranked nDCG@10</text>'
    )
    return f'<svg viewBox="0 0 {size} {size}" width="{size}" height="{size}">{frame}{dots}</svg>'


def query_table(rows: list[tuple[str, float, float]], queries: dict[str, str]) -> str:
    body = "".join(
        f"<tr><td>{html.escape(q)}</td><td>{html.escape(queries.get(q, ''))}</td>{_cell(b)}{_cell(a)}"
        f'<td class="n {"hurt" if a < b else "helped"}">{a - b:+.4f}</td></tr>'
        for q, b, a in rows
    )
    return f"<table><tr><th>query</th><th>text</th><th>before</th><th>after</th><th>change</th></tr>{body}</table>"


def first_stage_bars(pairs: dict[str, tuple[float, float]]) -> str:
    """Each first stage's nDCG@10 alone (grey) and reranked (blue), side by side."""
    width, bar = 120 * len(pairs) + 40, 36
    parts = []
    for i, (name, (alone, reranked)) in enumerate(pairs.items()):
        x = 40 + 120 * i
        for j, (value, colour) in enumerate(((alone, "#8c959f"), (reranked, "#0969da"))):
            height = 160 * value
            parts.append(
                f'<rect x="{x + j * (bar + 4)}" y="{180 - height:.1f}" width="{bar}" height="{height:.1f}" '
                f'fill="{colour}"/><text x="{x + j * (bar + 4) + bar / 2}" y="{176 - height:.1f}" font-size="10" '
                f'text-anchor="middle">{value:.3f}</text>'
            )
        parts.append(f'<text x="{x + bar + 2}" y="196" font-size="11" text-anchor="middle">{html.escape(name)}</text>')
    return f'<svg viewBox="0 0 {width} 200" width="{width}" height="200">{"".join(parts)}</svg>'


def write_html(path: Path, report: dict, first_stages: dict, reranked: dict, qrels: dict, queries: dict) -> dict:
    """The report at ``path``; returns ``report``. ``first_stages``: {name: run}; ``reranked``: the
    served runs by the names ``served_runs`` gives them (the first one reranks the first first stage)."""
    primary, primary_run = next(iter(first_stages.items()))
    own = next(name for name in reranked if not name.startswith(("after ", "cascade")))
    before, after = per_query(primary_run, qrels), per_query(reranked[own], qrels)
    changes = sorted(((q, before[q], after[q]) for q in before), key=lambda row: row[2] - row[1])
    hurt, helped = [r for r in changes if r[2] < r[1]], [r for r in changes if r[2] > r[1]]

    def mean(run: dict) -> float:
        return sum(per_query(run, qrels).values()) / len(before)

    def reranked_on(name: str) -> dict | None:
        return reranked[own] if name == primary else reranked.get(f"after {name}")

    pairs = {name: (mean(run), mean(reranked_on(name))) for name, run in first_stages.items() if reranked_on(name)}
    title = f"{Path(report['data']).name} {report['split']}: {report['reranker_model']}"
    text = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="note">{report["queries"]} judged queries, {report["documents"]} documents; reranker
{html.escape(report["reranker_model"])} ({html.escape(report["reranker_precision"])}), first stage
{html.escape(", ".join(report["first_stage"]))} top-{report["retrieve_k"]}; {html.escape(report["machine"])}.</p>
<h2>Summary</h2>{summary_table(report["results"])}
<h2>Per query: {html.escape(primary)} before and after reranking</h2>
<p>The reranker helped <b class="helped">{len(helped)}</b> queries, hurt <b class="hurt">{len(hurt)}</b>, and left
{len(changes) - len(hurt) - len(helped)} unchanged (nDCG@10 on {html.escape(primary)} top-{report["retrieve_k"]}).</p>
{scatter(before, after)}
<h3>The queries it hurt most</h3>{query_table(hurt[:20], queries)}
<h3>The queries it helped most</h3>{query_table(helped[::-1][:20], queries)}
<h2>First stages side by side</h2>
<p class="note">nDCG@10 of each first stage alone (grey) and reranked by the served reranker (blue).</p>
{first_stage_bars(pairs)}
</body></html>
"""
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}: per-query nDCG@10 before and after reranking, and the first stages side by side")
    return report
