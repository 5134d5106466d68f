"""Put a new reranker into a running Triton with no downtime, and roll back.

Each deployment is a *version* of the reranker family under new names: its tokenizer, model and
aggregator are written into the repository as ``tokenizer_v2``, ``cross_encoder_v2``, ... and
loaded beside the serving ones; then the ``reranker`` ensemble's config is rewritten to point at
them and reloaded. Triton replaces a reloaded model only once the new one is ready, so requests
never meet a missing model, and an ensemble request runs from start to end on one version's
members: the tokenizer that cut the rows is the one whose model scores them. The previous version
stays loaded (requests in flight finish on it, and a rollback is one more ensemble reload); older
ones are unloaded. The server must run with ``--model-control-mode=explicit`` (the embedded server
and the deploy/ configs do), and the repository on disk is updated too, so a restart serves the
same version. ``deployments.json`` in the ensemble's folder keeps the history.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import triton_rerank.protocol as protocol
from triton_rerank.endpoints import API_KEY_HEADER
from triton_rerank.errors import RerankError, RerankInputError
from triton_rerank.serving import repository as repo

HISTORY = "deployments.json"  # beside the ensemble's config.pbtxt; Triton reads only that and version folders
LOAD_WAIT_S = 30.0  # the embedded server derives a new model within a second; a remote one sees it at once


class DeployError(RerankError):
    """The new version could not be put in place; the serving version is unchanged."""


def deploy(model: str, repository: Path, url: str, *, api_key: str | None = None, **export_options) -> dict:
    """Export ``model``, load it as the next version and switch the ensemble to it."""
    from triton_rerank.serving.export import export_cross_encoder

    repository = Path(repository)
    versions = history(repository)
    version = max(entry["version"] for entry in versions["versions"]) + 1
    with tempfile.TemporaryDirectory(prefix="triton-rerank-deploy-") as staging:
        export_cross_encoder(model, Path(staging), **export_options)
        ensemble = repo.load_config(Path(staging) / protocol.RERANKER / "config.pbtxt")
        members = {}
        for step in ensemble.ensemble_scheduling.step:
            members[step.model_name] = f"{step.model_name}_v{version}"
            _copy_member(Path(staging) / step.model_name, repository / members[step.model_name])
            step.model_name = members[step.model_name]
    entry = {
        "version": version,
        "model": str(model),
        "members": sorted(members.values()),
        "ensemble_config": repo.to_pbtxt(ensemble),
        "deployed_at": _now(),
    }
    versions["versions"].append(entry)
    try:
        _switch(repository, url, versions, entry, api_key)
    except BaseException:  # nothing half-deployed: the new members leave the repository again
        for name in entry["members"]:
            shutil.rmtree(repository / name, ignore_errors=True)
        raise
    return entry


def rollback(repository: Path, url: str, *, to: int | None = None, api_key: str | None = None) -> dict:
    """Switch back to version ``to`` (default: the one before the serving one)."""
    repository = Path(repository)
    versions_held = history(repository)
    serving = versions_held["serving"]
    versions = [entry["version"] for entry in versions_held["versions"]]
    to = to if to is not None else max((v for v in versions if v < serving), default=None)
    if to is None or to not in versions:
        raise RerankInputError(
            f"no version {to} to roll back to: the repository has versions {versions}, serving {serving}"
        )
    entry = next(e for e in versions_held["versions"] if e["version"] == to)
    _switch(repository, url, versions_held, entry, api_key)
    return entry


def _switch(repository: Path, url: str, held: dict, entry: dict, api_key: str | None) -> None:
    client = _client(url)
    headers = {API_KEY_HEADER: api_key} if api_key else None
    for name in entry["members"]:
        _load(client, name, headers)
    previous = held["serving"]
    config_path = repository / protocol.RERANKER / "config.pbtxt"
    _write_atomically(config_path, entry["ensemble_config"])
    try:
        _load(client, protocol.RERANKER, headers)
    except DeployError:
        serving = next(e for e in held["versions"] if e["version"] == previous)
        _write_atomically(config_path, serving["ensemble_config"])  # the disk stays what is served
        raise
    held["serving"] = entry["version"]
    _write_atomically(repository / protocol.RERANKER / HISTORY, json.dumps(held, indent=2) + "\n")
    keep = set(entry["members"]) | next(set(e["members"]) for e in held["versions"] if e["version"] == previous)
    for older in held["versions"]:
        for name in set(older["members"]) - keep:
            if client.is_model_ready(name, headers=headers):
                client.unload_model(name, headers=headers)


def history(repository: Path) -> dict:
    """The versions the repository holds, and which one serves."""
    path = repository / protocol.RERANKER / HISTORY
    if path.is_file():
        return json.loads(path.read_text())
    config_path = repository / protocol.RERANKER / "config.pbtxt"
    if not config_path.is_file():
        raise RerankInputError(f"{repository} holds no {protocol.RERANKER!r} ensemble: export a reranker into it first")
    ensemble = repo.load_config(config_path)
    first = {
        "version": 1,
        "model": "the first export",
        "members": [s.model_name for s in ensemble.ensemble_scheduling.step],
        "ensemble_config": config_path.read_text(),
        "deployed_at": None,
    }
    return {"serving": 1, "versions": [first]}


def _copy_member(source: Path, target: Path) -> None:
    if target.exists():
        raise DeployError(f"{target} exists: the repository's {HISTORY} does not match its folders")
    staging = target.parent / f".{target.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, symlinks=False)
    config = repo.load_config(staging / "config.pbtxt")
    config.name = target.name
    (staging / "config.pbtxt").write_text(repo.to_pbtxt(config))
    staging.rename(target)  # Triton (or the embedded server's mirror) never sees half a model


def _load(client, name: str, headers) -> None:
    """Load (or reload) ``name``; waits while a server that derives its repository catches up."""
    from tritonclient.utils import InferenceServerException

    deadline = time.monotonic() + LOAD_WAIT_S
    while True:
        try:
            client.load_model(name, headers=headers)
            return
        except InferenceServerException as err:
            if "load / unload is not allowed" in str(err):  # Triton without --model-control-mode=explicit
                raise DeployError(
                    f"the server does not let models be loaded while it runs: {err}; start it with "
                    "--model-control-mode=explicit --load-model=*"
                ) from err
            unseen = "failed to poll" in str(err) or "not found" in str(err)  # not in the repository (yet)
            if not unseen or time.monotonic() > deadline:
                raise DeployError(f"loading {name!r} failed; the serving version is unchanged: {err}") from err
            time.sleep(0.25)


def _client(url: str):
    if url.startswith("grpc://"):
        import tritonclient.grpc as grpc

        return grpc.InferenceServerClient(url.removeprefix("grpc://"))
    import tritonclient.http as http

    return http.InferenceServerClient(url.removeprefix("http://"), network_timeout=300.0)


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
