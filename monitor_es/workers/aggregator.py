"""The system-incident aggregator (spec §6.1): volume counters in, `clock_decision` out.

Commits count check-ins per broker minute in each partition's volume hash. A tick is
decided once every partition's stream time has passed it (the one place that needs the
slowest partition), and the decision (plus any backfill) is broadcast into every
partition's log, so reducers read it in order and replays stay exact.
"""

from __future__ import annotations

from datetime import datetime

from redis.typing import EncodableT

from monitor_es.codec import encode_valid_event
from monitor_es.domain.events import ClockDecided
from monitor_es.domain.system_incidents import (
    Decision,
    MetricClass,
    Thresholds,
    Transition,
    classify,
    decide,
    history_minutes,
    pct_deviation,
    pruned_minutes,
)
from monitor_es.domain.time import ONE_MINUTE, from_ms, to_ms, trunc_minute
from monitor_es.store import keys
from monitor_es.store.connection import Client, as_text
from monitor_es.store.fenced_writes import FencedWriter

_LAST_TICK = "last_tick"
_INCIDENT_START = "incident_start"


def _epoch(minute: datetime) -> int:
    return to_ms(minute) // 1000


class Aggregator:
    """Decides each tick once all partitions passed it, and broadcasts the decision."""

    def __init__(
        self, client: Client, partitions: int, thresholds: Thresholds | None = None
    ) -> None:
        self.client = client
        self.partitions = partitions
        self.thresholds = thresholds or Thresholds()
        self._classes: dict[datetime, MetricClass] = {}

    def step(self, token: int) -> list[ClockDecided]:
        """Decides every tick that all partitions have passed; returns what it broadcast.

        `token` is the pulser lease's fencing token: every write is refused (functions.Fenced)
        once a pulser with a newer token has written there.
        """
        writer = FencedWriter(self.client, self.partitions, token)
        slowest = self._slowest_minute()
        if slowest is None:
            return []
        stored = self.client.hget(keys.SYSTEM_INCIDENT_STATE, _LAST_TICK)
        last_tick = None if stored is None else int(stored)
        if last_tick is None:
            # The first tick is the slowest partition's minute, which moves on: store where
            # the decisions start before broadcasting any, so that an aggregator dying amid
            # the first broadcast is followed by one deciding that same tick again, not a
            # later one (which left the first decision in some partitions' logs only, and
            # the ticks between undecided). Only if unset: a paused former aggregator may
            # have stored its own start since we read, and then we go on from that one.
            last_tick = _epoch(slowest - ONE_MINUTE)
            if not writer.hsetnx(keys.SYSTEM_INCIDENT_STATE, _LAST_TICK, last_tick):
                stored = self.client.hget(keys.SYSTEM_INCIDENT_STATE, _LAST_TICK)
                last_tick = int(stored) if stored is not None else last_tick
        tick = from_ms(last_tick * 1000) + ONE_MINUTE
        sent: list[ClockDecided] = []
        while tick <= slowest:
            sent.extend(self._decide(writer, tick))
            writer.hset(keys.SYSTEM_INCIDENT_STATE, {_LAST_TICK: _epoch(tick)})
            tick += ONE_MINUTE
        return sent

    def _slowest_minute(self) -> datetime | None:
        pipe = self.client.pipeline(transaction=False)
        for p in range(self.partitions):
            pipe.hget(keys.partition_keys(p).meta, "stream_ms")
        times = pipe.execute()
        if any(t is None for t in times):
            return None  # a partition that never reported holds the decisions back
        return trunc_minute(from_ms(min(int(t) for t in times)))

    def _decide(self, writer: FencedWriter, tick: datetime) -> list[ClockDecided]:
        # A crash may come between any two writes, and the next aggregator decides this tick
        # again from what is stored. So the stored decisions, which that decision is computed
        # from, are rewritten last, in one HSET; everything before it is repeated the same
        # way (the broadcast at least once: a repeated decision entry changes no reducer).
        result = decide(tick, self._metric_class, self._stored, self.thresholds)
        decisions = [(tick, result.decision), *result.backfill]
        events = [ClockDecided(minute=minute, decision=d.value) for minute, d in decisions]
        writer.broadcast([encode_valid_event(event) for event in events])
        if result.transition is Transition.INCIDENT_STARTED:
            writer.hset(keys.SYSTEM_INCIDENT_STATE, {_INCIDENT_START: _epoch(result.ts)})
        elif result.transition is Transition.INCIDENT_RECOVERED:
            self._prune(writer, result.ts)
        rewrite: dict[str | int, EncodableT] = {_epoch(minute): d.value for minute, d in decisions}
        writer.hset(keys.SYSTEM_INCIDENT_LOG, rewrite)
        return events

    def _stored(self, minute: datetime) -> Decision | None:
        value = self.client.hget(keys.SYSTEM_INCIDENT_LOG, str(_epoch(minute)))
        return None if value is None else Decision(as_text(value))

    def _metric_class(self, minute: datetime) -> MetricClass:
        if minute not in self._classes:
            volumes = self._volumes([minute, *history_minutes(minute)])
            pct = pct_deviation(volumes[0], volumes[1:])
            self._classes[minute] = classify(pct, self.thresholds)
        return self._classes[minute]

    def _volumes(self, minutes: list[datetime]) -> list[int | None]:
        pipe = self.client.pipeline(transaction=False)
        for minute in minutes:
            for p in range(self.partitions):
                pipe.hget(keys.partition_keys(p).volume, _epoch(minute))
        raw = pipe.execute()
        totals: list[int | None] = []
        for i in range(len(minutes)):
            counts = [int(v) for v in raw[i * self.partitions : (i + 1) * self.partitions] if v]
            totals.append(sum(counts) if counts else None)
        return totals

    def _prune(self, writer: FencedWriter, recovered: datetime) -> None:
        # The outage's volumes would poison future baselines (spec §6.1 step 4).
        start = self.client.hget(keys.SYSTEM_INCIDENT_STATE, _INCIDENT_START)
        if start is None:
            return
        minutes = [
            _epoch(minute) for minute in pruned_minutes(from_ms(int(start) * 1000), recovered)
        ]
        for p in range(self.partitions):
            writer.hdel_volumes(p, minutes)
        self._classes.clear()
