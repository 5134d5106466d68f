"""The benchmarks as libraries: each mode takes a ``config.BenchmarkConfig`` and writes its report
(``served_benchmark``, ``tiers``, ``api_overhead``, ``long_documents``, ``scaling``), over one harness
(``harness``: concurrent clients, cells, accuracy; ``grid``: interleaved rounds) and the servers and
peers it measures (``servers``, ``peers``). ``triton-rerank benchmark`` and ``load-test`` are their
command lines. Needs the ``bench`` extra.
"""
