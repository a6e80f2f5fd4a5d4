"""Black-box audit of the monitor lifecycle (configure, upsert, mute, disable, delete and
re-create), run through `monitor-es simulate FILE --json` on
`tests/scenarios/audit_lifecycle_*.jsonl`.

Every expectation was written from shared/spec/crons-behaviour.md and shared/design/domain.md
before the scenario was first run; a comment says where a first expectation misread them.
Line numbers count the scenario's leading comment line (they are 1-based in the file).
"""

from __future__ import annotations

from typing import Any

from test_blackbox_scenarios import (
    ERROR,
    MISSED,
    Doc,
    Row,
    ci,
    cid,
    contract_events,
    env,
    generated_id,
    incident,
    occurrence,
    opened,
    rejected_types,
)
from test_blackbox_scenarios import (
    simulate as blackbox_simulate,
)

BLANK = {"resolving_check_in_id": None, "resolved_at": None}


def simulate(name: str, *flags: str) -> Doc:
    """The `simulate FILE --json` document of `audit_lifecycle_<name>.jsonl`."""
    return blackbox_simulate(name, *flags, prefix="audit_lifecycle_")


def of_type(doc: Doc, kind: str) -> list[Row]:
    return [
        {k: v for k, v in e.items() if k not in {"id", "type"}}
        for e in doc["events"]
        if e["type"] == kind
    ]


def c(n: int) -> str:
    return cid("c", n)


# 1 ------------------------------------------------------------------------------------


def test_a_run_in_flight_when_disabled_times_out_and_re_enabling_restarts_the_schedule() -> None:
    """§1.3: disabled rejects check-ins (a heartbeat and the close of a running check-in
    too: step 10 of §2.3 comes before the check-in lookup), skips missed detection, but the
    run still times out. domain.md: re-enabling recomputes next_checkin from the enabling
    event's time (10:30:30 → 10:40), so 10:10/10:20/10:30 are never missed."""
    doc = simulate("disabled_run")
    s = "run"
    assert rejected_types(doc) == [(4, ["monitor_disabled"]), (5, ["monitor_disabled"])]
    rows = doc["check_ins"]
    missed = generated_id(rows[1])
    assert rows == [
        # Timed out at the 10:05 tick; the late ok after re-enabling (§8.12 sticky
        # TIMEOUT) only records date_updated and the computed duration (31 min).
        ci(s, c(1), "timeout", "10:00:00", "10:31:00", None, None, 1_860_000),
        ci(s, missed, "missed", "10:40:00", "10:40:00", "10:40:00", None, None),
    ]
    # The timeout while disabled opens nothing (§4.3: disabled → return False); the miss
    # after re-enabling does (threshold 1); no ok check-in ever: "Never".
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, s, missed, "10:40:00")
    assert doc["incidents"] == [inc]
    assert contract_events(doc) == [
        opened(inc),
        occurrence(inc, missed, "10:40:00", MISSED, None, s),
    ]
    # The late close at 10:31 refreshed next (10:40, §2.8 step 9) without moving
    # last_checkin; the miss moved it to 10:50.
    assert doc["environments"] == [
        env(
            s,
            "missed",
            "10:00:00",
            "10:50:00",
            "10:51:00",
            {k: inc[k] for k in ("id", "starting_check_in_id", "started_at")},
        )
    ]
    assert [e["disabled"] for e in of_type(doc, "monitor_disabled_changed")] == [True, False]


# 2 ------------------------------------------------------------------------------------


def test_disable_enable_disable_in_one_minute_and_a_repeated_disable_is_a_no_op() -> None:
    doc = simulate("disable_flip")
    s = "flip"
    # A repeated disable (line 6) changes nothing and is no error; the check-in while
    # disabled is refused.
    assert rejected_types(doc) == [(7, ["monitor_disabled"])]
    assert [e["disabled"] for e in of_type(doc, "monitor_disabled_changed")] == [
        True,
        False,
        True,
        False,
    ]
    rows = doc["check_ins"]
    m1, m2 = generated_id(rows[1]), generated_id(rows[2])
    # Disabled from 10:05:30 to 10:35:40: no miss for 10:10..10:30; enabled at 10:35:40 →
    # next 10:40, missed at 10:41, then 10:50 missed at 10:51.
    assert rows == [
        ci(s, c(1), "ok", "10:00:00", "10:00:00", None, None, None),
        ci(s, m1, "missed", "10:40:00", "10:40:00", "10:40:00", None, None),
        ci(s, m2, "missed", "10:50:00", "10:50:00", "10:50:00", None, None),
    ]
    (i1,) = (r["id"] for r in doc["incidents"])
    inc = incident(i1, s, m1, "10:40:00")
    assert contract_events(doc) == [
        opened(inc),
        occurrence(inc, m1, "10:40:00", MISSED, "10:00:00", s),
        occurrence(inc, m2, "10:50:00", MISSED, "10:00:00", s),
    ]
    assert doc["environments"] == [
        env(
            s,
            "missed",
            "10:00:00",
            "11:00:00",
            "11:01:00",
            {"id": i1, "starting_check_in_id": m1, "started_at": "2024-05-01T10:40:00Z"},
        )
    ]


# 3 ------------------------------------------------------------------------------------


def test_monitor_and_environment_mutes_interleaved_with_new_environments() -> None:
    """domain.md: muting a monitor mutes its current environments and the ones created
    later; muting one environment mutes only it. Muted environments get incidents, not
    occurrences."""
    doc = simulate("mute_mix")
    s = "mm"
    assert rejected_types(doc) == [
        (11, ["monitor_invalid_environment"]),
        (12, ["monitor_not_found"]),
    ]
    # Ambiguous (see the report): after the monitor mute, unmuting qa alone leaves the
    # monitor muted, so `dev` (created later) starts muted. Sentry's older model would have
    # recomputed the monitor flag (`ensure_is_muted`: all environments muted?) to False.
    changes = [(e["environment"], e["muted"]) for e in of_type(doc, "mute_changed")]
    # dev was created muted (no mute_changed for it until the monitor unmute).
    assert changes[:3] == [("production", True), ("qa", True), ("qa", False)]
    # Unmuting the monitor unmutes dev and production (qa already unmuted); then qa muted.
    assert sorted(changes[3:5]) == [("dev", False), ("production", False)]
    assert changes[5:] == [("qa", True)]
    ids = {r["environment"]: r["id"] for r in doc["incidents"]}
    dev = incident(ids["dev"], s, c(3), "10:03:00", environment="dev")
    qa = incident(ids["qa"], s, c(4), "10:04:00", environment="qa")
    stg = incident(ids["stg"], s, c(5), "10:07:00", environment="stg")
    assert doc["incidents"] == [dev, qa, stg]
    assert contract_events(doc) == [
        opened(dev),  # muted at creation: no occurrence
        opened(qa),
        occurrence(qa, c(4), "10:04:00", ERROR, "10:00:10", s),
        opened(stg),  # created after the monitor unmute: not muted
        occurrence(stg, c(5), "10:07:00", ERROR, None, s),
    ]

    def head(inc: Row) -> Row:
        return {k: inc[k] for k in ("id", "starting_check_in_id", "started_at")}

    assert doc["environments"] == [
        env(s, "failed", "10:03:00", "11:00:00", "11:01:00", head(dev), environment="dev"),
        env(s, "ok", "10:00:00", "11:00:00", "11:01:00"),
        env(
            s, "failed", "10:04:00", "11:00:00", "11:01:00", head(qa), environment="qa", muted=True
        ),
        env(s, "failed", "10:07:00", "11:00:00", "11:01:00", head(stg), environment="stg"),
    ]


# 4 ------------------------------------------------------------------------------------


def test_deleting_with_an_open_incident_and_a_run_in_flight_then_re_creating() -> None:
    """README/domain.md: a deleted monitor's check-ins and incidents leave the document
    (its events stay); the running check-in never times out; the slug comes back fresh by
    upsert (name = slug, default max_runtime) and the freed check-in ids can be reused."""
    doc = simulate("delete_recreate")
    s = "gone"
    assert rejected_types(doc) == [(8, ["monitor_not_found"])]
    assert of_type(doc, "mark_timeout") == []
    # The reused id 3 is a brand-new ok check-in (no duration, no expected time: first
    # check-in of the fresh environment); the reused id 2 a new error.
    assert doc["check_ins"] == [
        ci(s, c(3), "ok", "10:32:00", "10:32:00", None, None, None),
        # First expectation said 10:32 (the previous check-in); expected_time is the
        # environment's next_checkin when the check-in arrives (§2.6): 11:00.
        ci(s, c(2), "error", "10:33:00", "10:33:00", "11:00:00", None, None),
    ]
    (i2,) = (r["id"] for r in doc["incidents"])
    new = incident(i2, s, c(2), "10:33:00")
    assert doc["incidents"] == [new]
    first = next(e for e in contract_events(doc) if e["type"] == "incident_opened")
    old = incident(first["incident_id"], s, c(2), "10:02:00")
    # The old incident is deleted with its monitor, not resolved: no incident_resolved.
    assert contract_events(doc) == [
        opened(old),
        occurrence(old, c(2), "10:02:00", ERROR, "10:01:00", "Nightly Gone"),
        opened(new),
        occurrence(new, c(2), "10:33:00", ERROR, "10:32:00", s),
    ]
    # Two different incidents must not share an id (the out stream keys them by id).
    assert old["id"] != new["id"]
    assert doc["environments"] == [
        # First expectation kept 10:32; an error check-in sets last_checkin too (§2.7).
        env(
            s,
            "failed",
            "10:33:00",
            "11:00:00",
            "11:01:00",
            {k: new[k] for k in ("id", "starting_check_in_id", "started_at")},
        )
    ]
    created = of_type(doc, "monitor_created")
    assert [(e["name"], e["config"]["max_runtime"]) for e in created] == [
        ("Nightly Gone", 20),
        (s, None),
    ]


# 5 ------------------------------------------------------------------------------------


def test_api_edits_mid_run_invalid_edits_and_a_partial_upsert_over_an_api_config() -> None:
    doc = simulate("edits")
    s = "ed"
    # §2.10: interval 0, margin -1 and an unknown zone are invalid; an invalid API edit of
    # an existing monitor is refused and changes nothing.
    assert rejected_types(doc) == [
        (5, ["monitor_invalid_config"]),
        (6, ["monitor_invalid_config"]),
        (7, ["monitor_invalid_config"]),
    ]
    rows = doc["check_ins"]
    missed = generated_id(rows[2])
    assert rows == [
        # timeout_at 10:40 (runtime 40); closed at 10:10: 570 s (first expectation
        # miscounted 569.5 s).
        ci(s, c(1), "ok", "10:00:30", "10:10:00", None, None, 570_000),
        # Expected at 10:25: the close at 10:10 set next from the 15-minute interval.
        ci(s, c(2), "ok", "10:11:00", "10:11:00", "10:25:00", None, None),
        # The upsert's "30 * * * *" in New York (kept zone) is 10:30 UTC; margin 5 kept →
        # missed at the 10:35 tick.
        ci(s, missed, "missed", "10:30:00", "10:30:00", "10:30:00", None, None),
    ]
    # failure_issue_threshold 2 kept by the merge: [ok, missed] holds an ok → no incident.
    assert doc["incidents"] == []
    assert contract_events(doc) == []
    assert doc["environments"] == [env(s, "missed", "10:11:00", "11:30:00", "11:35:00")]
    updated = [e["config"] for e in of_type(doc, "monitor_updated")]
    assert len(updated) == 3
    # §8.25 + §2.4: a partial edit keeps the other keys; the upsert overwrote the schedule.
    assert updated[0]["schedule_type"] == "interval"
    assert updated[0]["schedule"] == [15, "minute"]
    assert updated[1]["timezone"] == "America/New_York"
    final: dict[str, Any] = updated[2]
    assert (final["schedule_type"], final["schedule"]) == ("crontab", "30 * * * *")
    assert (final["checkin_margin"], final["max_runtime"], final["failure_issue_threshold"]) == (
        5,
        40,
        2,
    )
    assert final["timezone"] == "America/New_York"


def test_a_crontab_to_interval_edit_mid_run_and_a_zone_only_edit() -> None:
    """§8.25: a schedule change recomputes next/latest from the edit's time (10:07:30 →
    10:07 + 15 min = 10:22, latest + kept margin 5 = 10:27, missed at the 10:27 tick); the
    run started under the crontab keeps its timeout (10:30, runtime unchanged). A zone-only
    edit leaves the deadline (11:00 UTC) alone; the miss then recomputes next in the new
    zone: 11:00 in Kolkata is 05:30 UTC (§4.1 step 4-5)."""
    doc = simulate("schedule_kind")
    assert doc["rejected"] == []
    rows = doc["check_ins"]
    m22, m37, m52, m_tz = (generated_id(rows[n]) for n in (2, 3, 4, 5))
    assert rows == [
        # Timed out at the 10:30 tick (the 11:01 pulse crosses it), between the misses.
        ci("iv", c(1), "timeout", "10:00:30", "10:00:30", None, "10:30:00", None),
        ci("tz", c(2), "ok", "10:00:40", "10:00:40", None, None, None),
        # Interval slots from 10:22 every 15 min, each missed at slot + 5.
        ci("iv", m22, "missed", "10:22:00", "10:22:00", "10:22:00", None, None),
        ci("iv", m37, "missed", "10:37:00", "10:37:00", "10:37:00", None, None),
        ci("iv", m52, "missed", "10:52:00", "10:52:00", "10:52:00", None, None),
        ci("tz", m_tz, "missed", "11:00:00", "11:00:00", "11:00:00", None, None),
    ]
    ids = {r["monitor_slug"]: r["id"] for r in doc["incidents"]}
    iv = incident(ids["iv"], "iv", m22, "10:22:00")
    tz = incident(ids["tz"], "tz", m_tz, "11:00:00")
    assert doc["incidents"] == [iv, tz]

    def head(inc: Row) -> Row:
        return {k: inc[k] for k in ("id", "starting_check_in_id", "started_at")}

    assert doc["environments"] == [
        env("iv", "missed", "10:00:30", "11:07:00", "11:12:00", head(iv)),
        env("tz", "missed", "10:00:40", "2024-05-02T05:30:00Z", "2024-05-02T05:31:00Z", head(tz)),
    ]


# 6 ------------------------------------------------------------------------------------


def test_deleting_frees_the_monitor_and_environment_slots() -> None:
    """§1.3 limits (monitor-es: per project / per monitor); a deleted monitor no longer
    counts, and a re-created one starts with no environments."""
    doc = simulate("limits", "--max-monitors", "1", "--max-environments", "1")
    assert rejected_types(doc) == [
        (3, ["monitor_limit_exceeded"]),
        (6, ["monitor_limit_exceeded"]),
        (7, ["monitor_environment_limit_exceeded"]),
    ]
    assert doc["check_ins"] == [
        ci("b", c(5), "ok", "10:07:00", "10:07:00", None, None, None, environment="qa")
    ]
    assert doc["environments"] == [
        env("b", "ok", "10:07:00", "11:00:00", "11:01:00", environment="qa")
    ]


# 8 ------------------------------------------------------------------------------------


def test_an_upsert_while_disabled_updates_the_config_and_re_creation_drops_the_flags() -> None:
    """§2.3: the upsert (step 6) comes before the disabled check (step 10), so a refused
    check-in still merges its config (margin 3, used when re-enabled at 10:04: next 10:10,
    latest 10:13). The muted monitor's miss opens an incident without an occurrence.
    Deleting and re-creating by upsert gives a monitor that is neither muted nor disabled,
    with only the new config (margin 1). API names: `name` renames, an edit without it and
    an upsert keep it; occurrences carry the current name (§5.2 "Cron failure: <name>")."""
    doc = simulate("disabled_upsert")
    assert rejected_types(doc) == [(5, ["monitor_disabled"])]
    updated = [
        (e["monitor_slug"], e["name"], e["config"]["checkin_margin"])
        for e in of_type(doc, "monitor_updated")
    ]
    assert updated == [("dis", "dis", 3), ("named", "Second", None), ("named", "Second", 2)]
    assert [e["name"] for e in of_type(doc, "monitor_created")] == ["dis", "dis", "First"]
    events = contract_events(doc)
    old_id = events[0]["incident_id"]
    rows = doc["check_ins"]
    # First expectation forgot that the scenario runs past the re-created monitor's
    # 10:21 deadline: the 10:21 tick (run before the 10:21 entry) misses 10:20.
    m20 = generated_id(rows[4])
    assert rows == [
        ci("dis", c(1), "ok", "10:15:00", "10:15:00", None, None, None),
        ci("dis", c(3), "error", "10:16:00", "10:16:00", "10:20:00", None, None),
        ci("named", c(4), "error", "10:18:00", "10:18:00", None, None, None),
        ci("named", c(5), "error", "10:20:00", "10:20:00", "11:00:00", None, None),
        ci("dis", m20, "missed", "10:20:00", "10:20:00", "10:20:00", None, None),
        ci("named", c(6), "error", "10:22:00", "10:22:00", "11:00:00", None, None),
    ]
    ids = {r["monitor_slug"]: r["id"] for r in doc["incidents"]}
    dis = incident(ids["dis"], "dis", c(3), "10:16:00")
    named = incident(ids["named"], "named", c(4), "10:18:00")
    assert doc["incidents"] == [dis, named]
    assert old_id != dis["id"]
    assert events[0]["started_at"] == "2024-05-01T10:10:00Z"  # the miss at the 10:13 tick
    assert events[1:] == [
        opened(dis),
        occurrence(dis, c(3), "10:16:00", ERROR, "10:15:00", "dis"),
        opened(named),
        occurrence(named, c(4), "10:18:00", ERROR, None, "First"),
        occurrence(named, c(5), "10:20:00", ERROR, None, "Second"),
        occurrence(dis, m20, "10:20:00", MISSED, "10:15:00", "dis"),
        occurrence(named, c(6), "10:22:00", ERROR, None, "Second"),
    ]

    def head(inc: Row) -> Row:
        return {k: inc[k] for k in ("id", "starting_check_in_id", "started_at")}

    assert doc["environments"] == [
        env("dis", "missed", "10:16:00", "10:30:00", "10:31:00", head(dis)),
        env("named", "failed", "10:22:00", "11:00:00", "11:02:00", head(named)),
    ]


# 9 ------------------------------------------------------------------------------------


def test_api_names_longer_than_128_characters_are_refused() -> None:
    """Spec §1.3: `name` ≤ 128. Sentry's API validator refuses a longer one (monitor-es
    reports it as `monitor_invalid_config` with a `name` field error, together with the
    config's own field errors); a refused edit changes nothing (no margin 3 at line 4)."""
    doc = simulate("names")
    too_long = ["Ensure this field has no more than 128 characters."]
    assert [(r["line"], r["errors"]) for r in doc["rejected"]] == [
        (2, [{"type": "monitor_invalid_config", "errors": {"name": too_long}}]),
        (4, [{"type": "monitor_invalid_config", "errors": {"name": too_long}}]),
        (
            5,
            [
                {
                    "type": "monitor_invalid_config",
                    "errors": {
                        "checkin_margin": ["Ensure this value is greater than or equal to 1."],
                        "name": too_long,
                    },
                }
            ],
        ),
    ]
    assert [e["name"] for e in of_type(doc, "monitor_created")] == ["n" * 128]
    # A blank name keeps the current one (domain.md: the name defaults to the slug on create).
    assert [
        (e["name"], e["config"]["checkin_margin"]) for e in of_type(doc, "monitor_updated")
    ] == [("n" * 128, 3)]
