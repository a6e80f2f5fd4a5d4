"""Failure and recovery: thresholds, incidents and issue events (spec §4.3–4.5, §5).

monitor-es differs from Sentry where domain.md says so: a brand-new environment opens its
incident only at the N-th real failure, and `issue_resolved` follows only incidents that
produced an occurrence.
"""

from __future__ import annotations

import uuid
from bisect import bisect_right
from datetime import datetime

from monitor_es.domain.effects import Effects
from monitor_es.domain.events import (
    IncidentOpened,
    IncidentResolved,
    IssueOccurrence,
    IssueResolved,
    OccurrenceDropped,
    OccurrenceHeld,
)
from monitor_es.domain.partition import Partition
from monitor_es.domain.records import about, record_checkin
from monitor_es.domain.state import (
    CHECKIN_ERROR,
    CHECKIN_MISSED,
    CHECKIN_OK,
    CHECKIN_TIMEOUT,
    CHECKIN_UNKNOWN,
    FAILURES,
    SYNTHETIC,
    CheckIn,
    CheckInStatus,
    Environment,
    HeldOccurrence,
    Incident,
    Monitor,
)
from monitor_es.domain.system_incidents import Decision
from monitor_es.domain.time import iso

_NAMESPACE = uuid.UUID("6f0c1e64-8a51-4a8e-9a43-5d0c2b6f7e10")

_SINGLE_REASON = {
    CHECKIN_ERROR: "An error check-in was detected",
    CHECKIN_MISSED: "A missed check-in was detected",
    CHECKIN_TIMEOUT: "A timeout check-in was detected",
}


def incident_id(env: Environment, starting: CheckIn) -> str:
    """A deterministic incident id: the environment and the check-in that started it.

    The starting check-in's `date_added` is part of it: a deleted monitor's check-in ids are
    free again, so a re-created monitor can start a new incident with a check-in id that
    started one of the old monitor's (same fingerprint), and two incidents must not share
    an id in the out stream.
    """
    key = f"incident|{env.fingerprint}|{starting.id}|{iso(starting.date_added)}"
    return str(uuid.uuid5(_NAMESPACE, key))


def failure_reason(window: list[CheckIn]) -> str:
    """The occurrence's failure reason over the window (spec §5.2 get_failure_reason)."""
    counts: dict[CheckInStatus, int] = {}
    for checkin in window:
        if checkin.status in FAILURES:
            counts[checkin.status] = counts.get(checkin.status, 0) + 1
    if sum(counts.values()) == 1:
        return _SINGLE_REASON[next(iter(counts))]
    parts = [f"{n} {status.value}" for status, n in counts.items()]
    # Django's get_text_list: "a", "a and b", "a, b and c", and "" for no failure at all.
    listed = f"{', '.join(parts[:-1])} and {parts[-1]}" if len(parts) > 1 else "".join(parts)
    return f"{listed} check-ins detected"


def mark_failed(
    p: Partition,
    fx: Effects,
    monitor: Monitor,
    env: Environment,
    failed: CheckIn,
    *,
    received: datetime,
    tick: datetime | None,
) -> None:
    """Runs the failure threshold for a failed check-in (spec §4.3 try_incident_threshold)."""
    if monitor.disabled:
        # A disabled monitor's environments are out of the incident logic (spec §4.3).
        return
    window = [failed]
    incident = env.incident
    if incident is None:
        threshold = monitor.config.failure_threshold
        if threshold > 1:
            window = _failure_window(env, failed, threshold)
            # Only an ok breaks a streak; too short a history is not a streak (domain.md §1).
            if len(window) < threshold or any(c.status is CHECKIN_OK for c in window):
                return
        incident = _open_incident(p, fx, env, window[0])
    if env.muted:
        return
    for checkin in window:
        _dispatch_occurrence(
            p, fx, monitor, env, incident,
            checkin=checkin, window=window, received=received, tick=tick,
        )  # fmt: skip


def _failure_window(env: Environment, failed: CheckIn, size: int) -> list[CheckIn]:
    # The failing check-in closes its window even when another shares its date_added, so a
    # held occurrence can tell the failure itself (the last) from the rest (release_held).
    older = [c for c in env.checkins if c.date_added <= failed.date_added and c is not failed]
    older.append(failed)
    return older[-size:]


def _open_incident(p: Partition, fx: Effects, env: Environment, starting: CheckIn) -> Incident:
    incident = Incident(
        id=incident_id(env, starting),
        starting_check_in_id=starting.id,
        started_at=starting.date_added,
    )
    env.incident = incident
    p.touch(env)
    fx.emit(
        IncidentOpened,
        **about(env),
        incident_id=incident.id,
        fingerprint=[env.fingerprint],
        starting_check_in_id=starting.id,
        started_at=starting.date_added,
    )
    return incident


def _dispatch_occurrence(
    p: Partition,
    fx: Effects,
    monitor: Monitor,
    env: Environment,
    incident: Incident,
    *,
    checkin: CheckIn,
    window: list[CheckIn],
    received: datetime,
    tick: datetime | None,
) -> None:
    """Sends, holds or drops one occurrence by its tick's system-incident decision (§5.4)."""
    decision = Decision.NORMAL if tick is None else effective_decision(p, tick)
    # The delaying consumer reads one ordered queue per environment and retries a pending
    # head (backpressure, spec §5.4): a queued occurrence behind held ones waits its turn,
    # whatever its own tick's decision. User errors (no tick) are never queued.
    if decision.is_pending() or (tick is not None and env.held):
        env.held.append(
            HeldOccurrence(
                incident_id=incident.id,
                check_in_id=checkin.id,
                window=[c.id for c in window],
                tick=tick or received,
            )
        )
        fx.emit(
            OccurrenceHeld,
            **about(env),
            incident_id=incident.id,
            failed_check_in_id=checkin.id,
            tick=tick,
        )
        return
    if decision is Decision.INCIDENT:
        _drop_occurrence(fx, env, incident.id, checkin, tick or received)
        return
    send_occurrence(fx, monitor, env, incident, checkin=checkin, window=window, received=received)


def _drop_occurrence(
    fx: Effects, env: Environment, incident: str, checkin: CheckIn, tick: datetime
) -> None:
    # The failure is probably ours (ingest outage), not the job's: its result is unknown.
    if checkin.status in SYNTHETIC and checkin.status is not CHECKIN_UNKNOWN:
        checkin.status = CHECKIN_UNKNOWN
        record_checkin(fx, env, checkin, created=False)
    fx.emit(
        OccurrenceDropped,
        **about(env),
        incident_id=incident,
        failed_check_in_id=checkin.id,
        tick=tick,
    )


def send_occurrence(
    fx: Effects,
    monitor: Monitor,
    env: Environment,
    incident: Incident,
    *,
    checkin: CheckIn,
    window: list[CheckIn],
    received: datetime,
) -> None:
    """Emits one issue occurrence with Sentry's title, subtitle and evidence (spec §5.2)."""
    reason = failure_reason(window)
    last_ok = _last_successful(env)
    incident.occurrences += 1
    fx.emit(
        IssueOccurrence,
        **about(env),
        fingerprint=[env.fingerprint],
        incident_id=incident.id,
        failed_check_in_id=checkin.id,
        issue_title=f"Cron failure: {monitor.name}",
        subtitle=f"Your monitor is failing: {reason}.",
        level="error",
        detection_time=checkin.date_added,
        received=received,
        evidence_display=[
            {"name": "Failure reason", "value": reason, "important": True},
            {"name": "Environment", "value": env.name, "important": False},
            {
                "name": "Last successful check-in",
                "value": iso(last_ok) if last_ok else "Never",
                "important": False,
            },
        ],
    )


def _last_successful(env: Environment) -> datetime | None:
    """The newest ok check-in's date_added (spec §1.4 get_last_successful_checkin)."""
    # The kept history counts too: records stored before `last_ok` existed lack it.
    kept = [c.date_added for c in env.checkins if c.status is CHECKIN_OK]
    return max([*kept, env.last_ok] if env.last_ok else kept, default=None)


def effective_decision(p: Partition, tick: datetime) -> Decision:
    """The system-incident decision in force at a tick: the newest one at or before it."""
    decisions = p.clock.decisions  # sorted by minute
    at = bisect_right(decisions, tick, key=lambda d: d[0])
    return Decision(decisions[at - 1][1]) if at else Decision.NORMAL


def release_held(p: Partition, fx: Effects, monitor: Monitor, env: Environment) -> None:
    """Sends or drops held occurrences whose tick's decision is no longer pending."""
    still: list[HeldOccurrence] = []
    incident = env.incident
    by_id = {c.id: c for c in env.checkins}
    for held in env.held:
        decision = effective_decision(p, held.tick)
        checkin = by_id.get(held.check_in_id)
        if still or decision.is_pending():
            # Ordered per environment (spec §5.4): a pending head blocks all behind it.
            still.append(held)
        elif checkin is None or incident is None or incident.id != held.incident_id:
            continue  # the incident or check-in is gone: nothing left to report (§5.4)
        elif decision is Decision.INCIDENT:
            _drop_occurrence(fx, env, held.incident_id, checkin, held.tick)
        elif env.muted:
            # Muted since it was held: muted environments get no issue_occurrence (domain.md).
            continue
        elif checkin.status not in FAILURES and held.window[-1] == checkin.id:
            # A heartbeat revived the timed-out run: it is no failure now, and if it times
            # out again that failure is reported then. The other check-ins of its window
            # (in progress, unknown, ...) are reported like on the immediate path (§4.3).
            continue
        else:
            window = [by_id[i] for i in held.window if i in by_id]
            if not any(c.status in FAILURES for c in window):
                # Heartbeats revived every failure of the window: no failure reason is left
                # to report, so nothing is (each reports itself if it times out again).
                continue
            send_occurrence(
                fx, monitor, env, incident, checkin=checkin, window=window, received=held.tick
            )
    env.held = still
    p.touch(env)


def try_resolution(
    p: Partition, fx: Effects, monitor: Monitor, env: Environment, ok: CheckIn
) -> None:
    """Resolves the open incident when the recovery threshold is met (spec §4.5)."""
    incident = env.incident
    if incident is None or ok.status is not CHECKIN_OK:
        return
    needed = monitor.config.recovery_threshold_value
    if needed > 1:
        recent = env.checkins[-needed:]
        if len(recent) < needed or any(c.status is not CHECKIN_OK for c in recent):
            return
    env.incident = None
    env.held = [h for h in env.held if h.incident_id != incident.id]
    p.touch(env)
    fx.emit(
        IncidentResolved,
        **about(env),
        incident_id=incident.id,
        fingerprint=[env.fingerprint],
        starting_check_in_id=incident.starting_check_in_id,
        started_at=incident.started_at,
        resolving_check_in_id=ok.id,
        resolved_at=ok.date_added,
    )
    if incident.occurrences:
        fx.emit(
            IssueResolved,
            **about(env),
            fingerprint=[env.fingerprint],
            incident_id=incident.id,
            update_date=ok.date_added,
        )
