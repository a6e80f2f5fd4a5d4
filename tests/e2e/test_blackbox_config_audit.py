"""Black-box audit of monitor configuration: validation (spec §2.10, §1.2, §1.3), the
check-in upsert and its merge (§2.4, §2.3), API configuration events (`monitor_configured`,
§8.25) and slugs (§2.1), run through `monitor-es simulate FILE --json` on
`tests/scenarios/audit_config_*.jsonl`.

Every expectation was written from shared/spec/crons-behaviour.md and shared/design/domain.md
before the scenario was first run; a comment says where a first expectation misread them.
Line numbers count the scenario's leading comment line (they are 1-based in the file).

Ambiguities, where the spec leaves a choice and the current behaviour is kept:

* A config field error hides what is wrong with the schedule (`@reboot` with a negative
  margin reports only the margin): the spec lists the messages, not how they combine; it
  is what Django REST framework does (the schedule is judged in `validate`, after the fields).
* The upsert clamp (§2.4 [newest]) applies to JSON numbers; a numeric string above 40320
  ("50000") is coerced later and refused. The spec does not say which form it clamps.
* `alert_rule_id` is validated as an integer and merged like the other keys; Sentry's
  ConfigValidator has no such field (it is set through the alert-rule API), the spec's
  schema (§1.3) lists it as an optional nullable int.
* A blank `monitor_slug` on `monitor_configured` is an invalid event, although §1.3 says
  Sentry derives a blank slug from the name (de-duplicated with a random suffix): the log is
  partitioned by the sent slug, and a random suffix would break replay; see the report.
* An interval count `true` is refused ("Invalid schedule for schedule unit count"): §2.10
  says "n int > 0" and a JSON boolean is not an integer (Python's `isinstance(True, int)`
  would let Sentry store `[true, "minute"]`).
* A null `timezone` means UTC (§1.3's schema says nullable; Sentry's ChoiceField refuses
  null); an empty crontab `""` is "Schedule is invalid" (Sentry skips judging a falsy
  schedule and stores it); a blank `name` on create means the slug (domain.md; Sentry's
  API requires a name). The spec says nothing of these three.
* A crontab listing an nth weekday with plain days (`0 9 * * 1#1,2`) is refused although
  CronSim accepts it: croniter, which computes our slots, cannot (see the report).
"""

from __future__ import annotations

from typing import Any

from test_blackbox_scenarios import (
    Doc,
    Row,
    ci,
    cid,
    env,
    events_of,
    generated_id,
    rejected_types,
)
from test_blackbox_scenarios import (
    simulate as blackbox_simulate,
)

P = "acme"
NOT_FOUND = {"type": "monitor_not_found"}
INVALID_INT = "A valid integer is required."


def simulate(name: str, *flags: str) -> Doc:
    """The `simulate FILE --json` document of `audit_config_<name>.jsonl`."""
    return blackbox_simulate(name, *flags, prefix="audit_config_")


def ge(limit: int) -> str:
    return f"Ensure this value is greater than or equal to {limit}."


def le(limit: int) -> str:
    return f"Ensure this value is less than or equal to {limit}."


def cfg(
    schedule_type: str,
    schedule: str | list[Any],
    *,
    margin: int | None = None,
    runtime: int | None = None,
    timezone: str | None = None,
    failure: int | None = None,
    recovery: int | None = None,
) -> Row:
    """A config's JSON form as monitor_created/monitor_updated carry it (every key, nulls kept)."""
    return {
        "schedule_type": schedule_type,
        "schedule": schedule,
        "checkin_margin": margin,
        "max_runtime": runtime,
        "timezone": timezone,
        "failure_issue_threshold": failure,
        "recovery_threshold": recovery,
        "alert_rule_id": None,
    }


def configs(doc: Doc, kind: str) -> list[tuple[str, str, Row]]:
    """(slug, name, config) of every monitor_created or monitor_updated event, in order."""
    return [(e["monitor_slug"], e["name"], e["config"]) for e in events_of(doc, kind)]


# 1 ------------------------------------------------------------------------------------

LONG = "a" * 30 + "-" + "b" * 19  # "A"*30 + " " + "b"*25 slugified, cut to 50
XS = "x" * 49  # "x"*49 + "-yz" cut to 50 leaves a trailing "-", which is stripped
WEIRD = "someslugwith-weirdstuff"  # spec §2.1's own example
YS = "y" * 49 + "_"  # "y"*49 + "_tail" cut to 50 ends in "_", which §2.1 keeps


def test_every_accepted_upsert_form_creates_its_monitor_with_the_normalised_config() -> None:
    """§2.10 forms, §1.3 defaults, §2.4 clamp, §2.1 slugs; name = slug on upsert (§1.3)."""
    doc = simulate("upsert_forms")

    assert doc["rejected"] == []
    cron, interval = "crontab", "interval"
    assert configs(doc, "monitor_created") == [
        (s, s, c)
        for s, c in [
            # @daily is stored expanded (§2.10 alias table).
            ("nightly-backup", cfg(cron, "0 0 * * *")),
            # The object form needs no schedule_type.
            ("obj-cron", cfg(cron, "13 * * * *")),
            ("obj-interval", cfg(interval, [5, "day"])),
            # schedule_type 2 (domain.md), a numeric string margin is an integer.
            ("int-type", cfg(interval, [30, "minute"], margin=5)),
            # margin 0 is accepted and stored as 1 (GH-56526, §2.10, §8.22).
            ("zero-margin", cfg(cron, "*/10 * * * *", margin=1)),
            # Upsert clamps runtime and margin above 40320 instead of refusing (§2.4).
            ("huge", cfg(cron, "0 * * * *", margin=40_320, runtime=40_320)),
            # A legacy tz-database name is a known name.
            ("arizona", cfg(cron, "0 0 * * *", timezone="US/Arizona")),
            # Whitespace collapsed, "" time zone dropped, 15.0 → 15, "3" → 3, owner and
            # unknown keys ignored.
            ("spaces", cfg(cron, "*/5 * * * *", margin=15, failure=3)),
            # The object's own type wins over schedule_type.
            ("obj-wins", cfg(interval, [2, "hour"])),
            ("weekly", cfg(cron, "0 0 * * 0")),
            ("yearly", cfg(cron, "0 0 1 1 *")),
            ("monthly", cfg(cron, "0 0 1 * *")),
            (LONG, cfg(interval, [1, "hour"])),
            (XS, cfg(cron, "0 * * * *")),
            (WEIRD, cfg(cron, "0 * * * *")),
            ("tz-null", cfg(cron, "30 * * * *")),
            ("week-int", cfg(interval, [1, "week"])),
            ("month-int", cfg(interval, [1, "month"])),
            ("year-int", cfg(interval, [1, "year"])),
            # The bounds themselves are valid.
            ("bounds", cfg(cron, "0 * * * *", margin=40_320, runtime=1, failure=720, recovery=720)),
            # Only "-" is stripped after the cut: a trailing "_" stays (§2.1).
            (YS, cfg(cron, "0 * * * *")),
        ]
    ]
    # A check-in with the raw (unslugified) slug and no config finds the monitor (§2.1).
    assert events_of(doc, "monitor_updated") == []

    def a(n: int) -> str:
        return cid("a", n)

    rows = {r["check_in_id"]: r for r in doc["check_ins"]}
    # The clamped runtime: the run times out 28 days after its start minute (§2.6).
    assert rows[a(6)] == ci("huge", a(6), "in_progress", "10:00:06", "10:00:06", None,
                            "2024-05-29T10:00:00Z", None)  # fmt: skip
    assert rows[a(15)] == ci("nightly-backup", a(15), "ok", "10:00:15", "10:00:15",
                             "2024-05-02T00:00:00Z", None, None)  # fmt: skip
    # The same raw slug again, without a config, finds the cut slug's monitor.
    assert rows[a(23)] == ci(YS, a(23), "ok", "10:00:23", "10:00:23", "11:00:00", None, None)
    assert len(rows) == 23

    d2, d29 = "2024-05-02T", "2024-05-29T"
    # next_checkin from each check-in's receive time (§4.7), latest = next + margin (§1.3).
    expected = sorted(
        [
            ("nightly-backup", "10:00:15", d2 + "00:00:00Z", d2 + "00:01:00Z"),
            ("obj-cron", "10:00:02", "10:13:00", "10:14:00"),
            ("obj-interval", "10:00:03", "2024-05-06T10:00:00Z", "2024-05-06T10:01:00Z"),
            ("int-type", "10:00:04", "10:30:00", "10:35:00"),
            ("zero-margin", "10:00:05", "10:10:00", "10:11:00"),
            # In progress: the environment stays pending (§8.5) but next moves; the
            # margin is the clamped 40320 minutes.
            ("huge", "10:00:06", "11:00:00", d29 + "11:00:00Z"),
            # Midnight in Arizona (UTC-7, no DST) is 07:00Z (§4.7, C-2).
            ("arizona", "10:00:07", d2 + "07:00:00Z", d2 + "07:01:00Z"),
            ("spaces", "10:00:08", "10:05:00", "10:20:00"),
            ("obj-wins", "10:00:09", "12:00:00", "12:01:00"),
            # 2024-05-01 is a Wednesday; @weekly is Sunday midnight.
            ("weekly", "10:00:10", "2024-05-05T00:00:00Z", "2024-05-05T00:01:00Z"),
            ("yearly", "10:00:11", "2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z"),
            ("monthly", "10:00:12", "2024-06-01T00:00:00Z", "2024-06-01T00:01:00Z"),
            (LONG, "10:00:13", "11:00:00", "11:01:00"),
            (XS, "10:00:14", "11:00:00", "11:01:00"),
            (WEIRD, "10:00:16", "11:00:00", "11:01:00"),
            ("tz-null", "10:00:17", "10:30:00", "10:31:00"),
            ("week-int", "10:00:18", "2024-05-08T10:00:00Z", "2024-05-08T10:01:00Z"),
            ("month-int", "10:00:19", "2024-06-01T10:00:00Z", "2024-06-01T10:01:00Z"),
            ("year-int", "10:00:20", "2025-05-01T10:00:00Z", "2025-05-01T10:01:00Z"),
            ("bounds", "10:00:21", "11:00:00", d29 + "11:00:00Z"),
            (YS, "10:00:23", "11:00:00", "11:01:00"),
        ]
    )
    assert doc["environments"] == [
        env(s, "pending" if s == "huge" else "ok", last, nxt, latest)
        for s, last, nxt, latest in expected
    ]


# 2 ------------------------------------------------------------------------------------

BAD_CONFIGS: list[tuple[str, dict[str, list[str]]]] = [
    ("six", {"schedule": ["Only 5 field crontab syntax is supported"]}),
    ("reboot", {"schedule": ["Schedule was not parseable"]}),
    # Aliases are looked up as sent; "@Daily" is another "@…" (§2.10).
    ("upper-alias", {"schedule": ["Schedule was not parseable"]}),
    ("feb-31", {"schedule": ["Schedule is invalid"]}),
    ("feb-30", {"schedule": ["Schedule is invalid"]}),
    ("minute-61", {"schedule": ["Schedule is invalid"]}),
    ("four", {"schedule": ["Schedule is invalid"]}),
    ("words", {"schedule": ["Schedule is invalid"]}),
    ("zero", {"schedule": ["Interval must be greater than zero"]}),
    ("negative", {"schedule": ["Interval must be greater than zero"]}),
    ("fortnight", {"schedule": ["Invalid schedule for schedule unit name"]}),
    ("count-text", {"schedule": ["Invalid schedule for schedule unit count"]}),
    ("count-float", {"schedule": ["Invalid schedule for schedule unit count"]}),
    ("interval-text", {"schedule": ["Invalid schedule for for 'interval' type"]}),
    ("interval-cron", {"schedule": ["Invalid schedule for for 'interval' type"]}),
    ("cron-list", {"schedule": ["Invalid schedule for 'crontab' type"]}),
    ("no-type", {"schedule_type": ["Missing or invalid schedule type"]}),
    ("bad-type", {"schedule_type": ['"daily" is not a valid choice.']}),
    ("no-schedule", {"schedule": ["This field is required."]}),
    ("null-schedule", {"schedule": ["This field may not be null."]}),
    ("margin-neg", {"checkin_margin": [ge(1)]}),
    ("margin-text", {"checkin_margin": [INVALID_INT]}),
    ("margin-frac", {"checkin_margin": [INVALID_INT]}),
    ("margin-bool", {"checkin_margin": [INVALID_INT]}),
    ("runtime-zero", {"max_runtime": [ge(1)]}),
    # Clamping is for values above the cap; a negative one is still refused.
    ("runtime-neg-huge", {"max_runtime": [ge(1)]}),
    # Thresholds are never clamped (§2.4 clamps runtime and margin only).
    ("fail-721", {"failure_issue_threshold": [le(720)]}),
    ("fail-zero", {"failure_issue_threshold": [ge(1)]}),
    ("rec-zero", {"recovery_threshold": [ge(1)]}),
    ("rec-huge", {"recovery_threshold": [le(720)]}),
    ("tz-mars", {"timezone": ['"Mars/Base" is not a valid choice.']}),
    ("tz-lower", {"timezone": ['"utc" is not a valid choice.']}),
    ("cfg-list", {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}),
    ("cfg-text", {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}),
    # Every field error is reported; the schedule is judged only after (see the header).
    (
        "two-fields",
        {"checkin_margin": [ge(1)], "timezone": ['"Nowhere/Land" is not a valid choice.']},
    ),
]


def test_an_invalid_upsert_refuses_a_new_monitor_with_the_exact_messages() -> None:
    """§2.4: invalid and monitor missing → MONITOR_INVALID_CONFIG then MONITOR_NOT_FOUND."""
    doc = simulate("upsert_invalid")

    bad = [
        {"line": i + 2, "errors": [{"type": "monitor_invalid_config", "errors": e}, NOT_FOUND]}
        for i, (_, e) in enumerate(BAD_CONFIGS)
    ]
    assert doc["rejected"] == bad
    assert {e["monitor_slug"] for e in events_of(doc, "monitor_created")} == {"keep"}


def test_an_invalid_upsert_leaves_an_existing_monitor_as_it_is_and_the_check_in_counts() -> None:
    """§2.4: invalid but monitor exists → the existing monitor, unchanged; a config without
    a schedule is invalid on upsert (ConfigValidator is not partial there)."""
    doc = simulate("upsert_invalid")

    assert configs(doc, "monitor_created") == [
        ("keep", "keep", cfg("crontab", "*/5 * * * *", margin=3))
    ]
    assert events_of(doc, "monitor_updated") == []

    def b(n: int) -> str:
        return cid("b", n)

    assert doc["check_ins"] == [
        ci("keep", b(40), "ok", "10:00:40", "10:00:40", None, None, None),
        ci("keep", b(41), "ok", "10:00:50", "10:00:50", "10:05:00", None, None),
        ci("keep", b(42), "ok", "10:00:55", "10:00:55", "10:05:00", None, None),
        ci("keep", b(43), "ok", "10:00:58", "10:00:58", "10:05:00", None, None),
    ]
    # Still */5 with margin 3: the refused margins 10 and 9 never applied.
    assert doc["environments"] == [env("keep", "ok", "10:00:58", "10:05:00", "10:08:00")]


# 3 ------------------------------------------------------------------------------------


def test_an_upsert_merges_only_the_keys_it_names_and_always_takes_the_schedule() -> None:
    """§1.3 update_config: named keys overwritten (null clears), others kept, schedule and
    schedule_type always from the payload, "" time zone dropped; §2.4: no update when the
    config does not differ; an empty config is no upsert. (A first draft put all seven
    check-ins in one minute; the seventh was rate limited, §2.3 step 2.)"""
    doc = simulate("upsert_merge")
    s = "mg"
    assert doc["rejected"] == []
    berlin = "Europe/Berlin"
    assert configs(doc, "monitor_created") == [
        (s, s, cfg("crontab", "*/5 * * * *", margin=4, runtime=20, timezone=berlin, failure=2,
                   recovery=3)),
    ]  # fmt: skip
    ten = [10, "minute"]
    assert configs(doc, "monitor_updated") == [
        (s, s, cfg("interval", ten, margin=4, runtime=20, timezone=berlin, failure=2, recovery=3)),
        (s, s, cfg("interval", ten, runtime=20, timezone=berlin, failure=2, recovery=3)),
        (s, s, cfg("interval", ten, runtime=40_320, timezone=berlin, failure=2)),
    ]

    def c(n: int) -> str:
        return cid("c", n)

    assert doc["check_ins"] == [
        ci(s, c(1), "ok", "10:00:10", "10:00:10", None, None, None),
        ci(s, c(2), "ok", "10:00:20", "10:00:20", "10:05:00", None, None),
        # The check-in after an upsert is scheduled by the merged config: every 10 minutes
        # from the receive time (§4.7 interval), margin 4 kept → latest 10:14.
        ci(s, c(3), "ok", "10:00:30", "10:00:30", "10:05:00", None, None),
        ci(s, c(4), "ok", "10:00:40", "10:00:40", "10:10:00", None, None),
        # Clamped runtime (40320) for the run started at 10:00:50.
        ci(s, c(5), "in_progress", "10:00:50", "10:00:50", "10:10:00", "2024-05-29T10:00:00Z",
           None),
        ci(s, c(6), "ok", "10:01:05", "10:01:05", "10:10:00", None, None),
        # Interval from the 10:01:05 receive time.
        ci(s, c(7), "ok", "10:01:08", "10:01:08", "10:11:00", None, None),
    ]  # fmt: skip
    # margin null since 10:00:40 → 1 minute.
    assert doc["environments"] == [env(s, "ok", "10:01:08", "10:11:00", "10:12:00")]


# 4 ------------------------------------------------------------------------------------


def test_api_edits_recompute_what_they_change_and_refused_edits_change_nothing() -> None:
    """§8.25 and domain.md `monitor_configured`: a partial edit keeps the rest; a new margin
    moves every latest to next + margin; a new runtime re-times running check-ins from their
    start minute; a new schedule recomputes next/latest from the edit's time; an equal
    schedule (an alias of the stored one) and a time-zone change recompute nothing; the API
    refuses (never clamps) values above the cap; names are at most 128 characters."""
    doc = simulate("api_edits")
    s = "api"

    def d(n: int) -> str:
        return cid("d", n)

    assert doc["rejected"] == [
        {"line": 7, "errors": [{"type": "monitor_invalid_config",
                                "errors": {"checkin_margin": [le(40_320)]}}]},
        {"line": 10, "errors": [{"type": "monitor_invalid_config", "errors": {
            "name": ["Ensure this field has no more than 128 characters."]}}]},
        {"line": 11, "errors": [{"type": "monitor_invalid_config", "errors": {
            "timezone": ['"Nowhere/Land" is not a valid choice.'],
            "failure_issue_threshold": [ge(1)]}}]},
        # A new monitor needs its schedule; the schedule's type is then required.
        {"line": 12, "errors": [{"type": "monitor_invalid_config",
                                 "errors": {"schedule": ["This field is required."]}}]},
        {"line": 13, "errors": [{"type": "monitor_invalid_config", "errors": {
            "schedule_type": ["Missing or invalid schedule type"]}}]},
    ]  # fmt: skip
    assert configs(doc, "monitor_created") == [
        (s, "Nightly ETL", cfg("crontab", "0 * * * *", runtime=45)),
        # A slug is slugified; with no name the name is the slug.
        ("fresh-job", "fresh-job", cfg("interval", [1, "hour"])),
        # 128 characters is the longest name.
        ("named", "n" * 128, cfg("crontab", "0 * * * *")),
    ]
    kolkata = "Asia/Kolkata"
    assert configs(doc, "monitor_updated") == [
        (s, "Nightly ETL", cfg("crontab", "0 * * * *", margin=10, runtime=45)),
        (s, "Nightly ETL", cfg("crontab", "0 * * * *", margin=10, runtime=90)),
        (s, "Nightly ETL", cfg("crontab", "0 * * * *", margin=10, runtime=90, timezone=kolkata)),
        (s, "Nightly ETL", cfg("interval", [20, "minute"], margin=10, runtime=90,
                               timezone=kolkata)),
    ]  # fmt: skip
    assert doc["check_ins"] == [
        # Closed at 10:10: 9.5 minutes (§2.8 step 4).
        ci(s, d(1), "ok", "10:00:30", "10:10:00", None, None, 570_000),
        ci(s, d(2), "ok", "10:00:40", "10:00:40", None, None, None, environment="staging"),
    ]
    # The runtime edit re-timed the running check-in: 10:00 + 90 = 11:30.
    timeouts = [
        (e["check_in_id"], e["timeout_at"])
        for e in events_of(doc, "check_in_updated")
        if e["check_in_id"] == d(1)
    ]
    assert timeouts[0] == (d(1), "2024-05-01T11:30:00Z")
    # Schedule edit at 10:05 → next 10:25, latest 10:35 (margin 10) for staging; production
    # then closed at 10:10 → next 10:30, latest 10:40. last_checkin untouched by the edit.
    # (A first draft expected production's last_checkin at 10:10; §4.4 sets it to the
    # closing row's date_added, 10:00:30.)
    assert doc["environments"] == [
        env(s, "ok", "10:00:30", "10:30:00", "10:40:00"),
        env(s, "ok", "10:00:40", "10:25:00", "10:35:00", environment="staging"),
    ]


def test_api_edits_emit_one_monitor_updated_each_and_refused_ones_only_a_rejection() -> None:
    """Four accepted edits of `api`, three refused (a refused edit changes nothing, §2.4's
    rule for an invalid config applied to the API); the two refusals of `fresh` create
    nothing."""
    doc = simulate("api_edits")
    kinds = [e["type"] for e in doc["events"] if e.get("monitor_slug") == "api"]
    assert kinds.count("monitor_updated") == 4
    assert kinds.count("event_rejected") == 3
    assert [e["type"] for e in doc["events"] if e.get("monitor_slug") == "fresh"] == [
        "event_rejected",
        "event_rejected",
    ]


# 5 ------------------------------------------------------------------------------------


def test_a_schedule_edit_gives_an_environment_without_check_ins_a_schedule() -> None:
    """§8.25: a schedule change recomputes next/latest for every environment and sets
    last_checkin = now where it was null. The staging environment exists (ensure_environment,
    §2.3 step 11, runs before the check-in lookup that rejects the reused guid, §2.5) but has
    never checked in; after the edit it is expected and missed like any other."""
    doc = simulate("api_null_last")
    s = "lc"
    assert rejected_types(doc) == [(3, ["checkin_environment_mismatch"])]
    rows = doc["check_ins"]
    assert len(rows) == 3
    missed = {r["environment"]: generated_id(r) for r in rows[1:]}
    assert rows[1:] == [
        ci(s, missed["production"], "missed", "10:30:00", "10:30:00", "10:30:00", None, None),
        ci(s, missed["staging"], "missed", "10:30:00", "10:30:00", "10:30:00", None, None,
           environment="staging"),
    ]  # fmt: skip
    incidents = {i["environment"]: i for i in doc["incidents"]}

    def inc(environment: str) -> Row:
        i = incidents[environment]
        return {"id": i["id"], "starting_check_in_id": missed[environment],
                "started_at": "2024-05-01T10:30:00Z"}  # fmt: skip

    assert doc["environments"] == [
        env(s, "missed", "10:00:10", "11:00:00", "11:01:00", inc("production")),
        env(s, "missed", "10:01:00", "11:00:00", "11:01:00", inc("staging"),
            environment="staging"),
    ]  # fmt: skip
