"""The shipped monitoring: the Grafana dashboard's and the alert rules' PromQL, and the metric names
they read (parsed by a real PromQL parser, not listed by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "deploy" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "triton-rerank.json"
ALERTS = MONITORING / "alerts.yml"
# Grafana's variables, as Prometheus would see them once Grafana has put them in.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
# Series no scrape carries: Prometheus makes `up` for every target; nv_gpu_* exist only where Triton
# has a GPU.
NOT_SCRAPED = {"up"}
GPU_ONLY_PREFIX = "nv_gpu_"


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    expressions = []
    for panel in panels:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            expressions.append(expr)
    return expressions


def alert_expressions() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def metric_names(expressions: list[str]) -> set[str]:
    import promql_parser

    names: set[str] = set()
    for expr in expressions:
        promql_parser.walk(
            promql_parser.parse(expr),
            lambda node: names.add(node.name) if isinstance(node, promql_parser.VectorSelector) else None,
        )
    return names
