"""Audit: system-incident decisions seen by the reducer (spec §3.4-3.5, §4.6, §5.4, §6.1).

Black-box: each scenario is fed to `monitor-es simulate - --json` on standard input.
Expectations were written from the spec, domain.md and the README's rule on which tick a
`clock_decision` governs (logged before minute M: governs tick M; logged at M or later:
settles what tick M held and governs the ticks after it) before the scenarios were run.
A decision stays in force for later ticks until the next one; every scenario below
nevertheless logs one decision per minute that matters, as the aggregator does.
"""

from __future__ import annotations

from typing import Any

from test_blackbox_scenarios import (
    ERROR,
    MISSED,
    TIMEOUT,
    Doc,
    events_of,
    generated_id,
    simulate_lines,
    t,
)

P = "acme"
EVERY_MINUTE = {"schedule_type": "crontab", "schedule": "* * * * *"}
HOURLY = {"schedule_type": "crontab", "schedule": "0 * * * *"}


def cid(n: int) -> str:
    return f"da000000-0000-4000-8000-{n:012d}"


def check_in(ts: str, slug: str, n: int, status: str, **config: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "type": "check_in",
        "ts": t(ts),
        "project": P,
        "monitor_slug": slug,
        "check_in_id": cid(n) if n else "00000000-0000-0000-0000-000000000000",
        "status": status,
    }
    if config:
        line["monitor_config"] = config
    return line


def decision(ts: str, minute: str, verdict: str) -> dict[str, Any]:
    return {"type": "clock_decision", "ts": t(ts), "minute": t(minute), "decision": verdict}


def pulse(ts: str) -> dict[str, Any]:
    return {"type": "clock_pulse", "ts": t(ts)}


def run(lines: list[dict[str, Any]]) -> Doc:
    document = simulate_lines(lines)
    assert document["rejected"] == []
    return document


of = events_of


def rows(doc: Doc, slug: str) -> list[tuple[str, str, str]]:
    """(check_in_id, status, date_added) of one monitor's check-ins, in creation order."""
    return [
        (r["check_in_id"], r["status"], r["date_added"])
        for r in doc["check_ins"]
        if r["monitor_slug"] == slug
    ]


def sent(doc: Doc, slug: str | None = None) -> list[tuple[str, str, str, str, str]]:
    """(failed id, detection_time, received, reason, last successful) of each occurrence."""
    return [
        (
            o["failed_check_in_id"],
            o["detection_time"],
            o["received"],
            o["evidence_display"][0]["value"],
            o["evidence_display"][2]["value"],
        )
        for o in of(doc, "issue_occurrence", slug)
    ]


def env_row(doc: Doc, slug: str) -> dict[str, Any]:
    (row,) = [e for e in doc["environments"] if e["monitor_slug"] == slug]
    return row


# 1 ------------------------------------------------------------------------------------


def test_abnormal_then_normal_releases_each_ticks_occurrences_with_their_detection_data() -> None:
    """§5.4: pending → wait; settled NORMAL → send with `received = received_ts` (the tick);
    §5.2: detection_time is the failed check-in's date_added, and the evidence (last
    successful check-in) is computed when the occurrence is finally sent."""
    doc = run([
        check_in("12:00:05", "alpha", 1, "ok", **EVERY_MINUTE,
                 failure_issue_threshold=2, recovery_threshold=2),
        check_in("12:00:20", "beta", 2, "in_progress", **HOURLY, max_runtime=2),
        decision("12:01:30", "12:02:00", "abnormal"),
        decision("12:01:40", "12:03:00", "abnormal"),
        # Tick 12:02: alpha's first miss (no incident: a1 ok in the window); beta times
        # out (timeouts still run at an ABNORMAL tick) and its occurrence is held.
        # Tick 12:03: alpha's second miss opens the incident; both window occurrences held.
        check_in("12:03:20", "alpha", 3, "ok"),  # recovery 2: the incident stays open
        decision("12:03:40", "12:02:00", "normal"),  # settles 12:02 only
        decision("12:03:50", "12:03:00", "normal"),
    ])  # fmt: skip
    alpha = rows(doc, "alpha")
    m1, m2 = alpha[1][0], alpha[2][0]
    assert [(s, d) for _, s, d in alpha] == [
        ("ok", t("12:00:05")),
        ("missed", t("12:01:00")),
        ("missed", t("12:02:00")),
        ("ok", t("12:03:20")),
    ]
    assert rows(doc, "beta") == [(cid(2), "timeout", t("12:00:20"))]
    assert len(of(doc, "issue_occurrence_held")) == 3
    assert of(doc, "issue_occurrence_dropped") == []
    two = "2 missed check-ins detected"
    assert sent(doc) == [
        (cid(2), t("12:00:20"), t("12:02:00"), TIMEOUT, "Never"),
        (m1, t("12:01:00"), t("12:03:00"), two, t("12:03:20")),
        (m2, t("12:02:00"), t("12:03:00"), two, t("12:03:20")),
    ]
    # The held beta occurrence was released by the 12:02 decision, before alpha's.
    kinds = [e["type"] for e in doc["events"] if e["type"] == "issue_occurrence"]
    assert len(kinds) == 3
    assert env_row(doc, "alpha")["incident"] is not None
    assert env_row(doc, "alpha")["status"] == "ok"
    assert env_row(doc, "beta")["status"] == "timeout"
    assert env_row(doc, "beta")["incident"]["starting_check_in_id"] == cid(2)


# 2 ------------------------------------------------------------------------------------


def test_recovering_run_backfilled_to_normal_releases_in_tick_order() -> None:
    """§6.1 rule D broadcasts the new tick first, then the RECOVERING run newest first;
    §5.4: the delaying consumer is ordered per environment and a pending message is
    retried (backpressure), so the environment's occurrences leave in their original
    order, whatever order the settling decisions arrive in."""
    doc = run([
        check_in("10:00:05", "pinger", 1, "ok", **EVERY_MINUTE),
        decision("10:01:10", "10:02:00", "recovering"),
        decision("10:01:20", "10:03:00", "recovering"),
        decision("10:01:30", "10:04:00", "recovering"),
        pulse("10:04:10"),  # ticks 10:02, 10:03, 10:04: three misses, all held
        decision("10:04:20", "10:05:00", "normal"),
        decision("10:04:21", "10:04:00", "normal"),
        decision("10:04:22", "10:03:00", "normal"),
        decision("10:04:23", "10:02:00", "normal"),
    ])  # fmt: skip
    misses = rows(doc, "pinger")[1:]
    assert [(s, d) for _, s, d in misses] == [
        ("missed", t("10:01:00")),
        ("missed", t("10:02:00")),
        ("missed", t("10:03:00")),
    ]
    assert sent(doc) == [
        (misses[0][0], t("10:01:00"), t("10:02:00"), MISSED, t("10:00:05")),
        (misses[1][0], t("10:02:00"), t("10:03:00"), MISSED, t("10:00:05")),
        (misses[2][0], t("10:03:00"), t("10:04:00"), MISSED, t("10:00:05")),
    ]


def test_recovering_run_backfilled_to_incident_drops_and_marks_unknown() -> None:
    """§6.1 rule E rewrites the RECOVERING run to INCIDENT; §5.4 drops the held
    occurrences and turns their synthetic check-ins UNKNOWN; the incident row and the
    environment status are not rolled back."""
    doc = run([
        check_in("10:00:05", "pinger", 1, "ok", **EVERY_MINUTE),
        decision("10:01:10", "10:02:00", "recovering"),
        decision("10:01:20", "10:03:00", "recovering"),
        pulse("10:03:10"),
        decision("10:03:20", "10:04:00", "incident"),
        decision("10:03:21", "10:03:00", "incident"),
        decision("10:03:22", "10:02:00", "incident"),
        decision("10:03:30", "10:05:00", "normal"),
        pulse("10:05:10"),  # tick 10:04 INCIDENT (dropped), 10:05 NORMAL (sent)
    ])  # fmt: skip
    pinger = rows(doc, "pinger")
    assert [(s, d) for _, s, d in pinger] == [
        ("ok", t("10:00:05")),
        ("unknown", t("10:01:00")),
        ("unknown", t("10:02:00")),
        ("unknown", t("10:03:00")),
        ("missed", t("10:04:00")),
    ]
    assert [e["failed_check_in_id"] for e in of(doc, "issue_occurrence_dropped")] == [
        pinger[1][0],
        pinger[2][0],
        pinger[3][0],
    ]
    assert sent(doc) == [(pinger[4][0], t("10:04:00"), t("10:05:00"), MISSED, t("10:00:05"))]
    (inc,) = doc["incidents"]
    assert inc["starting_check_in_id"] == pinger[1][0]
    assert inc["resolved_at"] is None
    assert env_row(doc, "pinger")["status"] == "missed"


# 3 ------------------------------------------------------------------------------------


def test_incident_drops_held_windows_of_several_monitors_and_late_closes_resolve() -> None:
    """Thresholds > 1: each window member gets its own (held) occurrence; on INCIDENT only
    the synthetic ones become UNKNOWN (§5.4), a user ERROR in the window stays ERROR.
    UNKNOWN is not sticky (§8.12), so the late ok of the unknown run closes it and resolves
    its incident (§4.6, §2.3.14)."""
    doc = run([
        check_in("11:00:05", "m3", 1, "ok", **EVERY_MINUTE, failure_issue_threshold=3),
        check_in("11:00:10", "job", 2, "error", **HOURLY, max_runtime=1,
                 failure_issue_threshold=2),
        check_in("11:00:20", "job", 3, "in_progress"),  # timeout_at 11:01
        decision("11:00:30", "11:01:00", "abnormal"),
        decision("11:00:31", "11:02:00", "abnormal"),
        decision("11:00:32", "11:03:00", "abnormal"),
        decision("11:00:33", "11:04:00", "abnormal"),
        pulse("11:04:10"),
        # Rule F: INCIDENT for the new tick, the ABNORMAL run rewritten to INCIDENT.
        decision("11:04:20", "11:05:00", "incident"),
        decision("11:04:21", "11:04:00", "incident"),
        decision("11:04:22", "11:03:00", "incident"),
        decision("11:04:23", "11:02:00", "incident"),
        decision("11:04:24", "11:01:00", "incident"),
        decision("11:05:30", "11:06:00", "normal"),
        pulse("11:06:10"),
        check_in("11:06:20", "m3", 4, "ok"),
        check_in("11:06:30", "job", 3, "ok"),
    ])  # fmt: skip
    m3 = rows(doc, "m3")
    assert [(s, d) for _, s, d in m3] == [
        ("ok", t("11:00:05")),
        ("unknown", t("11:01:00")),
        ("unknown", t("11:02:00")),
        ("unknown", t("11:03:00")),
        ("unknown", t("11:04:00")),  # tick 11:05 INCIDENT: created missed, dropped
        ("missed", t("11:05:00")),  # tick 11:06 NORMAL: sent
        ("ok", t("11:06:20")),
    ]
    assert rows(doc, "job") == [(cid(2), "error", t("11:00:10")), (cid(3), "ok", t("11:00:20"))]
    (closed,) = [r for r in doc["check_ins"] if r["check_in_id"] == cid(3)]
    assert closed["duration_ms"] == 370_000
    dropped = [e["failed_check_in_id"] for e in of(doc, "issue_occurrence_dropped")]
    assert sorted(dropped) == sorted([cid(2), cid(3), m3[1][0], m3[2][0], m3[3][0], m3[4][0]])
    assert sent(doc) == [(m3[5][0], t("11:05:00"), t("11:06:00"), MISSED, t("11:00:05"))]
    by_slug = {i["monitor_slug"]: i for i in doc["incidents"]}
    assert by_slug["job"]["starting_check_in_id"] == cid(2)
    assert by_slug["job"]["resolving_check_in_id"] == cid(3)
    assert by_slug["m3"]["starting_check_in_id"] == m3[1][0]
    assert by_slug["m3"]["resolving_check_in_id"] == cid(4)
    # issue_resolved only for the incident that produced an occurrence (domain.md).
    assert [e["monitor_slug"] for e in of(doc, "issue_resolved")] == ["m3"]
    assert of(doc, "mark_unknown") == []
    assert [e["check_in_id"] for e in of(doc, "mark_timeout")] == [cid(3)]


# 4 ------------------------------------------------------------------------------------


def test_late_repeated_and_unrelated_decisions() -> None:
    """Decisions settling held ticks long after they ran; the same decision logged twice
    changes nothing more; a decision for a minute with nothing held, or an INCIDENT for a
    minute whose occurrence already went out, changes nothing retroactively (README)."""
    lines = [
        check_in("09:00:05", "pinger", 1, "ok", **EVERY_MINUTE),
        pulse("09:01:10"),
        decision("09:01:20", "09:02:00", "abnormal"),
        decision("09:01:21", "09:03:00", "abnormal"),
        decision("09:01:22", "09:04:00", "abnormal"),
        decision("09:01:22", "09:04:00", "abnormal"),  # repeated
        pulse("09:04:10"),  # ticks 09:02-09:04: three held misses
        decision("09:06:00", "09:05:00", "normal"),  # late: tick 09:05 ran under abnormal
        decision("09:06:01", "09:04:00", "normal"),
        decision("09:06:02", "09:03:00", "normal"),
        decision("09:06:03", "09:02:00", "normal"),
        decision("09:06:04", "09:02:00", "normal"),  # repeated
        decision("09:06:05", "09:03:00", "normal"),  # repeated
        decision("09:06:06", "08:30:00", "incident"),  # before anything was held
    ]
    doc = run(lines)
    misses = rows(doc, "pinger")[1:]
    # Ticks 09:02 .. 09:06 (09:06 from the late decisions' own minute): five misses.
    assert [(s, d) for _, s, d in misses] == [
        ("missed", t("09:01:00")),
        ("missed", t("09:02:00")),
        ("missed", t("09:03:00")),
        ("missed", t("09:04:00")),
        ("missed", t("09:05:00")),
    ]
    # All five held: the entry at 09:06:00 first ticks 09:05 and 09:06 under the 09:04
    # decision still in force, then records the 09:05 NORMAL (README).
    assert [e["tick"] for e in of(doc, "issue_occurrence_held")] == [
        t(f"09:0{n}:00") for n in range(2, 7)
    ]
    expected = [
        (m[0], m[2], t(f"09:0{n + 2}:00"), MISSED, t("09:00:05")) for n, m in enumerate(misses)
    ]
    assert sent(doc) == expected
    assert of(doc, "issue_occurrence_dropped") == []
    # A decision for a minute with nothing held is inert: the same log without it folds
    # to the same document.
    without = run([line for line in lines if line.get("minute") != t("08:30:00")])
    assert without == doc


# 5 ------------------------------------------------------------------------------------


def test_unknown_runs_at_an_incident_tick_and_their_late_closes() -> None:
    """§3.4/§3.5: an INCIDENT tick marks every in-progress run started at or before it
    UNKNOWN instead of timing out; §4.6: no environment or incident change, never timed
    out later, not found by the zero guid, but closable by its own guid: ok → ok (no
    failure), error → the user-error failure path (sent at once); a heartbeat revives it
    (§2.8) and it can then time out."""
    doc = run([
        check_in("10:00:10", "w1", 1, "in_progress", **HOURLY, max_runtime=3),
        check_in("10:00:20", "w2", 2, "in_progress", **HOURLY, max_runtime=3),
        check_in("10:00:40", "w4", 4, "in_progress", **HOURLY, max_runtime=3),
        check_in("10:01:30", "w3", 3, "in_progress", **HOURLY, max_runtime=3),
        decision("10:01:40", "10:02:00", "incident"),
        decision("10:01:50", "10:03:00", "normal"),
        pulse("10:05:00"),
        check_in("10:05:10", "w1", 1, "ok"),
        check_in("10:05:20", "w2", 2, "error"),
        check_in("10:05:30", "w3", 3, "in_progress"),  # heartbeat: timeout_at 10:08
        check_in("10:05:40", "w4", 0, "ok"),  # zero guid: a new check-in
        pulse("10:08:10"),
    ])  # fmt: skip
    # Order among environments is not specified (one task per check-in): compare sorted.
    assert sorted((e["check_in_id"], e["ts"]) for e in of(doc, "mark_unknown")) == [
        (cid(n), t("10:02:00")) for n in (1, 2, 3, 4)
    ]
    assert [(e["check_in_id"], e["ts"]) for e in of(doc, "mark_timeout")] == [
        (cid(3), t("10:08:00"))
    ]
    assert rows(doc, "w1") == [(cid(1), "ok", t("10:00:10"))]
    assert rows(doc, "w2") == [(cid(2), "error", t("10:00:20"))]
    assert rows(doc, "w3") == [(cid(3), "timeout", t("10:01:30"))]
    w4 = rows(doc, "w4")
    assert w4[0] == (cid(4), "unknown", t("10:00:40"))
    assert w4[1][1:] == ("ok", t("10:05:40"))
    generated_id({"check_in_id": w4[1][0]})
    assert {r["check_in_id"]: r["duration_ms"] for r in doc["check_ins"]}[cid(1)] == 300_000
    assert {e["monitor_slug"]: e["status"] for e in doc["environments"]} == {
        "w1": "ok",
        "w2": "failed",
        "w3": "timeout",
        "w4": "ok",
    }
    assert sent(doc) == [
        (cid(2), t("10:00:20"), t("10:05:20"), ERROR, "Never"),
        (cid(3), t("10:01:30"), t("10:08:00"), TIMEOUT, "Never"),
    ]
    assert sorted(i["monitor_slug"] for i in doc["incidents"]) == ["w2", "w3"]


# 6 ------------------------------------------------------------------------------------


def test_muted_or_deleted_while_held() -> None:
    """A held occurrence of a monitor deleted meanwhile has no incident left to report
    (§5.4 missing incident → drop); one of a monitor muted meanwhile is not sent either
    (domain.md: muted environments get incidents but no issue_occurrence)."""
    doc = run([
        check_in("08:00:05", "mutee", 1, "ok", **EVERY_MINUTE),
        check_in("08:00:06", "gone", 2, "ok", **EVERY_MINUTE),
        check_in("08:00:07", "keep", 3, "ok", **EVERY_MINUTE),
        decision("08:01:10", "08:02:00", "abnormal"),
        pulse("08:02:10"),
        {"type": "monitor_muted", "ts": t("08:02:20"), "project": P, "monitor_slug": "mutee",
         "muted": True},
        {"type": "monitor_deleted", "ts": t("08:02:30"), "project": P, "monitor_slug": "gone"},
        decision("08:02:40", "08:02:00", "normal"),
    ])  # fmt: skip
    assert len(of(doc, "issue_occurrence_held")) == 3
    assert [o["monitor_slug"] for o in of(doc, "issue_occurrence")] == ["keep"]
    assert sorted(e["monitor_slug"] for e in doc["environments"]) == ["keep", "mutee"]
    assert env_row(doc, "mutee")["incident"] is not None


# 7 ------------------------------------------------------------------------------------


def test_incident_resolved_by_an_ok_while_its_occurrences_are_held() -> None:
    """The incident opens at an ABNORMAL tick (occurrence held) and an ok resolves it before
    the decision settles: the held occurrence is not sent after the resolution (monitor-es
    drops it with the incident; see the audit report: Sentry would still load the resolved
    incident row), so no issue_resolved either; the miss stays MISSED even when the
    decision turns out INCIDENT, as nothing is left to drop."""
    doc = run([
        check_in("07:00:05", "flaky", 1, "ok", **EVERY_MINUTE),
        check_in("07:00:06", "other", 2, "ok", **EVERY_MINUTE),
        decision("07:01:10", "07:02:00", "abnormal"),
        pulse("07:02:10"),
        check_in("07:02:30", "flaky", 3, "ok"),
        check_in("07:02:31", "other", 4, "ok"),
        decision("07:02:40", "07:02:00", "incident"),
    ])  # fmt: skip
    for slug in ("flaky", "other"):
        statuses = [s for _, s, _ in rows(doc, slug)]
        assert statuses == ["ok", "missed", "ok"], (slug, statuses)
        assert env_row(doc, slug)["incident"] is None
    assert of(doc, "issue_occurrence") == []
    assert of(doc, "issue_occurrence_dropped") == []
    assert of(doc, "issue_resolved") == []
    assert len(of(doc, "incident_resolved")) == 2


# 8 ------------------------------------------------------------------------------------


def test_clock_backfill_runs_each_minute_under_its_own_decision() -> None:
    """§3.2 backfill: one pulse crossing five minutes runs ticks 12:02..12:06 in order, each
    under its decision (12:02: none, NORMAL; 12:03: INCIDENT; from 12:04: NORMAL)."""
    doc = run([
        check_in("12:00:05", "pinger", 1, "ok", **EVERY_MINUTE),
        check_in("12:00:10", "long", 2, "in_progress", **HOURLY, max_runtime=2),
        check_in("12:00:30", "run4", 4, "in_progress", **HOURLY, max_runtime=3),
        check_in("12:01:05", "run3", 3, "in_progress", **HOURLY, max_runtime=5),
        decision("12:01:20", "12:03:00", "incident"),
        decision("12:01:30", "12:04:00", "normal"),
        pulse("12:06:10"),
    ])  # fmt: skip
    assert [(e["check_in_id"], e["ts"]) for e in of(doc, "mark_timeout")] == [
        (cid(2), t("12:02:00"))
    ]
    assert sorted((e["check_in_id"], e["ts"]) for e in of(doc, "mark_unknown")) == [
        (cid(3), t("12:03:00")),
        (cid(4), t("12:03:00")),
    ]
    pinger = rows(doc, "pinger")
    assert [(s, d) for _, s, d in pinger] == [
        ("ok", t("12:00:05")),
        ("missed", t("12:01:00")),
        ("unknown", t("12:02:00")),
        ("missed", t("12:03:00")),
        ("missed", t("12:04:00")),
        ("missed", t("12:05:00")),
    ]
    assert sent(doc, "pinger") == [
        (pinger[n][0], t(f"12:0{n}:00"), t(f"12:0{n + 1}:00"), MISSED, t("12:00:05"))
        for n in (1, 3, 4, 5)
    ]
    assert sent(doc, "long") == [(cid(2), t("12:00:10"), t("12:02:00"), TIMEOUT, "Never")]
    assert rows(doc, "run3") == [(cid(3), "unknown", t("12:01:05"))]
    assert rows(doc, "run4") == [(cid(4), "unknown", t("12:00:30"))]
    assert env_row(doc, "run3")["status"] == "pending"


# 9 ------------------------------------------------------------------------------------


def test_an_occurrence_of_a_settled_tick_waits_behind_a_pending_one() -> None:
    """§5.4: the environment's queue is ordered and a pending head is retried, so a miss at
    a NORMAL (or INCIDENT) tick behind a held one is only sent (or dropped) after it; each
    is settled by its own tick's decision. Another environment is not blocked."""
    doc = run([
        check_in("12:00:05", "pinger", 1, "ok", **EVERY_MINUTE),
        decision("12:01:10", "12:02:00", "abnormal"),
        decision("12:01:20", "12:03:00", "normal"),
        decision("12:01:30", "12:04:00", "incident"),
        decision("12:01:40", "12:05:00", "normal"),
        pulse("12:02:10"),  # tick 12:02: miss held (ABNORMAL)
        check_in("12:02:20", "solo", 2, "ok", **EVERY_MINUTE),
        pulse("12:05:10"),  # 12:03 NORMAL, 12:04 INCIDENT, 12:05 NORMAL: queued behind
        decision("12:05:20", "12:02:00", "normal"),
    ])  # fmt: skip
    pinger = rows(doc, "pinger")
    assert [(s, d) for _, s, d in pinger] == [
        ("ok", t("12:00:05")),
        ("missed", t("12:01:00")),
        ("missed", t("12:02:00")),
        ("unknown", t("12:03:00")),  # dropped when its turn came
        ("missed", t("12:04:00")),
    ]
    held = [e["failed_check_in_id"] for e in of(doc, "issue_occurrence_held")]
    assert held == [pinger[n][0] for n in (1, 2, 3, 4)]
    assert sent(doc, "pinger") == [
        (pinger[n][0], t(f"12:0{n}:00"), t(f"12:0{n + 1}:00"), MISSED, t("12:00:05"))
        for n in (1, 2, 4)
    ]
    dropped = [e["failed_check_in_id"] for e in of(doc, "issue_occurrence_dropped", "pinger")]
    assert dropped == [pinger[3][0]]
    # solo (ok at 12:02:20, next 12:03, latest 12:04) misses at tick 12:04 (INCIDENT:
    # dropped at once) and 12:05 (NORMAL: sent at once), not behind pinger's queue.
    solo = rows(doc, "solo")
    assert [s for _, s, _ in solo] == ["ok", "unknown", "missed"]
    assert sent(doc, "solo") == [(solo[2][0], t("12:04:00"), t("12:05:00"), MISSED, t("12:02:20"))]
    released = [e["id"] for e in of(doc, "issue_occurrence", "pinger")]
    solo_sent = [e["id"] for e in of(doc, "issue_occurrence", "solo")]
    ids = [e["id"] for e in doc["events"]]
    assert ids.index(solo_sent[0]) < ids.index(released[0])


# 10 -----------------------------------------------------------------------------------


def test_a_run_made_unknown_counts_in_a_later_failure_window() -> None:
    """§8.16 / §4.3: only an ok breaks a streak; UNKNOWN inside the threshold window counts,
    so the first real miss after it opens the incident with both (the failure reason only
    counts error/missed/timeout, §5.2)."""
    doc = run([
        check_in("12:00:10", "five", 1, "in_progress",
                 schedule_type="crontab", schedule="*/5 * * * *", failure_issue_threshold=2),
        decision("12:00:20", "12:01:00", "incident"),
        decision("12:00:30", "12:02:00", "normal"),
        pulse("12:06:10"),  # 12:01 marks it unknown; 12:06 misses the 12:05 slot
    ])  # fmt: skip
    five = rows(doc, "five")
    assert [(s, d) for _, s, d in five] == [("unknown", t("12:00:10")), ("missed", t("12:05:00"))]
    assert sent(doc) == [
        (cid(1), t("12:00:10"), t("12:06:00"), MISSED, "Never"),
        (five[1][0], t("12:05:00"), t("12:06:00"), MISSED, "Never"),
    ]
    (inc,) = doc["incidents"]
    assert (inc["starting_check_in_id"], inc["started_at"]) == (cid(1), t("12:00:10"))
