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

A new version is exported as the serving one was (precision, format, device, batching: what its
``export.json`` records), unless the caller says otherwise. Several URLs are replicas serving one
repository (a shared volume): each loads the new members, then each switches; a replica that
fails to switch sends every one back. Once every replica serves the new version, the deployment
stands: unloading the versions it replaced is clean-up, and a failure there is logged, never
undone by deleting what now serves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import InferenceServerException

import triton_rerank.protocol as protocol
from triton_rerank.endpoints import API_KEY_HEADER, parse_url, parse_urls
from triton_rerank.errors import RerankError, RerankInputError
from triton_rerank.serving import repository as repo
from triton_rerank.serving.export_options import ExportOptions
from triton_rerank.serving.layout import RepositorySettings

log = logging.getLogger(__name__)

HISTORY = "deployments.json"  # beside the ensemble's config.pbtxt; Triton reads only that and version folders
LOAD_WAIT_S = 30.0  # the embedded server derives a new model within a second; a remote one sees it at once


class DeployError(RerankError):
    """The new version could not be put in place; the serving version is unchanged."""


def deploy(model: str, repository: Path, url: str, *, api_key: str | None = None, **export_options) -> dict:
    """Export ``model`` as the serving version was exported (``export_options`` override that), load
    it as the next version on every replica of ``url`` and switch the ensemble to it."""
    from triton_rerank.serving.export import export_cross_encoder

    repository = Path(repository)
    versions = _reconciled(repository)
    version = max(entry["version"] for entry in versions["versions"]) + 1
    _clear_leftovers(repository, _serving(versions)["members"], version)
    settings, options = exported_as(repository, _serving(versions))
    with tempfile.TemporaryDirectory(prefix="triton-rerank-deploy-") as staging:
        export_cross_encoder(model, Path(staging), settings=settings, **(options | export_options))
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
    versions["versions"].append(entry | {"pending": True})  # recorded before the switch: a deploy killed
    entry = versions["versions"][-1]  # later is known; "pending" until it has served (no rollback to it)
    _write_history(repository, versions)
    with _connected(url) as clients:
        try:
            previous = _switch(repository, clients, versions, entry, api_key)
        except BaseException:  # not switched: nothing half-deployed, the new members leave the repository again
            for name in entry["members"]:
                shutil.rmtree(repository / name, ignore_errors=True)
            versions["versions"].remove(entry)
            _write_history(repository, versions)
            raise
        _unload_replaced(clients, versions, entry, previous, api_key)  # serving now: a failure here is logged
    return entry


def rollback(repository: Path, url: str, *, to: int | None = None, api_key: str | None = None) -> dict:
    """Switch back to version ``to`` (default: the one before the serving one)."""
    repository = Path(repository)
    versions_held = _reconciled(repository)
    serving = versions_held["serving"]
    versions = [entry["version"] for entry in versions_held["versions"]]
    served = [entry["version"] for entry in versions_held["versions"] if not entry.get("pending")]
    to = to if to is not None else max((v for v in served if v < serving), default=None)
    if to is None or to not in versions:
        raise RerankInputError(
            f"no version {to} to roll back to: the repository has versions {versions}, serving {serving}"
        )
    entry = next(e for e in versions_held["versions"] if e["version"] == to)
    with _connected(url) as clients:
        previous = _switch(repository, clients, versions_held, entry, api_key)
        _unload_replaced(clients, versions_held, entry, previous, api_key)
    return entry


def exported_as(repository: Path, entry: dict) -> tuple[RepositorySettings | None, dict]:
    """The settings and options the model of version ``entry`` was exported with (its
    ``export.json``); an export that predates that record gives its precision and format, and its
    config's device and rows per request."""
    model = next((m for m in entry["members"] if _is_model(repository / m)), None)
    if model is None or not (repository / model / "1" / "export.json").is_file():
        return None, {}
    record = json.loads((repository / model / "1" / "export.json").read_text())
    options = {k: v for k, v in record.get("options", {}).items() if k in _OPTION_FIELDS}
    options.setdefault("precision", record.get("precision", "fp32"))
    if record.get("settings"):
        fields = {k: v for k, v in record["settings"].items() if k in _SETTING_FIELDS}
        fields["model_inputs"] = tuple(fields.get("model_inputs", ()))
        return RepositorySettings(**fields).replace(name=""), options
    config = repo.load_config(repository / model / "config.pbtxt")
    kinds = {group.kind for group in config.instance_group}
    device = "gpu" if mc.ModelInstanceGroup.KIND_GPU in kinds else "cpu" if kinds else "auto"
    fmt = record.get("model_format", "onnx") if options["precision"] != "bf16" else "onnx"
    return RepositorySettings(model_format=fmt, device=device, max_rows_per_request=config.max_batch_size), options


_SETTING_FIELDS = {f.name for f in dataclasses.fields(RepositorySettings)}
_OPTION_FIELDS = {f.name for f in dataclasses.fields(ExportOptions)}


def _is_model(folder: Path) -> bool:
    """A version's model, not its Python tokenizer or aggregator."""
    return (folder / "config.pbtxt").is_file() and repo.load_config(folder / "config.pbtxt").backend != "python"


def _serving(held: dict) -> dict:
    return next(e for e in held["versions"] if e["version"] == held["serving"])


def _switch(repository: Path, clients: list, held: dict, entry: dict, api_key: str | None) -> int:
    """Every replica loads ``entry``'s members, then each switches its ensemble to them; if one
    cannot, the disk and every replica switched so far go back to the serving version. Returns the
    version that served before."""
    headers = {API_KEY_HEADER: api_key} if api_key else None
    for client in clients:
        for name in entry["members"]:
            _load(client, name, headers)
    serving = _serving(held)
    config_path = repository / protocol.RERANKER / "config.pbtxt"
    _write_atomically(config_path, entry["ensemble_config"])
    switched = []
    try:
        for client in clients:
            _load(client, protocol.RERANKER, headers)
            switched.append(client)
    except DeployError:
        _write_atomically(config_path, serving["ensemble_config"])  # the disk stays what is served
        for client in switched:
            _load(client, protocol.RERANKER, headers)
        raise
    held["serving"] = entry["version"]
    entry.pop("pending", None)
    _write_history(repository, held)
    return serving["version"]


def _unload_replaced(clients: list, held: dict, entry: dict, previous: int, api_key: str | None) -> None:
    """Unload every version but the serving one and the one before it (requests in flight finish
    there, and a rollback to it is one reload). A failure is logged: the new version serves."""
    keep = set(entry["members"]) | next(set(e["members"]) for e in held["versions"] if e["version"] == previous)
    headers = {API_KEY_HEADER: api_key} if api_key else None
    older = {name for e in held["versions"] for name in e["members"]} - keep
    for client in clients:
        for name in sorted(older):
            try:
                if client.is_model_ready(name, headers=headers):
                    client.unload_model(name, headers=headers)
            except InferenceServerException as err:
                log.warning("version %s serves; unloading %s failed (it stays loaded): %s", entry["version"], name, err)


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


def _write_history(repository: Path, held: dict) -> None:
    _write_atomically(repository / protocol.RERANKER / HISTORY, json.dumps(held, indent=2) + "\n")


def _reconciled(repository: Path) -> dict:
    """The history, with ``serving`` made what the ensemble on disk runs: a deploy or a rollback killed
    between the ensemble's switch and the history's left them apart (issue 39)."""
    held = history(repository)
    steps = sorted(s.model_name for s in repo.load_config(repository / protocol.RERANKER / "config.pbtxt")
                   .ensemble_scheduling.step)  # fmt: skip
    running = next((e for e in held["versions"] if sorted(e["members"]) == steps), None)
    if running is not None and running["version"] != held["serving"]:
        log.warning("an interrupted deploy left v%s serving (history: v%s)", running["version"], held["serving"])
        held["serving"] = running["version"]
        running.pop("pending", None)
        _write_history(repository, held)
    return held


def _clear_leftovers(repository: Path, members: list[str], version: int) -> None:
    """Remove the members of ``version`` (named after ``members``, the serving ones) that a deploy
    killed before it recorded them left behind: the version is new, so nothing serves them."""
    for base in {re.sub(r"_v\d+$", "", name) for name in members}:
        for folder in (repository / f"{base}_v{version}", repository / f".{base}_v{version}.partial"):
            if folder.exists():
                log.warning("removing %s, left by a deploy that was interrupted", folder)
                shutil.rmtree(folder)


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


@contextlib.contextmanager
def _connected(url: str | list[str]):
    """The replicas' clients, closed on leaving: an open HTTP connection holds a stopping Triton for
    its whole --exit-timeout-secs."""
    clients = _clients(url)
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


def _clients(url: str | list[str]) -> list:
    """A blocking tritonclient per replica of ``url`` (``http``, ``https``, ``grpc``, ``grpcs``)."""
    import tritonclient.grpc as grpc
    import tritonclient.http as http

    endpoints = [parse_url(u) for u in parse_urls(url)]
    return [
        grpc.InferenceServerClient(e.address, ssl=e.ssl)
        if e.protocol == "grpc"
        else http.InferenceServerClient(e.address, ssl=e.ssl, network_timeout=300.0)
        for e in endpoints
    ]


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
