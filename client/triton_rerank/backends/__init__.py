"""Code that runs inside tritonserver, not in the user's process: Triton's Python-backend stub runs
each file as a model's ``model.py`` (the export copies it there, with ``protocol.py`` beside it as
``rerank_protocol.py``).

    tokenizer_model.py   strings -> the id tensors of a cross-encoder or bi-encoder (long documents in windows)
    aggregator_model.py  the reranker's rows folded back into one score per document
    runner_model.py      the embedded server's stand-in for the onnxruntime / pytorch / openvino backends

They import numpy, tokenizers and the runtimes, and of this package only the wire contract
(``rerank_protocol``, else ``triton_rerank.protocol`` when the export imports them here):
tests/unit/test_layout.py holds them to that.
"""
