"""Prometheus figures of a worker or pulser process, fed from what its loops return.

Each process keeps its own registry, with the figures of the loops it runs, and serves it
on its own port (`--metrics-port`): pipeline figures are per process, and Prometheus scrapes
every process. Times are exported
as Unix timestamps (`monitor_es_partition_time_seconds`), so an alert computes the lag with
PromQL (`time() - monitor_es_partition_time_seconds > 120`): nothing here reads a clock
but the batch timer.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Iterable
from datetime import datetime
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Metric,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily

from monitor_es.domain.events import ClockDecided, DerivedEvent
from monitor_es.domain.state import Environment, EnvKey

# Batch times: a 500-entry batch folds in tens of milliseconds; a slow Redis shows above 1 s.
_BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class MetricsServerFailed(OSError):
    """The metrics port cannot be served (taken, or not ours to bind)."""


class WorkerMetrics:
    """What the reducers of one worker process did, by partition."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.entries = Counter(
            "monitor_es_entries",
            "Log entries handled, by partition and outcome (applied, duplicate, dead_lettered)",
            ["partition", "outcome"],
            registry=registry,
        )
        self.derived = Counter(
            "monitor_es_derived_events",
            "Derived events committed to the out streams, by partition and event type",
            ["partition", "type"],
            registry=registry,
        )
        self.commits = Counter(
            "monitor_es_commits", "Batches committed, by partition", ["partition"],
            registry=registry,
        )  # fmt: skip
        self.batch_seconds = Histogram(
            "monitor_es_batch_seconds",
            "Seconds to decode, fold and commit one batch (not the wait for it to arrive)",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.partition_time = Gauge(
            "monitor_es_partition_time_seconds",
            "Broker time (Unix seconds) of the newest entry folded, by partition",
            ["partition"],
            registry=registry,
        )
        self.owned = Gauge(
            "monitor_es_partitions_owned", "Partitions this process holds a lease on",
            registry=registry,
        )  # fmt: skip
        self.lease_changes = Counter(
            "monitor_es_lease_changes",
            "Partition leases taken, released, lost or fenced by this process",
            ["change"],
            registry=registry,
        )
        self.unavailable = Counter(
            "monitor_es_redis_unavailable",
            "Times a reducer met an unavailable Redis and reloaded its partition",
            ["partition"],
            registry=registry,
        )
        self.environments = EnvironmentFigures(registry)

    def batch(
        self,
        partition: int,
        *,
        applied: int,
        duplicates: int,
        dead_lettered: int,
        events: Iterable[DerivedEvent],
        committed: bool,
        last_entry_at: datetime | None,
        seconds: float,
    ) -> None:
        """Records one processed batch."""
        label = str(partition)
        for outcome, count in (
            ("applied", applied),
            ("duplicate", duplicates),
            ("dead_lettered", dead_lettered),
        ):
            if count:
                self.entries.labels(label, outcome).inc(count)
        for kind, count in Tally(type(e).__struct_config__.tag for e in events).items():
            self.derived.labels(label, str(kind)).inc(count)
        if committed:
            self.commits.labels(label).inc()
        if last_entry_at is not None:
            self.partition_time.labels(label).set(last_entry_at.timestamp())
        self.batch_seconds.observe(seconds)


# One environment's figures: status, incident open, muted, last check-in, deadline (Unix s).
_Row = tuple[str, bool, bool, float | None, float | None]
_ENV_LABELS = ("project", "monitor", "environment")


class EnvironmentFigures:
    """Per-environment gauges of the partitions this process owns, as last committed.

    The reducer threads hand over plain rows built from the records a commit wrote, so a
    scrape never reads a record while a fold changes it. A partition's series go when its
    reducer stops, so only its owner exports an environment.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._rows: dict[int, dict[EnvKey, _Row]] = {}
        registry.register(self)

    def seed(self, partition: int, environments: Iterable[Environment]) -> None:
        """Replaces a partition's rows with those of its (re)loaded state."""
        rows = {env.key: _row(env) for env in environments}
        with self._lock:
            self._rows[partition] = rows

    def update(
        self, partition: int, changed: Iterable[Environment], removed: Iterable[EnvKey]
    ) -> None:
        """Takes the environments one commit wrote and deleted."""
        rows = [(env.key, _row(env)) for env in changed]
        with self._lock:
            table = self._rows.setdefault(partition, {})
            table.update(rows)
            for key in removed:
                table.pop(key, None)

    def drop(self, partition: int) -> None:
        """Forgets a partition this process no longer reduces."""
        with self._lock:
            self._rows.pop(partition, None)

    def describe(self) -> list[Metric]:
        """The families, without samples (so registering does not collect)."""
        return list(_families())

    def collect(self) -> list[Metric]:
        """The families with one sample per environment owned."""
        with self._lock:
            rows = [row for table in self._rows.values() for row in table.items()]
        status, incident, muted, last, deadline = _families()
        for key, (state, open_incident, is_muted, last_at, deadline_at) in sorted(rows):
            labels = list(key)
            status.add_metric([*labels, state], 1)
            incident.add_metric(labels, float(open_incident))
            muted.add_metric(labels, float(is_muted))
            if last_at is not None:
                last.add_metric(labels, last_at)
            if deadline_at is not None:
                deadline.add_metric(labels, deadline_at)
        return [status, incident, muted, last, deadline]


def _families() -> tuple[GaugeMetricFamily, ...]:
    return (
        GaugeMetricFamily(
            "monitor_es_environment_status",
            "1 for the environment's status (pending, ok, missed, timeout, failed)",
            labels=[*_ENV_LABELS, "status"],
        ),
        GaugeMetricFamily(
            "monitor_es_environment_incident_open",
            "1 while an incident is open",
            labels=_ENV_LABELS,
        ),
        GaugeMetricFamily(
            "monitor_es_environment_muted",
            "1 while the environment is muted",
            labels=_ENV_LABELS,
        ),
        GaugeMetricFamily(
            "monitor_es_environment_last_checkin_timestamp_seconds",
            "When the newest check-in started (Unix seconds)",
            labels=_ENV_LABELS,
        ),
        GaugeMetricFamily(
            "monitor_es_environment_deadline_timestamp_seconds",
            "The latest time the next check-in may arrive before it is missed (Unix seconds)",
            labels=_ENV_LABELS,
        ),
    )


def _row(env: Environment) -> _Row:
    return (
        env.status.value,
        env.incident is not None,
        env.muted,
        None if env.last_checkin is None else env.last_checkin.timestamp(),
        None if env.next_checkin_latest is None else env.next_checkin_latest.timestamp(),
    )


class PulserMetrics:
    """What the pulser (and its system-incident aggregator) of one process did."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.active = Gauge(
            "monitor_es_pulser_active", "1 while this process holds the pulser lease",
            registry=registry,
        )  # fmt: skip
        self.pulses = Counter(
            "monitor_es_pulses", "Clock pulse rounds appended to every partition",
            registry=registry,
        )  # fmt: skip
        self.decisions = Counter(
            "monitor_es_clock_decisions",
            "System-incident decisions broadcast, by decision",
            ["decision"],
            registry=registry,
        )

    def decided(self, decisions: Iterable[ClockDecided]) -> None:
        """Records the decisions one aggregator step broadcast."""
        for decision in decisions:
            self.decisions.labels(str(decision.decision)).inc()


def serve(registry: CollectorRegistry, host: str, port: int) -> tuple[WSGIServer, Thread]:
    """Serves the registry at http://host:port/metrics from a daemon thread."""
    # The `_created` series double every counter's lines, and no alert reads them.
    disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client
    try:
        return start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise MetricsServerFailed(f"cannot serve metrics on {host}:{port}: {reason}") from None
