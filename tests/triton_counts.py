"""Triton's statistics once they stop moving, for the tests that count Triton's requests (the
product's own settled read: ``triton_rerank.serving.statistics.settled_stats``)."""

from triton_rerank.serving.statistics import settled_stats

__all__ = ["settled_stats"]
