"""The serving side: what runs models, and what puts them where Triton can run them.

    layout.py          what a repository holds (names, files) and RepositorySettings
    repository.py      every config.pbtxt of the model repository, from those settings
    export_options.py  ExportOptions: an export's precision and how strictly it is checked
    export/            Hugging Face models -> checked ONNX / TorchScript files in a repository
    server.py          the Triton 2.51 server inside nvidia-pytriton, started on a repository
    backends/          the Python-backend models: the tokenizer and the aggregator (copied into every
                       repository, with ``protocol.py`` beside them) and the runner that stands in for
                       the native onnxruntime / pytorch / openvino backends

Needs the ``serve`` extra (and ``export`` for exporting); the client (``triton_rerank``) needs none
of it.
"""
