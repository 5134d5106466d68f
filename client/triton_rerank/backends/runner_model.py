"""Triton Python-backend runner: serves ``model.onnx`` (ONNX Runtime), ``model.xml`` (OpenVINO: bf16,
or NNCF int8) or ``model.pt`` (TorchScript) where the Triton build has no onnxruntime / openvino / pytorch
backend (the server inside nvidia-pytriton).

It is given the very config of the native model (``repository.python_runner_config``): same name,
tensors, dims, dynamic batching and instance groups, so the ensemble and clients see no difference.

The batch Triton hands over is run in small slices of rows of similar length, each slice cut to
its own longest row: attention masks keep padding out of the result (scores, or mean-pooled
embeddings), so this only saves work.

On a CPU the ONNX Runtime threads either split each operator of one slice (``runner_parallelism``
``operators``, ONNX Runtime's own intra-op threads) or each take slices of their own, one at a
time, through a one-thread session (``slices``). The second pays where slices are small (int8 is
served row by row): no operator of a single row is worth splitting between cores.
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton by the export, which scores with score_in_slices() below
    pb_utils = None

# Rows per model call on CPU; small batches of similar length keep activations in cache. The
# config parameter runner_slice_rows overrides it (0: the whole batch at once, in arrival order,
# as the native onnxruntime backend runs it). Larger slices and the whole batch measured slower
# (docs/performance.md, the levers table).
CPU_SLICE_ROWS = 8


class TritonPythonModel:
    pool = None  # the threads that run slices side by side (runner_parallelism "slices")

    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        self.input_names = [tensor["name"] for tensor in config["input"]]
        self.output_name = config["output"][0]["name"]
        path = f"{args['model_repository']}/{args['model_version']}/{parameters['runner_model_file']}"
        on_gpu = args["model_instance_kind"] == "GPU"
        device_id = int(args["model_instance_device_id"])
        self.slice_rows = int(parameters.get("runner_slice_rows", 0 if on_gpu else CPU_SLICE_ROWS))
        if parameters["runner_format"] == "onnx":
            accelerators = config.get("optimization", {}).get("execution_accelerators", {})
            tensorrt = next(
                (
                    a.get("parameters", {})
                    for a in accelerators.get("gpu_execution_accelerator", [])
                    if a["name"] == "tensorrt"
                ),
                None,
            )
            threads = int(parameters.get("intra_op_thread_count", 0))
            if not on_gpu and self.slice_rows and parameters.get("runner_parallelism") == "slices":
                # ONNX Runtime sessions take concurrent run() calls; each call runs on its caller's thread.
                self.pool = ThreadPoolExecutor(threads or len(os.sched_getaffinity(0)), "runner-slices")
                threads = 1
            self.run = _onnx_runner(path, on_gpu, device_id, threads, tensorrt)
        elif parameters["runner_format"] == "openvino":
            threads = int(parameters.get("INFERENCE_NUM_THREADS", 0))
            if self.slice_rows and parameters.get("runner_parallelism") == "slices":
                self.pool = ThreadPoolExecutor(threads or len(os.sched_getaffinity(0)), "runner-slices")
            bf16 = parameters.get("HINT_BF16") == "YES"
            self.run = openvino_runner(path, bf16, threads, streams=self.pool is not None)
        else:
            self.run = _torchscript_runner(path, on_gpu, device_id)

    def execute(self, requests):
        batches = [
            [pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.input_names] for r in requests
        ]
        sizes = [batch[0].shape[0] for batch in batches]
        try:
            scores = self._score(
                [_concat_padded([batch[i] for batch in batches]) for i in range(len(self.input_names))]
            )
        except Exception as err:  # the model failed: every request in this batch gets the reason
            error = pb_utils.TritonError(f"{type(err).__name__}: {err}")
            return [pb_utils.InferenceResponse(error=error) for _ in requests]
        ends = np.cumsum(sizes)
        return [
            pb_utils.InferenceResponse([pb_utils.Tensor(self.output_name, scores[end - size : end])])
            for size, end in zip(sizes, ends, strict=True)
        ]

    def _score(self, inputs):
        return score_in_slices(self.run, inputs, self.slice_rows, self.pool.map if self.pool else map)

    def finalize(self):
        if self.pool is not None:
            self.pool.shutdown()


def score_in_slices(run, inputs, slice_rows, map_slices=map):
    """``run`` over rows in slices of ``slice_rows`` of similar length, each cut to its own longest
    row (0: the whole batch at once); outputs in row order. ``inputs[1]`` is the attention mask."""
    if not slice_rows:
        return run(inputs)
    slices = length_slices(inputs, slice_rows)
    out = None
    for (idx, _), result in zip(slices, map_slices(run, [sliced for _, sliced in slices]), strict=True):
        if out is None:
            out = np.empty((inputs[1].shape[0], *result.shape[1:]), dtype=result.dtype)
        out[idx] = result
    return out


def length_slices(inputs, slice_rows):
    """``inputs``' rows in slices of ``slice_rows`` of similar length, each cut to its own longest
    row: a list of (row indices, sliced inputs). ``inputs[1]`` is the attention mask."""
    mask = inputs[1]
    order = np.argsort(mask.sum(axis=1), kind="stable")
    slices = []
    for start in range(0, len(order), slice_rows):
        idx = order[start : start + slice_rows]
        width = int(np.flatnonzero(mask[idx].any(axis=0)).max()) + 1
        slices.append((idx, [array[idx, :width] for array in inputs]))
    return slices


def _concat_padded(arrays):
    """Stack requests along the batch axis, right-padding shorter ones with zeros (mask 0)."""
    if len(arrays) == 1:
        return arrays[0]
    width = max(array.shape[1] for array in arrays)
    return np.concatenate([np.pad(array, ((0, 0), (0, width - array.shape[1]))) for array in arrays])


def _onnx_runner(path, on_gpu, device_id, intra_op_threads, tensorrt=None):
    import onnxruntime as ort

    if on_gpu and "CUDAExecutionProvider" not in ort.get_available_providers():
        # ONNX Runtime would fall back to the CPU without a word; a KIND_GPU instance must not.
        raise RuntimeError(
            f"KIND_GPU instance, but this onnxruntime has no CUDAExecutionProvider "
            f"(has {ort.get_available_providers()}): install onnxruntime-gpu or export with --device cpu"
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    providers = [("CUDAExecutionProvider", {"device_id": device_id})] if on_gpu else []
    if on_gpu and tensorrt and "TensorrtExecutionProvider" in ort.get_available_providers():
        fp16 = tensorrt.get("precision_mode") == "FP16"
        providers.insert(0, ("TensorrtExecutionProvider", {"device_id": device_id, "trt_fp16_enable": fp16}))
    session = ort.InferenceSession(path, options, providers=providers + ["CPUExecutionProvider"])
    if on_gpu and "CUDAExecutionProvider" not in session.get_providers():
        # Listed is not loaded: without its CUDA libraries (cuBLAS, cudart) the provider fails to
        # start, and ONNX Runtime only logs that before running the session on the CPU.
        raise RuntimeError(
            f"KIND_GPU instance, but ONNX Runtime could not start its CUDAExecutionProvider (session runs on "
            f"{session.get_providers()}): check that the CUDA libraries onnxruntime-gpu "
            f"{ort.__version__} needs are on LD_LIBRARY_PATH"
        )
    names = [node.name for node in session.get_inputs()]

    def run(inputs):
        return session.run(None, dict(zip(names, inputs, strict=True)))[0]

    return run


def bf16_missing(capabilities):
    """Why a CPU with OpenVINO's ``capabilities`` cannot run bf16 ("" when it can)."""
    if "BF16" in capabilities:
        return ""
    return (
        f"this CPU has no bf16 instructions (AVX512-BF16 or AMX; OpenVINO finds {', '.join(capabilities)}): "
        "use an fp32 or int8 export here"
    )


def openvino_runner(path, bf16=False, threads=0, streams=False):
    """OpenVINO on the CPU: in bf16 (refused on a CPU without AVX512-BF16 or AMX, where OpenVINO
    would run fp32 without a word), else at OpenVINO's default for the CPU (what an int8 model's
    remaining float operations run in: bf16 where the CPU has it). ``streams``: one stream per
    thread, each call on its caller's thread (for ``runner_parallelism`` slices); else every thread
    on each call."""
    import threading

    import openvino as ov

    core = ov.Core()
    if bf16 and (missing := bf16_missing(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))):
        raise RuntimeError(f"this model is served in bf16, but {missing}")
    config = {"PERFORMANCE_HINT": "LATENCY"} | ({"INFERENCE_PRECISION_HINT": "bf16"} if bf16 else {})
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    if streams:
        config |= {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": threads or len(os.sched_getaffinity(0))}
    compiled = core.compile_model(path, "CPU", config)
    local = threading.local()  # an infer request serves one call at a time: one per calling thread

    def run(inputs):
        request = getattr(local, "request", None) or compiled.create_infer_request()
        local.request = request
        return request.infer(list(inputs))[0].copy()

    return run


def _torchscript_runner(path, on_gpu, device_id):
    import torch

    device = torch.device(f"cuda:{device_id}" if on_gpu else "cpu")
    module = torch.jit.load(path, map_location=device).eval()

    def run(inputs):
        with torch.inference_mode():
            return module(*[torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in inputs]).float().cpu().numpy()

    return run
