"""Black-box audit of check-in ingestion, issue occurrences and broken-monitor detection,
run through `monitor-es simulate FILE --json` on `tests/scenarios/audit_ingest_*.jsonl`.

Every expectation was written from shared/spec/crons-behaviour.md and shared/design/domain.md
before the scenario was first run; a comment says where a first expectation misread them.
"""

from __future__ import annotations

from datetime import date, timedelta

from test_blackbox_scenarios import (
    ERROR,
    Doc,
    ci,
    cid,
    contract_events,
    env,
    events_of,
    generated_id,
    incident,
    issue_resolved,
    occurrence,
    opened,
    resolved,
    t,
)
from test_blackbox_scenarios import (
    simulate as blackbox_simulate,
)


def simulate(name: str, *flags: str) -> Doc:
    """The `simulate FILE --json` document of `audit_ingest_<name>.jsonl`."""
    return blackbox_simulate(name, *flags, prefix="audit_ingest_")


of = events_of


# 1 ------------------------------------------------------------------------------------


def test_every_rejection_carries_its_exact_error_fields() -> None:
    doc = simulate("rejections", "--max-monitors", "2", "--max-environments", "2")

    def line(k: int) -> int:
        return 2 + k  # the k-th event of the scenario, after its two comment lines

    too_long = "Environment name too long"
    assert doc["rejected"] == [
        # §1.3: creating a third monitor; the limit is reported with Sentry's text.
        {
            "line": line(3),
            "errors": [
                {
                    "type": "monitor_limit_exceeded",
                    "reason": "You may not exceed 2 monitors per organization",
                }
            ],
        },
        # §1.3: a third environment of `one`.
        {
            "line": line(5),
            "errors": [
                {
                    "type": "monitor_environment_limit_exceeded",
                    "reason": "You may not exceed 2 environments per monitor",
                }
            ],
        },
        # §2.5: the id belongs to production of `one`. (Another monitor's id would be a
        # mismatch too, but only within a partition: a known limit, so not in a scenario
        # that the pipeline tests also fold on 4 and 16 partitions.)
        {
            "line": line(6),
            "errors": [
                {"type": "checkin_environment_mismatch", "existingEnvironment": "production"}
            ],
        },
        # §2.3 step 5: 2147483.648 s is 2147483648 ms, one above the maximum.
        {
            "line": line(7),
            "errors": [
                {
                    "type": "checkin_validation_failed",
                    "errors": {
                        "duration": ["Ensure this value is less than or equal to 2147483647."]
                    },
                }
            ],
        },
        # §2.8 steps 4-5: the close is dated 25 days 10 h before the run's start; the implicit
        # abs() duration 2196000000 ms is out of range.
        {
            "line": line(8),
            "errors": [{"type": "checkin_invalid_duration", "duration": "2196000000"}],
        },
        # §2.3 step 5: every field error of the payload in one rejection.
        {
            "line": line(9),
            "errors": [
                {
                    "type": "checkin_validation_failed",
                    "errors": {
                        "status": ['"missed" is not a valid choice.'],
                        "environment": ["Not a valid string."],
                        "trace_id": ["Must be a valid UUID."],
                    },
                }
            ],
        },
        # The staging run closed under production: a mismatch (step 12), not finished.
        {
            "line": line(10),
            "errors": [{"type": "checkin_environment_mismatch", "existingEnvironment": "staging"}],
        },
        {"line": line(11), "errors": [{"type": "checkin_finished"}]},
        # Step 10 (disabled) comes before step 11 (environment name).
        {"line": line(13), "errors": [{"type": "monitor_disabled"}]},
        {"line": line(14), "errors": [{"type": "monitor_invalid_environment", "reason": too_long}]},
        # Step 8: an invalid config of a new monitor, then not found.
        {
            "line": line(16),
            "errors": [
                {
                    "type": "monitor_invalid_config",
                    "errors": {
                        "checkin_margin": ["Ensure this value is greater than or equal to 1."]
                    },
                },
                {"type": "monitor_not_found"},
            ],
        },
    ]
    # An invalid upsert of an existing monitor is ignored and the check-in accepted (§2.4);
    # "Two" is slugified to `two`.
    assert [
        (r["monitor_slug"], r["environment"], r["check_in_id"], r["status"])
        for r in doc["check_ins"]
    ] == [
        ("one", "production", cid("c1", 1), "in_progress"),
        ("two", "staging", cid("c1", 2), "ok"),
        ("one", "staging", cid("c1", 4), "ok"),
        ("two", "production", cid("c1", 8), "ok"),
    ]
    assert [e["config"]["schedule"] for e in of(doc, "monitor_updated")] == []


# 2 ------------------------------------------------------------------------------------


def test_a_rate_limited_check_in_neither_merges_nor_creates_a_monitor() -> None:
    doc = simulate("ratelimited_upsert")
    # Lines: 4-9 six `kept` check-ins, 10 the 7th with a new margin; 11-16 six `fresh`
    # attempts before the monitor exists; 17 the 7th with a config; 18 `fresh` next minute.
    assert [(r["line"], [e["type"] for e in r["errors"]]) for r in doc["rejected"]] == [
        (10, ["monitor_environment_ratelimited"]),
        *[(n, ["monitor_not_found"]) for n in range(11, 17)],
        (17, ["monitor_environment_ratelimited"]),
    ]
    assert of(doc, "monitor_updated") == []
    assert [e["monitor_slug"] for e in of(doc, "monitor_created")] == ["kept", "fresh"]
    assert [e["config"]["checkin_margin"] for e in of(doc, "monitor_created")] == [None, None]
    assert [(r["monitor_slug"], r["check_in_id"]) for r in doc["check_ins"]] == [
        *[("kept", cid("7a", n)) for n in range(1, 7)],
        ("fresh", cid("7a", 17)),
        ("kept", cid("7a", 18)),
    ]
    # The margin stayed 1 minute.
    assert doc["environments"] == [
        env("fresh", "ok", "12:01:00", "13:00:00", "13:01:00"),
        env("kept", "ok", "12:01:01", "13:00:00", "13:01:00"),
    ]


def test_deleting_a_monitor_keeps_its_environments_rate_limit_bucket() -> None:
    """Spec §2.3 step 2: the bucket is `monitor-checkins:{project:slug:env}:{minute}`, a
    counter that deleting the monitor does not touch; domain.md: buckets are per normalised
    environment and broker minute. 4 check-ins, a delete, then 3 more in the same minute:
    the 7th attempt is refused (monitor-es used to start the re-created environment at 0)."""
    doc = simulate("delete_rate_limit")
    assert [(r["line"], [e["type"] for e in r["errors"]]) for r in doc["rejected"]] == [
        (10, ["monitor_environment_ratelimited"])
    ]
    assert [r["check_in_id"] for r in doc["check_ins"]] == [cid("de", 4), cid("de", 5)]


# 3 ------------------------------------------------------------------------------------


def test_a_mixed_window_fans_out_and_a_second_ok_resolves() -> None:
    doc = simulate("mixed_window")
    s = "thr"
    ok1, err, run, err2, ok2, ok3 = (cid("a0", n) for n in (1, 2, 3, 4, 5, 6))
    rows = doc["check_ins"]
    missed = generated_id(rows[3])
    # Hourly interval, max_runtime 5: the 12:00 run times out at 12:05, 13:00 is missed at
    # 13:01 (next_checkin from the in_progress at 12:00, §2.7).
    assert rows == [
        ci(s, ok1, "ok", "10:00:00", "10:00:00", None, None, None),
        ci(s, err, "error", "11:00:00", "11:00:00", "11:00:00", None, None),
        ci(s, run, "timeout", "12:00:00", "12:00:00", "12:00:00", "12:05:00", None),
        ci(s, missed, "missed", "13:00:00", "13:00:00", "13:00:00", None, None),
        ci(s, err2, "error", "14:00:00", "14:00:00", "14:00:00", None, None),
        ci(s, ok2, "ok", "15:00:00", "15:00:00", "15:00:00", None, None),
        ci(s, ok3, "ok", "16:00:00", "16:00:00", "16:00:00", None, None),
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    # The 12:05 timeout's window [ok, error, timeout] holds an ok: no incident; the miss's
    # window [error, timeout, missed] opens it at its oldest check-in (§4.3).
    inc = incident(i1, s, err, "11:00:00", ok3, "16:00:00")
    assert doc["incidents"] == [inc]
    mixed = "1 error, 1 timeout and 1 missed check-ins detected"  # first-seen order (§5.2)
    assert contract_events(doc) == [
        opened({**inc, "resolving_check_in_id": None, "resolved_at": None}),
        occurrence(inc, err, "11:00:00", mixed, "10:00:00", s),
        occurrence(inc, run, "12:00:00", mixed, "10:00:00", s),
        occurrence(inc, missed, "13:00:00", mixed, "10:00:00", s),
        # A failure while the incident is open: one occurrence over [failed] alone.
        occurrence(inc, err2, "14:00:00", ERROR, "10:00:00", s),
        # Recovery threshold 2: the 15:00 ok alone does not resolve; the 16:00 ok does.
        resolved(inc),
        issue_resolved(inc),
    ]
    assert doc["environments"] == [env(s, "ok", "16:00:00", "17:00:00", "17:01:00")]
    assert doc["rejected"] == []


def test_an_in_progress_run_in_the_window_gets_an_occurrence_and_its_close_resolves() -> None:
    doc = simulate("running_in_window")
    s = "ip"
    run = cid("d5", 1)
    rows = doc["check_ins"]
    m11, m12 = generated_id(rows[1]), generated_id(rows[2])
    assert rows == [
        # Closed at 12:30 without a duration: 2.5 h since its start (§2.8 step 4).
        ci(s, run, "ok", "10:00:00", "12:30:00", None, None, 9_000_000),
        ci(s, m11, "missed", "11:00:00", "11:00:00", "11:00:00", None, None),
        ci(s, m12, "missed", "12:00:00", "12:00:00", "12:00:00", None, None),
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    # §4.3: the window is any status, only ok breaks it; the in-progress run starts it. The
    # run's late ok resolves it (§8.11) dated at the run's date_added (domain.md).
    inc = incident(i1, s, run, "10:00:00", run, "10:00:00")
    assert doc["incidents"] == [inc]
    # §5.2: the reason counts only error/missed/timeout; every window member gets one.
    reason = "2 missed check-ins detected"
    assert contract_events(doc) == [
        opened({**inc, "resolving_check_in_id": None, "resolved_at": None}),
        occurrence(inc, run, "10:00:00", reason, None, s),
        occurrence(inc, m11, "11:00:00", reason, None, s),
        occurrence(inc, m12, "12:00:00", reason, None, s),
        resolved(inc),
        issue_resolved(inc),
    ]
    # last_checkin stays at the run's start; the next slot follows the closing message.
    assert doc["environments"] == [env(s, "ok", "10:00:00", "13:00:00", "13:01:00")]


def test_a_monitor_mute_covers_an_environment_created_later() -> None:
    doc = simulate("mute_inherit")
    s = "m"
    i_qa, i_prod = (r["id"] for r in doc["incidents"])
    qa = incident(i_qa, s, cid("d0", 2), "10:02:00", cid("d0", 4), "10:05:00", environment="qa")
    prod = incident(i_prod, s, cid("d0", 3), "10:03:00", cid("d0", 6), "10:08:00")
    assert doc["incidents"] == [qa, prod]
    blank = {"resolving_check_in_id": None, "resolved_at": None}
    assert contract_events(doc) == [
        opened({**qa, **blank}),  # muted from its creation: no occurrence
        opened({**prod, **blank}),
        resolved(qa),  # no occurrence was produced, so no issue_resolved (domain.md)
        occurrence(prod, cid("d0", 5), "10:06:00", ERROR, "10:00:00", s),
        resolved(prod),  # muted again by now, but it produced an occurrence
        issue_resolved(prod),
    ]
    assert doc["environments"] == [
        env(s, "ok", "10:08:00", "11:00:00", "11:01:00", muted=True),
        env(s, "ok", "10:05:00", "11:00:00", "11:01:00", environment="qa"),
    ]
    assert doc["rejected"] == []


# 4 ------------------------------------------------------------------------------------


def _noons(first: date, last: date) -> list[str]:
    days = (last - first).days + 1
    return [f"{first + timedelta(days=n)}T12:00:00Z" for n in range(days)]


def _may(day: int) -> date:
    return date(2024, 5, day)


def _june(day: int) -> date:
    return date(2024, 6, day)


def test_broken_detection_skips_non_failures_and_auto_mutes_once() -> None:
    doc = simulate("broken")
    assert doc["rejected"] == []
    # §6.2: candidates need an open incident ≥ 14 days old, an active unmuted monitor and
    # env, and exactly 4 newest check-ins all error/timeout/missed; sweeps run Mon-Fri 15:00.
    assert [
        (e["monitor_slug"], e["started_at"], e["detection_time"])
        for e in of(doc, "monitor_environment_broken")
    ] == [
        ("flip", t("12:00:15"), t("15:00:00", "2024-05-15")),
        ("renotice", t("12:00:17"), t("15:00:00", "2024-05-15")),
        ("unmuted", t("12:00:14"), t("15:00:00", "2024-05-15")),
        # The UNKNOWN run (May 13, 11:00) is among the 4 newest until May 16.
        ("unknown", t("12:00:16"), t("15:00:00", "2024-05-16")),
        # First expectation was May 20; but the in_progress at 11:00 on May 14 still expects
        # May 14 12:00, which is missed, so the run leaves the 4 newest on May 17.
        ("running", t("12:00:11"), t("15:00:00", "2024-05-17")),
        # The lone ok of May 14 (recovery threshold 2 keeps the incident open) blocks the
        # notice until the 4 newest are misses again: Fri May 17 still holds it, so Mon May 20.
        ("okmix", t("12:00:12"), t("15:00:00", "2024-05-20")),
        # Resolved May 10; its second incident (May 11) is 14 days old on Sat May 25.
        ("recovers", t("12:00:30", "2024-05-11"), t("15:00:00", "2024-05-27")),
        # Notified May 15, resolved May 20: the new incident of May 21 gets its own notice.
        ("renotice", t("12:00:30", "2024-05-21"), t("15:00:00", "2024-06-04")),
    ]
    events = doc["events"]
    mutes = []
    for at, e in enumerate(events):
        if e["type"] != "mute_changed":
            continue
        # The sweep day of an automatic mute: the last miss before it was that day's 12:01.
        before = [
            x["ts"]
            for x in events[:at]
            if x["type"] == "mark_missing" and x["monitor_slug"] == e["monitor_slug"]
        ]
        day = before[-1][:10] if e["reason"] == "broken" else None
        mutes.append((e["monitor_slug"], e["muted"], e["reason"], day))
    assert mutes == [
        ("flip", True, "user", None),
        # 14 days after the notice (inclusive) the env is muted; the user unmutes it the
        # same day and it is never muted again (env_muted_timestamp is set).
        ("unmuted", True, "broken", "2024-05-29"),
        ("unmuted", False, "user", None),
        # Muted by the user over the May 29 sweep, unmuted May 30: muted at that sweep.
        ("flip", False, "user", None),
        ("flip", True, "broken", "2024-05-30"),
        ("unknown", True, "broken", "2024-05-30"),
        ("running", True, "broken", "2024-05-31"),
        ("okmix", True, "broken", "2024-06-03"),
        ("recovers", True, "broken", "2024-06-10"),
        ("renotice", True, "broken", "2024-06-18"),
    ]
    assert [(e["monitor_slug"], e["ts"]) for e in of(doc, "mark_unknown")] == [
        ("unknown", t("11:30:00", "2024-05-13"))
    ]
    occurrences = {
        slug: [e["detection_time"] for e in of(doc, "issue_occurrence", slug)]
        for slug in ("disabled", "running", "okmix", "recovers", "unmuted", "flip", "unknown")
    }
    assert occurrences == {
        # Disabled on May 10: no more misses, and never a candidate.
        "disabled": [t("12:00:10"), *_noons(_may(2), _may(9))],
        "running": [t("12:00:11"), *_noons(_may(2), _may(31))],
        "okmix": [
            t("12:00:12"),
            *_noons(_may(2), _may(13)),
            *_noons(_may(15), _june(3)),
        ],
        "recovers": [
            t("12:00:13"),
            *_noons(_may(2), _may(9)),
            t("12:00:30", "2024-05-11"),
            *_noons(_may(12), _june(10)),
        ],
        # Unmuted at 16:00 on the day of its automatic mute: every miss speaks.
        "unmuted": [t("12:00:14"), *_noons(_may(2), _june(19))],
        # User-muted over May 28 and 29.
        "flip": [t("12:00:15"), *_noons(_may(2), _may(27)), f"{_may(30)}T12:00:00Z"],
        # The UNKNOWN run is no failure: no occurrence for it (§4.6).
        "unknown": [t("12:00:16"), *_noons(_may(2), _may(30))],
    }
    assert [(r["monitor_slug"], r["muted"]) for r in doc["environments"]] == [
        ("disabled", False),
        ("flip", True),
        ("okmix", True),
        ("recovers", True),
        ("renotice", True),
        ("running", True),
        ("unknown", True),
        ("unmuted", False),
    ]
    assert [(e["incident_id"], e["update_date"]) for e in of(doc, "issue_resolved")] == [
        (r["id"], r["resolved_at"]) for r in doc["incidents"] if r["resolved_at"] is not None
    ]
    assert [e["update_date"] for e in of(doc, "issue_resolved")] == [
        t("12:00:30", "2024-05-10"),
        t("12:00:30", "2024-05-20"),
    ]
