"""Run a real Triton Inference Server without Docker: the 2.51 build inside ``nvidia-pytriton``.

That build has the Python backend and ensembles but no onnxruntime / pytorch backend, so the
server is started on a *derived* repository: models those backends would serve get the Python
runner (``backends/runner_model.py``) under the same config (``repository.python_runner_config``);
everything else is linked unchanged. The official container serves the original repository.

Needs the ``serve`` extra.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import triton_rerank.tracing as tracing
from triton_rerank.endpoints import API_KEY_HEADER
from triton_rerank.errors import RerankError
from triton_rerank.serving import layout
from triton_rerank.serving import repository as repo
from triton_rerank.serving.install import check_whole
from triton_rerank.serving.lifetime import child_setup

log = logging.getLogger(__name__)

# A server stopped before it was ready has no request in flight: it is killed after this long.
STARTUP_GRACE_S = 5.0
# Everything but health (liveness and readiness probes stay open) is restricted when a key is set.
RESTRICTED_APIS = "metadata,inference,shared-memory,model-config,model-repository,statistics,trace,logging"


class ServerStartError(RuntimeError):
    """The server exited or did not become ready; the message carries the end of its log."""


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """Where the server listens. Loopback by default: nothing is exposed unless asked."""

    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    startup_timeout_s: float = 120.0
    log_verbose: int = 0
    log_file: Path | None = None  # None: a temporary file, removed on stop
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the server and its models
    response_cache_bytes: int = 0  # >0: a local response cache this large, for models that enable it
    # With a key, every API but health (inference included) needs it in the x-api-key header
    # (Triton's restricted APIs); clients send it with api_key= or $TRITON_RERANK_API_KEY.
    api_key: str | None = field(default=None, repr=False)
    exit_timeout_s: int = 30  # on SIGTERM, how long requests in flight may take to finish
    # "none": the repository is read once, at startup, and nobody can load or unload a model over the
    # API. "explicit": `triton-rerank deploy` may load a new version while the server runs (with an
    # API key, the model-repository API needs it too).
    model_control: str = "none"
    cpus: frozenset[int] | None = None  # the cores the server and its models may run on (Linux); None: all
    # Triton's OpenTelemetry trace mode, exporting OTLP/HTTP to this URL (…/v1/traces): every request
    # that arrives with a W3C trace context (the API's, the clients') is traced, and 1 in `trace_rate`
    # of the others (0: none of them). None: no tracing.
    trace_url: str | None = None
    trace_rate: int = 0

    def __post_init__(self) -> None:
        check_api_key(self.api_key)
        if self.model_control not in ("none", "explicit"):
            raise ValueError(f"model_control must be 'none' or 'explicit', got {self.model_control!r}")
        if self.cpus is not None:  # core affinity is Linux's (os.sched_getaffinity)
            usable = os.sched_getaffinity(0)
            if not (self.cpus and set(self.cpus) <= usable):
                raise ValueError(f"cpus must be some of this process's cores {sorted(usable)}, got {sorted(self.cpus)}")
        if self.trace_url is not None and not self.trace_url.startswith(("http://", "https://")):
            raise ValueError(f"trace_url must be an OTLP/HTTP URL (http://host:4318/v1/traces), got {self.trace_url!r}")
        if self.trace_rate < 0:
            raise ValueError(
                f"trace_rate must be 0 (only requests with a trace context) or more, got {self.trace_rate}"
            )
        if "PYTHONPATH" in self.env:  # tests/integration/test_server_env.py shows it
            raise ValueError(
                "env PYTHONPATH would do nothing: Triton's Python backend stub ignores it and imports from "
                f"this interpreter's site-packages ({sys.prefix}); install the packages there"
            )


def check_api_key(key: str | None) -> None:
    """A key Triton's flag can carry, long enough to guess no faster than by brute force; the
    message never repeats the key."""
    if key is None:
        return
    if not isinstance(key, str) or len(key) < 16 or not all(c.isalnum() or c in "-_.~+/" for c in key):
        raise ValueError("api_key must be at least 16 characters of letters, digits and -_.~+/")


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports that are free now. All are held at once while the OS picks
    them: one at a time, a port just released can come back twice (seen: HTTP and metrics on one)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for probe in probes:
            probe.bind((host, 0))
        return [probe.getsockname()[1] for probe in probes]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free now (the OS picks it)."""
    return free_ports(1, host)[0]


def free_port_settings(**overrides) -> ServerSettings:
    """Settings with three distinct free ports, for tests and the quick start."""
    http, grpc, metrics = free_ports(3)
    return ServerSettings(http_port=http, grpc_port=grpc, metrics_port=metrics, **overrides)


def pytriton_dirs() -> tuple[Path, Path]:
    """The server tree and its shared libraries inside the nvidia-pytriton wheel (not imported)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise ImportError("the embedded server needs the 'serve' extra: pip install 'triton-rerank[serve]'")
    package = Path(spec.origin).parent
    return package / "tritonserver", package.parent / "nvidia_pytriton.libs"


def prepare_backends(target: Path) -> Path:
    """A backend directory with the Python backend and the stub for this interpreter."""
    root, _ = pytriton_dirs()
    stub = (
        root
        / "python_backend_stubs"
        / f"{sys.version_info.major}.{sys.version_info.minor}"
        / "triton_python_backend_stub"
    )
    if not stub.exists():
        raise ServerStartError(f"nvidia-pytriton has no Python backend stub for Python {sys.version.split()[0]}")
    python = target / "python"
    python.mkdir(parents=True, exist_ok=True)
    for source in (
        root / "backends" / "python" / "libtriton_python.so",
        root / "backends" / "python" / "triton_python_backend_utils.py",
        stub,
    ):
        shutil.copy2(source, python / source.name)
    return target


def derive_repository(source: Path, target: Path) -> Path:
    """Link ``source`` into ``target``, swapping native onnxruntime / pytorch models for the runner."""
    source = Path(source).resolve()
    if not source.is_dir():
        raise FileNotFoundError(
            f"model repository {source} does not exist; export models into it first: triton-rerank export "
            f"--repository {source}"
        )
    check_whole(source)
    target.mkdir(parents=True, exist_ok=True)
    for model_dir in sorted(p for p in source.iterdir() if (p / "config.pbtxt").exists()):
        derive_model(model_dir, target)
    return target


def derive_model(model_dir: Path, target: Path) -> None:
    """One model of the served repository: a link to ``model_dir``, or its runner."""
    config = repo.load_config(model_dir / "config.pbtxt")
    if repo.native_backend_format(config) is None:
        (target / model_dir.name).symlink_to(model_dir, target_is_directory=True)
        return
    staging = target / f".{model_dir.name}.partial"  # Triton must never see half a model
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    (staging / "config.pbtxt").write_text(repo.to_pbtxt(repo.python_runner_config(config)))
    for version_dir in (p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()):
        (staging / version_dir.name).mkdir()
        for item in version_dir.iterdir():
            (staging / version_dir.name / item.name).symlink_to(item)
        shutil.copyfile(layout.RUNNER_CODE, staging / version_dir.name / "model.py")
    staging.rename(target / model_dir.name)


class RepositoryMirror(threading.Thread):
    """Derives the models added to ``source`` after the server started (``triton-rerank deploy``
    adds a version's models under new names), so that the running server can load them."""

    def __init__(self, source: Path, target: Path, interval_s: float = 0.25) -> None:
        super().__init__(name="triton-rerank-repository-mirror", daemon=True)
        self.source, self.target, self.interval_s = Path(source).resolve(), target, interval_s
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            for model_dir in sorted(p for p in self.source.iterdir() if (p / "config.pbtxt").exists()):
                if not (self.target / model_dir.name).exists():
                    try:
                        derive_model(model_dir, self.target)
                    except Exception:  # a model written half-way: the next pass tries again
                        log.debug("cannot derive %s yet", model_dir, exc_info=True)


class EmbeddedTritonServer:
    """A Triton server process serving ``repository``; a context manager.

    ``start()`` returns once the server and every model are ready, or raises ``ServerStartError``
    with the end of the server log. ``stop()`` sends SIGTERM, then SIGKILL to the whole process
    group after a grace period, so no backend stub outlives it.
    """

    def __init__(self, repository: Path | str, settings: ServerSettings | None = None) -> None:
        self.repository = Path(repository)
        self.settings = settings or ServerSettings()
        self._process: subprocess.Popen | None = None
        self._workdir: tempfile.TemporaryDirectory | None = None
        self.log_path: Path | None = None
        self._mirror: RepositoryMirror | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://{self.settings.host}:{self.settings.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.metrics_port}/metrics"

    def start(self) -> EmbeddedTritonServer:
        root, libs = pytriton_dirs()
        self._workdir = tempfile.TemporaryDirectory(prefix="triton-rerank-")
        work = Path(self._workdir.name)
        s = self.settings
        models = derive_repository(self.repository, work / "models")
        if s.model_control == "explicit":
            self._mirror = RepositoryMirror(self.repository, models)
            self._mirror.start()
        backends = prepare_backends(work / "backends")
        command = [
            str(root / "bin" / "tritonserver"),
            f"--model-repository={models}",
            f"--backend-directory={backends}",
            f"--http-address={s.host}",
            f"--http-port={s.http_port}",
            f"--grpc-address={s.host}",
            f"--grpc-port={s.grpc_port}",
            f"--metrics-address={s.host}",
            f"--metrics-port={s.metrics_port}",
            f"--model-control-mode={s.model_control}",
            *(["--load-model=*"] if s.model_control == "explicit" else []),
            "--exit-on-error=true",
            "--strict-readiness=true",
            f"--exit-timeout-secs={s.exit_timeout_s}",
            f"--log-verbose={s.log_verbose}",
        ]
        if s.api_key:
            command += [
                f"--http-restricted-api={RESTRICTED_APIS}:{API_KEY_HEADER}={s.api_key}",
                f"--grpc-restricted-protocol={RESTRICTED_APIS}:{API_KEY_HEADER}={s.api_key}",
            ]
        if s.trace_url:
            command += tracing.triton_flags(s.trace_url, s.trace_rate)
        if s.response_cache_bytes:
            command += [f"--cache-directory={root / 'caches'}", f"--cache-config=local,size={s.response_cache_bytes}"]
        env = {**os.environ, **s.env}
        # The Python backend stub runs model code with the first python3 on PATH: make it ours.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        # ...and link the stub with this interpreter's own libpython: the system's may be another
        # patch release, whose ABI breaks stdlib extensions (seen: _ssl "undefined symbol").
        libpython = sysconfig.get_config_var("LIBDIR") if sysconfig.get_config_var("Py_ENABLE_SHARED") else None
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [libpython, str(libs), env.get("LD_LIBRARY_PATH")]))
        self.log_path = Path(s.log_file) if s.log_file else work / "tritonserver.log"
        log_file = self.log_path.open("wb")
        shown = " ".join(command).replace(s.api_key, "***") if s.api_key else " ".join(command)
        log.info("starting %s", shown)
        # The model processes Triton starts inherit its cores; Triton gets SIGTERM if this process dies.
        setup = child_setup(os.getpid(), s.cpus)
        self._process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=setup
        )
        log_file.close()
        try:
            self._wait_ready()
        except BaseException:  # not ready (or interrupted while loading): nothing in flight to wait for
            self.stop(grace_s=STARTUP_GRACE_S)
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.settings.startup_timeout_s
        url = f"http://{self.settings.host}:{self.settings.http_port}/v2/health/ready"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ServerStartError(f"tritonserver exited with code {self._process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        raise ServerStartError(
            f"tritonserver not ready after {self.settings.startup_timeout_s:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 15) -> str:
        """The server's error lines (``E...``), then the last ``lines`` lines of its log."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        errors = [line for line in text[:-lines] if line[:1] == "E" and line[1:5].isdigit()]
        return "\n".join(errors + text[-lines:])

    def ready_models(self) -> list[str]:
        """Names of the models the server reports READY."""
        headers = {API_KEY_HEADER: self.settings.api_key} if self.settings.api_key else {}
        request = urllib.request.Request(
            f"{self.http_url}/v2/repository/index", data=b"{}", method="POST", headers=headers
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            index = json.load(response)
        return sorted(model["name"] for model in index if model.get("state") == "READY")

    @property
    def pid(self) -> int | None:
        """The server's process id, which leads the process group of its backend stubs too."""
        return self._process.pid if self._process is not None else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, grace_s: float = 30.0) -> int | None:
        """Stop the server and its backend stubs; returns the server's exit code."""
        process, self._process = self._process, None
        if self._mirror is not None:
            self._mirror.stopping.set()
            self._mirror = None
        code = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    log.warning("tritonserver did not stop within %.0f s; killing it", grace_s)
            code = process.poll()
            try:  # stubs left behind by a crash share the process group
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
        return code

    def __enter__(self) -> EmbeddedTritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def triton_for(url: str | None, repository: Path, exports: list[tuple[str, str, dict]], **server_settings):
    """``(url, server)`` of the Triton to use: ``(url, None)`` when a URL is given; else each
    ``(model, kind, options)`` is exported into ``repository`` unless it holds it already, and the
    embedded server is started on free loopback ports (and stopped on leaving)."""
    if url is not None:
        yield url, None
        return
    from triton_rerank.serving.export import ensure_exported

    for model, kind, options in exports:
        print(f"{kind}: {model} ...", flush=True)
        try:
            report = ensure_exported(repository, model, kind, **options)
        except OSError as err:  # not on disk, and the hub is out of reach
            raise RerankError(f"cannot load {model}: {err}\nno hub access? pass a local folder instead") from err
        if report is None:
            print(f"{kind}: {repository} already holds it", flush=True)
        else:
            print(f"{kind}: exported to {repository}, max |difference to PyTorch| = {report.max_abs_diff:.1e}")
    started = time.perf_counter()
    with EmbeddedTritonServer(repository, free_port_settings(**server_settings)) as server:
        print(f"Triton ready in {time.perf_counter() - started:.1f} s at {server.grpc_url}", flush=True)
        yield server.grpc_url, server
