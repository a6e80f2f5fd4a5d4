"""Prometheus figures of a worker or pulser process, fed from what its loops return.

Each process keeps its own registry, with the figures of the loops it runs, and serves it
on its own port (`--metrics-port`): pipeline figures are per process, and Prometheus scrapes
every process. Times are exported
as Unix timestamps (`monitor_es_partition_time_seconds`), so an alert computes the lag with
PromQL (`time() - monitor_es_partition_time_seconds > 120`): nothing here reads a clock
but the batch timer.
"""

from __future__ import annotations

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
    disable_created_metrics,
    start_http_server,
)

from monitor_es.domain.events import ClockDecided, DerivedEvent

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
