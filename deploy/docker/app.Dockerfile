# The project for the one-shot model export job, the quick start and the rerank API: the client,
# the exporter and the scripts, on CPU-only PyTorch (the export runs anywhere; models are served by Triton).
FROM python:3.11-slim
WORKDIR /app
# The CPU build of the torch release the tests run, from PyTorch's own index (the default wheel
# carries GBs of CUDA).
RUN pip install --no-cache-dir "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY client ./client
COPY scripts ./scripts
RUN pip install --no-cache-dir ".[export,milvus,api]"
ENV HF_HOME=/cache/huggingface
