"""deploy/prometheus-alerts.yml, checked as a file: no Prometheus runs here. Every metric an
alert reads must be one monitor-es serves, so a renamed figure cannot silence an alert."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from monitor_es.domain.state import Environment
from monitor_es.metrics import PulserMetrics, WorkerMetrics

RULES: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "deploy" / "prometheus-alerts.yml").read_text()
)


def _served_names() -> set[str]:
    """Every sample name a worker and a pulser serve (with an environment to show)."""
    registry = CollectorRegistry()
    worker, pulser = WorkerMetrics(registry), PulserMetrics(registry)
    worker.environments.seed(0, [Environment(project="p", monitor_slug="m", name="e")])
    worker.entries.labels("0", "applied").inc()
    worker.unavailable.labels("0").inc()
    worker.partition_time.labels("0").set(1)
    pulser.pulses.inc()
    return {s.name for family in registry.collect() for s in family.samples}


def test_every_alert_reads_metrics_monitor_es_serves() -> None:
    served = _served_names()
    rules = [rule for group in RULES["groups"] for rule in group["rules"]]
    assert len(rules) >= 5
    for rule in rules:
        used = set(re.findall(r"\bmonitor_es_[a-z_]+\b", rule["expr"]))
        assert used, rule["alert"]
        assert used <= served, (rule["alert"], used - served)
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
