# Triton 2.51 (the release nvidia-pytriton 0.7.0 carries, which the tests run) with the one package
# the Python-backend tokenizer needs. The image already has numpy 1.26 (its Python backend needs
# numpy<2) and the native onnxruntime, pytorch and tensorrt backends that serve cross_encoder.
FROM nvcr.io/nvidia/tritonserver:24.10-py3
# The tokenizer.json files are written by the export image's tokenizers; keep the two in step.
RUN pip install --no-cache-dir "tokenizers==0.23.3"
