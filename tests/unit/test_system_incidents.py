"""System-incident decisions (spec §6.1): volume metric, classes and rules A–F with backfill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor_es.domain.system_incidents import (
    BACKFILL_CUTOFF,
    Decision,
    DecisionLog,
    DecisionResult,
    MetricClass,
    Thresholds,
    Transition,
    classify,
    decide,
    history_minutes,
    pct_deviation,
    pruned_minutes,
    volume_stats,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
NORM, ABN, INC = MetricClass.NORMAL, MetricClass.ABNORMAL, MetricClass.INCIDENT
_CODES = {"N": NORM, "A": ABN, "I": INC}


def minute(k: int) -> datetime:
    return T0 + MINUTE * k


def drive(
    codes: str, log: DecisionLog | None = None, thresholds: Thresholds | None = None
) -> tuple[list[DecisionResult], DecisionLog]:
    """Metric ``codes[k]`` belongs to minute k; tick k+1 is decided right after it."""
    metrics = {minute(k): _CODES[code] for k, code in enumerate(codes)}
    log = DecisionLog() if log is None else log
    results = [
        log.advance(minute(k + 1), lambda m: metrics.get(m, NORM), thresholds or Thresholds())
        for k in range(len(codes))
    ]
    return results, log


def stored(decisions: dict[datetime, Decision]) -> DecisionLog:
    return DecisionLog(dict(decisions))


# --- Volume metric (step 1) -------------------------------------------------------------


def test_missing_volume_gives_no_metric() -> None:
    assert pct_deviation(None, [100, 100, 100]) is None


def test_zero_volume_counts_as_a_missing_counter_and_gives_no_metric() -> None:
    assert pct_deviation(0, [100, 100, 100]) is None


@pytest.mark.parametrize("history", [[], [100], [100, None], [None, 0, 100]])
def test_fewer_than_two_historic_values_give_no_metric(history: list[int | None]) -> None:
    assert pct_deviation(50, history) is None


def test_pct_deviation_is_relative_to_the_historic_mean() -> None:
    assert pct_deviation(70, [90, 110, 100]) == pytest.approx(-30.0)
    assert pct_deviation(150, [90, 110]) == pytest.approx(50.0)


def test_missing_historic_days_are_skipped_rather_than_counted_as_zero() -> None:
    history: list[int | None] = [None] * 28 + [90, 110]

    assert pct_deviation(80, history) == pytest.approx(-20.0)
    stats = volume_stats(80, history)
    assert stats is not None
    assert stats.history_count == 2


def test_zero_stdev_still_gives_a_pct_deviation_and_a_zero_z_score() -> None:
    stats = volume_stats(70, [100, 100, 100])

    assert stats is not None
    assert stats.stdev == 0.0
    assert stats.z_score == 0.0
    assert stats.pct_deviation == pytest.approx(-30.0)


def test_z_score_counts_sample_standard_deviations_from_the_mean() -> None:
    stats = volume_stats(60, [80, 120])

    assert stats is not None
    assert stats.mean == pytest.approx(100.0)
    assert stats.stdev == pytest.approx(28.2842712)
    assert stats.z_score == pytest.approx(-40 / 28.2842712)


# --- Metric class (step 2) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("pct", "expected"),
    [
        (None, NORM),
        (250.0, NORM),  # only drops count
        (0.0, NORM),
        (-9.99, NORM),
        (-10.0, ABN),  # thresholds are inclusive
        (-29.99, ABN),
        (-30.0, INC),
        (-100.0, INC),
    ],
)
def test_metric_class_follows_the_default_thresholds(
    pct: float | None, expected: MetricClass
) -> None:
    assert classify(pct) is expected


def test_metric_class_follows_configured_thresholds() -> None:
    thresholds = Thresholds(anomaly_pct=-5, incident_pct=-25)

    assert classify(-5.0, thresholds) is ABN
    assert classify(-25.0, thresholds) is INC
    assert classify(-4.0, thresholds) is NORM


# --- Minutes read and pruned ------------------------------------------------------------


def test_history_is_the_same_minute_on_each_of_the_previous_thirty_days() -> None:
    past = minute(7)

    days = history_minutes(past)

    assert len(days) == 30
    assert days[0] == past - timedelta(days=1)
    assert days[-1] == past - timedelta(days=30)
    assert all(day.time() == past.time() for day in days)


def test_history_length_follows_the_configured_days() -> None:
    assert history_minutes(minute(0), 3) == [minute(0) - timedelta(days=d) for d in (1, 2, 3)]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (5, 8, [4, 5, 6]),
        (5, 6, [4]),
        (5, 5, []),
        (5, 3, []),
    ],
)
def test_pruned_volume_minutes_are_shifted_one_minute_before_the_decisions(
    start: int, end: int, expected: list[int]
) -> None:
    assert pruned_minutes(minute(start), minute(end)) == [minute(k) for k in expected]


# --- Decisions (step 3): end to end from volumes -----------------------------------------


def test_forty_percent_drop_after_abnormal_minutes_starts_incident_at_first_abnormal_tick() -> None:
    # Given 30 days of ~100 check-ins a minute, then three minutes at -15% and one at -40%.
    volumes: dict[datetime, int] = {}
    for k in range(-3, 4):
        for day, past_day in enumerate(history_minutes(minute(k))):
            volumes[past_day] = 95 if day % 2 else 105
    today = {-3: 100, -2: 100, -1: 100, 0: 85, 1: 85, 2: 85, 3: 60}
    volumes.update({minute(k): v for k, v in today.items()})

    def metric_class(m: datetime) -> MetricClass:
        history = [volumes.get(day) for day in history_minutes(m)]
        return classify(pct_deviation(volumes.get(m), history))

    # When the clock ticks through those minutes
    log = DecisionLog()
    results = [log.advance(minute(k + 1), metric_class) for k in range(-3, 4)]

    # Then the abnormality starts at the first drop and becomes an incident dated from it.
    assert [r.transition for r in results] == [
        None,
        None,
        None,
        Transition.ABNORMALITY_STARTED,
        None,
        None,
        Transition.INCIDENT_STARTED,
    ]
    started = results[-1]
    assert started.decision is Decision.INCIDENT
    assert started.ts == minute(1)
    assert started.backfill == (
        (minute(3), Decision.INCIDENT),
        (minute(2), Decision.INCIDENT),
        (minute(1), Decision.INCIDENT),
    )
    assert [log.get(minute(k)) for k in range(-2, 5)] == [Decision.NORMAL] * 3 + [
        Decision.INCIDENT
    ] * 4


# --- Rule A ----------------------------------------------------------------------------


def test_abnormal_metric_after_normal_ticks_starts_an_abnormality() -> None:
    results, _ = drive("NNA")

    assert results[-1] == DecisionResult(
        minute(3), Decision.ABNORMAL, Transition.ABNORMALITY_STARTED, minute(3)
    )


def test_a_missing_last_decision_counts_as_normal() -> None:
    result = decide(minute(1), lambda _: ABN, lambda _: None)

    assert result.decision is Decision.ABNORMAL
    assert result.transition is Transition.ABNORMALITY_STARTED


def test_abnormality_persists_until_the_whole_window_is_normal() -> None:
    results, _ = drive("AANNNN")

    assert [r.decision for r in results] == [Decision.ABNORMAL] * 6
    assert [r.transition for r in results[1:]] == [None] * 5


# --- Rule B ----------------------------------------------------------------------------


def test_whole_normal_window_recovers_the_abnormality_and_rewrites_its_run_to_normal() -> None:
    results, log = drive("NNAANNNNN")

    recovered = results[-1]
    assert recovered.decision is Decision.NORMAL
    assert recovered.transition is Transition.ABNORMALITY_RECOVERED
    assert recovered.ts == minute(9)  # not back-dated
    assert [m for m, _ in recovered.backfill] == [minute(k) for k in range(8, 2, -1)]
    assert {d for _, d in recovered.backfill} == {Decision.NORMAL}
    assert [log.get(minute(k)) for k in range(1, 10)] == [Decision.NORMAL] * 9


def test_window_of_one_recovers_on_the_first_normal_metric() -> None:
    results, _ = drive("AN", thresholds=Thresholds(window=1))

    assert results[-1].transition is Transition.ABNORMALITY_RECOVERED


def test_decision_reads_the_window_of_metrics_ending_one_minute_before_the_tick() -> None:
    seen: list[datetime] = []

    def metric_class(m: datetime) -> MetricClass:
        seen.append(m)
        return NORM

    decide(minute(10), metric_class, lambda _: Decision.ABNORMAL)

    assert seen == [minute(k) for k in (9, 8, 7, 6, 5)]


# --- Rule C ----------------------------------------------------------------------------


def test_normal_metric_during_an_incident_starts_recovering() -> None:
    results, _ = drive("IN")

    assert results[-1] == DecisionResult(
        minute(2), Decision.RECOVERING, Transition.INCIDENT_RECOVERING, minute(2)
    )


def test_incident_persists_while_metrics_are_not_normal() -> None:
    results, _ = drive("IAIA")

    assert [r.decision for r in results] == [Decision.INCIDENT] * 4
    assert [r.transition for r in results] == [Transition.INCIDENT_STARTED, None, None, None]


# --- Rule D ----------------------------------------------------------------------------


def test_whole_normal_window_while_recovering_recovers_at_the_first_recovering_tick() -> None:
    results, log = drive("NINNNNN")

    recovered = results[-1]
    assert [r.decision for r in results] == [
        Decision.NORMAL,
        Decision.INCIDENT,
        Decision.RECOVERING,
        Decision.RECOVERING,
        Decision.RECOVERING,
        Decision.RECOVERING,
        Decision.NORMAL,
    ]
    assert recovered.transition is Transition.INCIDENT_RECOVERED
    assert recovered.ts == minute(3)
    assert recovered.backfill == tuple((minute(k), Decision.NORMAL) for k in (6, 5, 4, 3))
    assert log.get(minute(2)) is Decision.INCIDENT
    assert [log.get(minute(k)) for k in range(3, 8)] == [Decision.NORMAL] * 5


def test_pruning_after_recovery_deletes_exactly_the_minutes_whose_volume_dropped() -> None:
    results, _ = drive("NNIINNNNN")
    started = next(r for r in results if r.transition is Transition.INCIDENT_STARTED)
    recovered = next(r for r in results if r.transition is Transition.INCIDENT_RECOVERED)

    assert pruned_minutes(started.ts, recovered.ts) == [minute(2), minute(3)]


# --- Rule E ----------------------------------------------------------------------------


def test_non_normal_metric_while_recovering_fails_recovery_and_rewrites_run_to_incident() -> None:
    results, log = drive("INNA")

    failed = results[-1]
    assert failed.decision is Decision.INCIDENT
    assert failed.transition is Transition.INCIDENT_RECOVERY_FAILED
    assert failed.ts == minute(4)
    assert failed.backfill == ((minute(3), Decision.INCIDENT), (minute(2), Decision.INCIDENT))
    assert [log.get(minute(k)) for k in range(1, 5)] == [Decision.INCIDENT] * 4


def test_incident_metric_while_recovering_is_a_failed_recovery_not_a_new_incident() -> None:
    results, _ = drive("INI")

    assert results[-1].transition is Transition.INCIDENT_RECOVERY_FAILED


# --- Rule F ----------------------------------------------------------------------------


def test_incident_metric_after_normal_ticks_starts_an_incident_at_that_tick() -> None:
    results, _ = drive("NI")

    assert results[-1] == DecisionResult(
        minute(2), Decision.INCIDENT, Transition.INCIDENT_STARTED, minute(2)
    )


def test_incident_metric_after_an_abnormality_rewrites_its_run_and_dates_the_start_back() -> None:
    results, log = drive("NAAI")

    started = results[-1]
    assert started.transition is Transition.INCIDENT_STARTED
    assert started.ts == minute(2)
    assert started.backfill == ((minute(3), Decision.INCIDENT), (minute(2), Decision.INCIDENT))
    assert not started.runaway
    assert log.get(minute(1)) is Decision.NORMAL


def test_normal_metrics_keep_normal_decisions_without_transitions() -> None:
    results, _ = drive("NNN")

    assert [(r.decision, r.transition, r.backfill) for r in results] == [
        (Decision.NORMAL, None, ())
    ] * 3


# --- Backfill bounds ---------------------------------------------------------------------


def test_backfill_stops_at_a_gap_in_stored_decisions() -> None:
    log = stored({minute(k): Decision.ABNORMAL for k in (6, 8, 9)})

    result = decide(minute(10), lambda _: INC, log.get)

    assert [m for m, _ in result.backfill] == [minute(9), minute(8)]
    assert result.ts == minute(8)


def test_backfill_is_capped_at_one_day_of_ticks() -> None:
    log = stored({minute(-k): Decision.ABNORMAL for k in range(2000)})

    result = decide(minute(1), lambda _: INC, log.get)

    assert len(result.backfill) == BACKFILL_CUTOFF == 1440
    assert result.runaway
    assert result.ts == minute(-1439)


def test_a_run_ending_just_inside_the_cutoff_is_not_a_runaway() -> None:
    log = stored({minute(-k): Decision.ABNORMAL for k in range(BACKFILL_CUTOFF - 1)})

    result = decide(minute(1), lambda _: INC, log.get)

    assert len(result.backfill) == BACKFILL_CUTOFF - 1
    assert not result.runaway


# --- Inputs and the log ------------------------------------------------------------------


@pytest.mark.parametrize(
    "tick",
    [
        datetime(2024, 5, 1, 12, 0),  # naive
        datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC),
        datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=UTC),
    ],
)
def test_decide_rejects_naive_or_untruncated_ticks(tick: datetime) -> None:
    with pytest.raises(ValueError, match="minute must be"):
        decide(tick, lambda _: NORM, lambda _: None)


def test_an_aware_tick_in_another_zone_finds_the_same_stored_decisions() -> None:
    tick = minute(1).astimezone(ZoneInfo("Asia/Kolkata"))  # +05:30 keeps whole minutes
    log = stored({minute(0): Decision.INCIDENT})

    assert decide(tick, lambda _: INC, log.get).decision is Decision.INCIDENT


@pytest.mark.parametrize("kwargs", [{"window": 0}, {"history_days": 0}])
def test_thresholds_reject_empty_windows(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Thresholds(**kwargs)


def test_applying_a_result_stores_its_tick_and_rewrites_its_backfill() -> None:
    log = stored({minute(0): Decision.ABNORMAL})
    result = DecisionResult(
        minute(1),
        Decision.INCIDENT,
        Transition.INCIDENT_STARTED,
        minute(0),
        ((minute(0), Decision.INCIDENT),),
    )

    log.apply(result)

    assert log.decisions == {minute(0): Decision.INCIDENT, minute(1): Decision.INCIDENT}


def test_forgetting_drops_only_decisions_older_than_the_cutoff() -> None:
    log = stored({minute(k): Decision.NORMAL for k in range(5)})

    log.forget_before(minute(3))

    assert sorted(log.decisions) == [minute(3), minute(4)]


def test_only_abnormal_and_recovering_are_pending() -> None:
    assert {d for d in Decision if d.is_pending()} == {Decision.ABNORMAL, Decision.RECOVERING}


# --- Properties --------------------------------------------------------------------------

minutes = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda ts: ts.replace(second=0, microsecond=0))
windows = st.integers(min_value=1, max_value=10)


@given(start=minutes, ticks=st.integers(min_value=1, max_value=200), window=windows)
def test_all_normal_metrics_keep_the_decision_normal_forever(
    start: datetime, ticks: int, window: int
) -> None:
    log = DecisionLog()
    thresholds = Thresholds(window=window)

    for k in range(ticks):
        result = log.advance(start + MINUTE * k, lambda _: NORM, thresholds)
        assert (result.decision, result.transition, result.backfill) == (
            Decision.NORMAL,
            None,
            (),
        )


@given(start=minutes, initial=st.sampled_from(Decision), window=windows)
def test_all_normal_metrics_settle_to_normal_within_two_ticks_from_any_decision(
    start: datetime, initial: Decision, window: int
) -> None:
    log = stored({start: initial})
    thresholds = Thresholds(window=window)

    results = [log.advance(start + MINUTE * k, lambda _: NORM, thresholds) for k in range(1, 8)]

    assert [r.decision for r in results[1:]] == [Decision.NORMAL] * 6
    assert [r.transition for r in results[2:]] == [None] * 5


@given(
    tick=minutes,
    metrics=st.lists(st.sampled_from(MetricClass), max_size=12),
    decisions=st.lists(st.none() | st.sampled_from(Decision), max_size=30),
    window=windows,
)
def test_backfill_is_a_run_strictly_before_the_tick_taking_the_new_decision(
    tick: datetime,
    metrics: list[MetricClass],
    decisions: list[Decision | None],
    window: int,
) -> None:
    past = tick - MINUTE
    by_minute = {past - MINUTE * k: metric for k, metric in enumerate(metrics)}
    log = stored({past - MINUTE * k: d for k, d in enumerate(decisions) if d is not None})

    result = decide(tick, lambda m: by_minute.get(m, NORM), log.get, Thresholds(window=window))

    assert all(m < tick for m, _ in result.backfill)
    assert [m for m, _ in result.backfill] == [
        past - MINUTE * k for k in range(len(result.backfill))
    ]
    assert all(d is result.decision for _, d in result.backfill)
    assert result.ts <= tick


@given(metrics=st.lists(st.sampled_from(MetricClass), min_size=1, max_size=150), window=windows)
def test_pending_decisions_only_survive_as_the_latest_run_and_transitions_mark_changes(
    metrics: list[MetricClass], window: int
) -> None:
    by_minute = {minute(k): metric for k, metric in enumerate(metrics)}
    log = DecisionLog()
    thresholds = Thresholds(window=window)

    for k in range(len(metrics)):
        previous = log.get(minute(k)) or Decision.NORMAL
        result = log.advance(minute(k + 1), lambda m: by_minute.get(m, NORM), thresholds)

        assert (result.transition is None) == (result.decision is previous)
        # ABNORMAL and RECOVERING always resolve by rewriting their whole run, so a pending
        # decision is only ever followed by the same decision.
        for j in range(1, k + 1):
            earlier, later = log.get(minute(j)), log.get(minute(j + 1))
            assert earlier is not None
            assert not earlier.is_pending() or later is earlier
