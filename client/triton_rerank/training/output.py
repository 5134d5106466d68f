"""The trained model's folder: a sentence-transformers CrossEncoder (``CrossEncoder(path)`` loads
it, ``triton-rerank export --model path`` exports it), a model card and ``train-report.json``.
It is written beside its final place and renamed into it, so that a failed run leaves nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetensors import SafetensorError


def write_model(cross_encoder, output: Path, report: dict) -> None:
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f".{output.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        cross_encoder.save_pretrained(str(staging))
        (staging / "README.md").write_text(model_card(report), encoding="utf-8")
        (staging / "train-report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        staging.rename(output)
    except SafetensorError as err:  # a full disk, say: an OSError to the command line, without a traceback
        shutil.rmtree(staging, ignore_errors=True)
        raise OSError(f"cannot write the trained model beside {output}: {err}") from err
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def model_card(report: dict) -> str:
    dev, recipe, mining = report["dev_results"], report["recipe"], report["mining"]
    base, trained = dev["base"], dev["trained"]
    blend = report["blend"]
    titles = report.get("mixed_pseudo_queries")
    mixed = f"{titles['queries']} title pseudo-queries" if titles else "no pseudo-queries"
    curve = "\n".join(
        f"| {p['minutes']} | {p['step']} | {p['dev_ndcg@10']} | {p['reranker_alone']} |" for p in dev["curve"]
    )
    return f"""---
library_name: sentence-transformers
pipeline_tag: text-ranking
base_model: {report["base_model"]}
tags: [cross-encoder, reranker, triton-rerank]
---
# A cross-encoder fine-tuned by `triton-rerank train`

Base model: `{report["base_model"]}` ({report["base_kind"]}). Data: `{report["data"]}`
(split {report["split"]}, pseudo-queries: {report["pseudo_queries"]}); {report["queries"]["train"]} training
queries, {report["queries"]["dev"]} dev queries (dev: {report["dev"]}); {mixed} trained beside them.
Seed {report["seed"]}, device {report["device"]}, wall time {report["wall_seconds"]} s. Scores are raw logits
(higher = more relevant).

## Dev split (first stage's top {dev["depth"]} reranked, nDCG@10)
| | reranker alone | blended with the first stage | blend weight |
| --- | --- | --- | --- |
| first stage ({report["first_stage"]}) | {dev["first_stage_ndcg@10"]} | | |
| base model | {base["ndcg@10"]} | {base["blended_ndcg@10"]} | {base["blend_weight"]} |
| this model | {trained["ndcg@10"]} | {trained["blended_ndcg@10"]} | {trained["blend_weight"]} |

Blend kept: {json.dumps(blend) if blend else "no (the reranker alone measured best on dev)"}.
Written because: {report.get("written_because")}.

## Recipe
Loss {recipe["loss"]} (pos_weight {recipe["pos_weight"]}); per positive {recipe["hard_negatives"]} hard negatives
from the first stage's top {mining["depth"]} (relative margin {mining["relative_margin"]}) and
{recipe["random_negatives"]} random, drawn afresh each epoch; learning rates {recipe["learning_rates"]},
{recipe["schedule"]}; batch {recipe["batch_size"]}, max length {recipe["max_length"]}; budget
{recipe["max_minutes"]} min: {recipe["steps"]} steps, {recipe["pairs_trained"]} pairs
({recipe["pairs_per_second"]} pairs/s), peak memory {recipe["peak_memory_mib"]} MiB.
Mining: {json.dumps({k: v for k, v in mining.items() if k not in ("depth", "relative_margin")})}.

## Dev nDCG@10 during training (the checkpoint is chosen on the first figure: blended, where the blend is on)
| training minutes | step | dev nDCG@10 | the reranker alone |
| --- | --- | --- | --- |
{curve}

`train-report.json` holds all of the above.
"""
