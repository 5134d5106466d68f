"""Fit a cross-encoder to the user's own collection: ``triton-rerank train``.

    from triton_rerank.training import TrainConfig, train
    report = train(TrainConfig(data=Path("my-beir-folder"), model="cross-encoder/ms-marco-MiniLM-L-6-v2",
                               output=Path("my-reranker"), max_minutes=15))

The parts, in the order a run uses them: ``data`` (BEIR, JSONL, pseudo-queries), ``first_stage``
(the user's Milvus collection, or the corpus searched in-process), ``mining`` (hard negatives with a
guard against unjudged positives), ``model`` (cross-encoder or encoder + new head), ``budget`` (the
time-fitted schedule), ``dev`` (the verdict, and the blend with the first stage), ``output`` (the
CrossEncoder folder with its model card), ``runner`` (all of it), ``crossval`` (k-fold of all of it).
Needs the ``train`` extra (torch, sentence-transformers v4+, datasets, accelerate).
"""

from triton_rerank.training.config import TrainConfig


def train(config: TrainConfig, **keywords) -> dict:
    """Run one training; see ``runner.train``."""
    from triton_rerank.training.runner import train as run

    return run(config, **keywords)


__all__ = ["TrainConfig", "train"]
