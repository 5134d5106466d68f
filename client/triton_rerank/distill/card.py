"""The cascade folder's model card: what it is, how it was made, and the dev figures it was written on."""

from __future__ import annotations


def model_card(report: dict) -> str:
    dev, chosen = report["dev"], report["dev"]["chosen"]
    rows = "\n".join(
        f"| {r['student']} | {r['k']} | {r['ndcg@10']} | {r['cost']} | {'yes' if r['holds'] else 'no'} |"
        for r in dev["tried"]
    )
    judged = "pseudo-queries (titles or first sentences)" if report["settings"]["pseudo_queries"] else "judged queries"
    return f"""---
library_name: sentence-transformers
pipeline_tag: text-ranking
base_model: {report["base_model"]}
tags: [cross-encoder, reranker, cascade, triton-rerank]
---
# A cascade distilled by `triton-rerank distill`

`student/` (BASE read as: {chosen["student"]}) ranks every candidate of a call; its best {chosen["k"]} go on to
`base/` (`{report["base_model"]}`, served as it is alone), whose scores they get. Serve it with
`triton-rerank export --model THIS_FOLDER`.

Judged on {judged} of `{report["data"]}`: {report["queries"]["dev"]} dev queries, BASE's scores of their
candidates; the other queries' pairs calibrate an int8 student.
Seed {report["seed"]}, wall time {report["wall_seconds"]} s.

## Dev ({dev["queries"]} queries, first stage's top {dev["depth"]}, nDCG@10)
BASE reading all {dev["depth"]}: {dev["base_ndcg@10"]}; the student alone: {dev["student_alone_ndcg@10"]}.
Tolerance {dev["tolerance"]}; cost is the cascade's in-process time per query as a fraction of BASE's.

| student | k | nDCG@10 | cost | holds |
| --- | ---: | ---: | ---: | --- |
{rows}

`distill-report.json` holds all of the above, and every setting.
"""
