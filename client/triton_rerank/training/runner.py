"""One training run, end to end: read the data, mine negatives from the first stage, judge the base
model on dev, train to the budget keeping the best dev state, and write the result only when it
beats the base (or ``force``)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import triton_rerank.training.data as data_module
import triton_rerank.training.model as model_module
from triton_rerank.errors import RerankInputError
from triton_rerank.model_sources import resolve_model
from triton_rerank.training.config import TrainConfig
from triton_rerank.training.dev import DevResult, DevSet
from triton_rerank.training.first_stage import InProcessDense, MilvusFirstStage
from triton_rerank.training.mining import first_stage_hits, negative_pools
from triton_rerank.training.output import write_model
from triton_rerank.training.trainer import fit


class NotBetterError(RerankInputError):
    """The trained model does not beat its base on dev: nothing was written."""


def load_training(config: TrainConfig) -> data_module.TrainingData:
    """Every judged query of ``config.data`` (its ``--split``), before any dev split."""
    source = Path(config.data)
    if config.pseudo_queries:
        return data_module.pseudo_queries(source, config.max_pseudo_queries, config.seed)
    if source.is_file():
        return data_module.load_jsonl(source)
    if not source.is_dir():
        raise data_module.TrainingDataError(f"--data {source} does not exist")
    return data_module.load_beir(source, config.split, skip_unknown_documents=config.skip_unknown_documents)


def mixed_pseudo_queries(config: TrainConfig, kind: str) -> data_module.TrainingData | None:
    """Title pseudo-queries to train beside the labels, or None.

    A plain encoder's new head starts from random weights; a few hundred labelled queries and a
    budget of minutes move it little. Titles as queries for their own text (the shared SciFact
    model's first stage of training) teach it pair scoring from the corpus itself, no labels read."""
    wanted = config.mix_pseudo_queries
    if config.pseudo_queries or wanted == "none" or (wanted == "auto" and kind != "encoder"):
        return None
    source = Path(config.data)
    if not source.is_dir():
        if wanted == "auto":
            return None
        raise data_module.TrainingDataError(
            f"--mix-pseudo-queries titles reads a BEIR folder's corpus; --data {source} is not one"
        )
    try:
        return data_module.pseudo_queries(source, config.max_pseudo_queries, config.seed, query_prefix="title:")
    except data_module.TrainingDataError as err:
        if wanted == "titles":
            raise
        print(f"no title pseudo-queries beside the labels: {err}", flush=True)
        return None


def read_data(config: TrainConfig):
    """(train, dev) as the config names them."""
    train = load_training(config)
    if not config.dev_split or config.pseudo_queries or Path(config.data).is_file():
        return train.split(config.dev_fraction, config.seed, config.max_dev_queries)
    dev = data_module.judged_beir(
        Path(config.data), config.dev_split, train.corpus, skip_unknown_documents=config.skip_unknown_documents
    )
    if shared := sorted(set(train.queries) & set(dev.queries)):
        raise data_module.TrainingDataError(
            f"--split {config.split} and --dev-split {config.dev_split} share {len(shared)} queries "
            f"({', '.join(shared[:5])}): dev must be held out"
        )
    if len(dev.queries) > config.max_dev_queries:
        print(
            f"dev: {config.max_dev_queries} of --dev-split's {len(dev.queries)} queries (--max-dev-queries)", flush=True
        )
    return train, dev.sample(config.max_dev_queries, config.seed)


@contextlib.contextmanager
def open_first_stage(config: TrainConfig, corpus: dict[str, str]):
    if not config.milvus_uri:
        yield InProcessDense(corpus, config.embedder_model)
        return
    from triton_rerank.embed import TritonEmbedFunction
    from triton_rerank.store import MilvusStore

    with (
        MilvusStore(
            config.milvus_uri,
            collection=config.collection,
            create=False,  # the user's own collection, searched as the pipeline searches it
            token=config.milvus_token,
            ca_file=config.milvus_ca_file,
        ) as store,
        TritonEmbedFunction(config.triton_url) as embed,
    ):
        yield MilvusFirstStage(store, config.search_stage().resolve(store), embed.encode, corpus)


def train(config: TrainConfig, *, first_stage=None, data=None) -> dict:
    """Run ``config``; returns the report written beside the model (``train-report.json``).

    ``data`` ((train, dev) ``TrainingData``) and ``first_stage`` replace what ``config`` names: a
    cross-validation reads and embeds the collection once for all its folds."""
    started = time.perf_counter()
    output = Path(config.output)
    if output.exists():
        raise RerankInputError(f"--output {output} exists: name a new folder (nothing is overwritten)")
    model_name = resolve_model(config.model)
    kind = model_module.model_kind(model_name)
    titles = mixed_pseudo_queries(config, kind)
    train_data, dev_data = data or read_data(config)
    print(
        f"data: {len(train_data.queries)} training queries, {len(dev_data.queries)} dev queries, "
        f"{len(train_data.corpus)} documents" + (f", {len(titles.queries)} title pseudo-queries" if titles else ""),
        flush=True,
    )
    with contextlib.ExitStack() as stack:
        if first_stage is None:
            first_stage = stack.enter_context(open_first_stage(config, train_data.corpus))
        hits, mining, pools = _mine(config, first_stage, train_data, dev=dev_data)
        sources, title_mining = [(train_data, pools)], None
        if titles:
            _, found, title_pools = _mine(config, first_stage, titles, what="the title pseudo-queries")
            sources.append((titles, title_pools))
            title_mining = {"kind": "titles", "queries": len(titles.queries), **found.as_dict()}

    device = _device()
    cross_encoder = model_module.load(model_name, kind, config.max_length, device)
    dev_set = DevSet(dev_data, hits, config.dev_depth)
    first_ndcg = dev_set.first_stage_ndcg()
    base = dev_set.evaluate(cross_encoder, config.blend)
    print(f"dev nDCG@10: first stage {first_ndcg:.4f}, base model {_shown(base)} ({base.seconds:.0f} s)", flush=True)

    trained, curve, recipe = fit(config, kind, cross_encoder, sources, dev_set, base, device)
    report = _report(config, kind, (train_data, dev_data), first_stage.name, mining, recipe, device)
    report["mixed_pseudo_queries"] = title_mining
    report["dev_results"] = {
        "depth": config.dev_depth,
        "first_stage_ndcg@10": round(first_ndcg, 4),
        "base": base.as_dict(),
        "trained": trained.as_dict(),
        "curve": curve,
    }
    report["blend"] = _blend(config, trained)
    better = trained.blended_ndcg > base.blended_ndcg
    if not better and not config.force:
        raise NotBetterError(
            f"the trained model does not beat its base on dev (nDCG@10 {_shown(trained)} against {_shown(base)}): "
            f"nothing written to {output}. Give it more data or minutes, or pass --force to write it anyway"
        )
    report["written_because"] = "better on dev" if better else "--force"
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    write_model(cross_encoder, output, report)
    print(f"wrote {output}: dev nDCG@10 {_shown(base)} -> {_shown(trained)}", flush=True)
    return report


def _report(config: TrainConfig, kind: str, data, first_stage: str, mining, recipe: dict, device: str) -> dict:
    train_data, dev_data = data
    return {
        "base_model": config.model,
        "base_kind": kind,
        "data": str(config.data),
        "split": None if config.pseudo_queries or Path(config.data).is_file() else config.split,
        "dev": (config.dev_split or f"{config.dev_fraction:g} of the training queries")
        + f" (at most {config.max_dev_queries}, seed {config.seed})",
        "pseudo_queries": config.pseudo_queries,
        "queries": {"train": len(train_data.queries), "dev": len(dev_data.queries)},
        "first_stage": first_stage,
        "mining": {**mining.as_dict(), "relative_margin": config.relative_margin, "depth": config.mining_depth},
        "recipe": recipe,
        "seed": config.seed,
        "device": device,
    }


def _mine(config: TrainConfig, first_stage, data, *, dev=None, what: str = "the training queries"):
    """The first stage's hits for ``data``'s queries (and ``dev``'s, as deep as dev reranks), and
    ``data``'s negative pools."""
    started = time.perf_counter()
    searched = data_module.TrainingData(data.corpus, {**data.queries, **(dev.queries if dev else {})}, {})
    depth = max(config.mining_depth, config.dev_depth) if dev else config.mining_depth
    hits = first_stage_hits(searched, first_stage, depth)
    pools, mining = negative_pools(data, hits, first_stage, config.mining_depth, config.relative_margin)
    mining.seconds = round(time.perf_counter() - started, 1)
    print(f"mined {what} with {first_stage.name}: {mining.as_dict()}", flush=True)
    return hits, mining, pools


def _blend(config: TrainConfig, trained: DevResult) -> dict | None:
    if not config.blend or trained.blend_weight == 1.0:
        return None
    return {
        "weight": trained.blend_weight,
        "normalization": "z-score within each query's candidates",
        "formula": "weight * z(reranker) + (1 - weight) * z(first stage)",
    }


def _shown(result: DevResult) -> str:
    if result.blend_weight == 1.0:
        return f"{result.ndcg:.4f}"
    return f"{result.ndcg:.4f} ({result.blended_ndcg:.4f} blended, w={result.blend_weight})"


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
