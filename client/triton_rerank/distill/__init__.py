"""Make a reranker cheaper on the user's own collection at the same ranking: ``triton-rerank distill``.

    from triton_rerank.distill import DistillConfig, distill
    report = distill(DistillConfig(data=Path("my-beir-folder"), model="my-reranker", output=Path("my-cascade")))

A student (BASE's first layers) learns BASE's scores on the collection's queries; served as a
cascade inside the model repository (``serving/export/cascade.py``), it ranks every candidate and
BASE reads only its best k. The parts: ``scorer`` (a model's served scores in process), ``student``
(cut and trained), ``verdict`` (the dev check that chooses k and the student's precision), ``card``,
``runner`` (all of it). Needs the ``train`` extra.
"""

from triton_rerank.distill.config import DistillConfig


def distill(config: DistillConfig) -> dict:
    """Run one distillation; see ``runner.distill``."""
    from triton_rerank.distill.runner import distill as run

    return run(config)


__all__ = ["DistillConfig", "distill"]
