"""The shipped dashboard, alert rules, Prometheus config, compose monitoring profile and
ServiceMonitors, checked with Prometheus' own promtool and Compose's own parser (no daemon)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml
from monitoring_assets import ALERTS, DASHBOARD, MONITORING, ROOT, dashboard_expressions, metric_names

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian: apt install prometheus)")


def promtool(*args: str, cwd=MONITORING) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@needs_promtool
def test_prometheus_config_and_alert_rules_pass_promtool():
    checked = promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "7 rules found" in checked.stdout


@needs_promtool
def test_each_alert_fires_on_its_trouble_and_not_on_a_healthy_service():
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tested = yaml.safe_load((MONITORING / "alerts.test.yml").read_text())["tests"]
    names = {case["alertname"] for test in tested for case in test["alert_rule_test"] if case["exp_alerts"]}
    rules = {rule["alert"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]}
    assert names == rules  # every alert has a case where it fires


@needs_promtool
def test_promtool_catches_an_alert_that_fires_at_the_wrong_threshold(tmp_path):
    """The unit tests can fail: the error-rate alert at 50% instead of 5% misses the 8% failure case."""
    broken = ALERTS.read_text().replace("> 0.05", "> 0.5")
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(MONITORING / "alerts.test.yml", tmp_path)
    result = promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert result.returncode != 0 and "RerankApiErrors" in result.stdout + result.stderr


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path):
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:panel_{i}", "expr": e} for i, e in enumerate(dashboard_expressions())],
            }
        ]
    }
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    result = promtool("check", "rules", "dashboard.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_shows_the_whole_path():
    names = metric_names(dashboard_expressions())
    wanted = {
        "rerank_api_requests_total",  # rate and errors by code
        "rerank_api_request_seconds_bucket",  # latency percentiles
        "rerank_api_request_documents_bucket",  # documents per request
        "rerank_api_score_cache_lookups_total",  # the score cache's hit ratio ...
        "rerank_api_score_cache_errors_total",  # ... and its store's failures
        "nv_inference_queue_duration_us",  # Triton's queue ...
        "nv_inference_compute_infer_duration_us",  # ... and compute time per model
        "nv_inference_count",  # batch size = inference count / execution count
        "nv_inference_exec_count",
        "nv_gpu_utilization",
        "milvus_proxy_sq_latency_bucket",  # Milvus search latency
    }
    assert wanted <= names, wanted - names
    dashboard = json.loads(DASHBOARD.read_text())
    assert {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p} == {"${datasource}"}


def compose_services(profiles: str) -> dict:
    import compose

    binary = f"{compose.__file__.rsplit('/', 1)[0]}/docker-compose"
    result = subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), "config", "--format", "json"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "COMPOSE_PROFILES": profiles},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


def test_the_monitoring_profile_mounts_shipped_files_and_scrapes_the_services_by_their_ports():
    services = compose_services("cpu,monitoring")
    assert {"prometheus", "grafana", "jaeger"} <= set(services)
    assert not {"prometheus", "grafana", "jaeger"} & set(compose_services("cpu"))  # only when asked for
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            if volume["type"] == "bind":
                assert (ROOT / volume["source"]).exists(), volume["source"]
    scrape = yaml.safe_load((MONITORING / "prometheus.yml").read_text())["scrape_configs"]
    targets = {job["job_name"]: job["static_configs"][0]["targets"][0] for job in scrape}
    names = set(services) | {alias for s in services.values() for n in s.get("networks", {}).values() if n
                             for alias in n.get("aliases", [])}  # fmt: skip
    published = {"rerank-api": 8080, "triton-cpu": 8002, "milvus": 9091}
    for job, target in targets.items():
        host, port = target.split(":")
        assert host in names, (job, target)
    assert {int(t.split(":")[1]) for t in targets.values()} == set(published.values())
    for service, port in published.items():
        assert port in {int(p["target"]) for p in services[service]["ports"]}


def test_service_monitors_select_the_services_and_their_metrics_ports():
    kubernetes = ROOT / "deploy" / "kubernetes"
    services = [
        d
        for name in ("rerank-api.yaml", "triton.yaml")
        for d in yaml.safe_load_all((kubernetes / name).read_text())
        if d and d["kind"] == "Service"
    ]
    monitors = [d for d in yaml.safe_load_all((kubernetes / "servicemonitor.yaml").read_text()) if d]
    assert len(monitors) == 2
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "ServiceMonitor"
        wanted = monitor["spec"]["selector"]["matchLabels"]
        selected = [s for s in services if wanted.items() <= s["metadata"].get("labels", {}).items()]
        ports = {p["name"] for s in selected for p in s["spec"]["ports"]}
        assert selected and all(e["port"] in ports for e in monitor["spec"]["endpoints"]), monitor["metadata"]
