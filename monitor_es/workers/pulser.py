"""`monitor-es pulse`: the clock pulser (one active at a time, by lease) and, when switched
on, the system-incident aggregator."""

from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry

from monitor_es.domain.events import ClockPulsed
from monitor_es.metrics import PulserMetrics
from monitor_es.producer import Producer
from monitor_es.store.connection import REDIS_ERRORS, Client
from monitor_es.store.deployment import NotInitialised
from monitor_es.store.functions import Fenced
from monitor_es.store.leases import LeaseClient
from monitor_es.workers.aggregator import Aggregator
from monitor_es.workers.rounds import run_rounds
from monitor_es.workers.runner import default_owner

log = logging.getLogger(__name__)

# A round fails on these and is retried: Redis unavailable, or a log missing (not initialised).
_ROUND_ERRORS: tuple[type[Exception], ...] = (*REDIS_ERRORS, NotInitialised)


class Pulser:
    """Appends a `clock_pulse` to every partition every `interval_s` while it holds the lease.

    Pulses only carry time, so a duplicate from a paused former pulser is harmless.
    """

    def __init__(
        self,
        client: Client,
        partitions: int,
        *,
        interval_s: float = 5.0,
        owner: str | None = None,
        system_incidents: bool = False,
        metrics: PulserMetrics | None = None,
    ) -> None:
        self.producer = Producer(client, partitions)
        self.metrics = metrics or PulserMetrics(CollectorRegistry())
        self.leases = LeaseClient(client, owner or default_owner(), int(interval_s * 3000))
        self.interval_s = interval_s
        self.aggregator = Aggregator(client, partitions) if system_incidents else None
        self.token: int | None = None

    def run(self, stop: threading.Event) -> None:
        """Pulses until `stop` is set; a round that fails (Redis unavailable) is retried."""
        try:
            run_rounds("pulser", self.tick, self.interval_s, stop, _ROUND_ERRORS)
        finally:
            self._release()

    def _release(self) -> None:
        token, self.token = self.token, None
        self.metrics.active.set(0)
        if token is None:
            return
        try:
            self.leases.release_pulser(token)
        except REDIS_ERRORS as exc:
            log.warning("pulser lease not released (%s); it expires by itself", exc)

    def tick(self) -> bool:
        """One round: keep or take the lease, then pulse (and decide); True if it pulsed."""
        if self.token is not None and not self.leases.renew_pulser(self.token):
            log.warning("pulser lease lost")
            self._lost()
        if self.token is None:
            self.token = self.leases.acquire_pulser()
            if self.token is None:
                return False
            self.metrics.active.set(1)  # before its first pulse is counted
        self.producer.append(ClockPulsed())
        self.metrics.pulses.inc()
        if self.aggregator is not None:
            try:
                self.metrics.decided(self.aggregator.step(self.token))
            except Fenced:
                # A newer pulser wrote while this one was paused: it is no longer the one.
                log.warning("pulser lease lost (fenced by a newer pulser)")
                self._lost()
        return True

    def _lost(self) -> None:
        self.token = None
        self.metrics.active.set(0)
