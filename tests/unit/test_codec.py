"""The codec round-trips every event and every stored record, and never crashes on bytes.

Log entries lose nothing but what the wire deliberately normalises: a valid GUID travels
as 16 bytes and comes back in canonical dashed lower case; instants are milliseconds.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from log_strategies import SETTINGS, fold_batch, logs

from monitor_es.codec import (
    UndecodableEntry,
    decode_entry,
    decode_out_entry,
    decode_state_field,
    encode_event,
    encode_out_entry,
    encode_record,
    environment_field,
    monitor_field,
)
from monitor_es.domain.events import (
    CheckInReported,
    ClockDecided,
    ClockPulsed,
    InboundEvent,
    MonitorConfigured,
    MonitorDeleted,
    MonitorDisabled,
    MonitorMuted,
)
from monitor_es.domain.payload import normalise_guid
from monitor_es.domain.reducer import LogEntry
from monitor_es.domain.time import from_ms, to_ms

EPOCH_2024 = 1_704_067_200_000
instants = st.integers(EPOCH_2024, EPOCH_2024 + 10**10).map(from_ms)  # millisecond precision
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(-1e9, 1e9), st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
guids = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: u.hex.upper()),
    st.text(max_size=40),
    json_scalars,
)
check_ins = st.builds(
    CheckInReported,
    project=st.text(max_size=12),
    monitor_slug=st.text(max_size=20),
    check_in_id=guids,
    status=st.one_of(st.sampled_from(["ok", "error", "in_progress", "done"]), json_scalars),
    environment=st.one_of(st.none(), st.text(max_size=10), json_scalars),
    duration=st.one_of(st.none(), st.floats(-10, 1e6), json_scalars),
    monitor_config=st.one_of(st.none(), st.dictionaries(st.text(max_size=8), json_values)),
    received=st.one_of(st.none(), instants),
    trace_id=st.one_of(st.none(), guids),
)
others = st.one_of(
    st.builds(MonitorConfigured, project=st.text(), monitor_slug=st.text(), config=json_values),
    st.builds(
        MonitorMuted,
        project=st.text(),
        monitor_slug=st.text(),
        muted=st.booleans(),
        environment=st.one_of(st.none(), st.text()),
    ),
    st.builds(MonitorDisabled, project=st.text(), monitor_slug=st.text(), disabled=st.booleans()),
    st.builds(MonitorDeleted, project=st.text(), monitor_slug=st.text()),
    st.just(ClockPulsed()),
    st.builds(
        ClockDecided,
        minute=instants,
        decision=st.sampled_from(["normal", "abnormal", "incident", "recovering"]),
    ),
)


def _as_sent(event: InboundEvent) -> InboundEvent:
    """What the reducer must see after the wire: GUIDs in canonical form."""
    if isinstance(event, CheckInReported):
        canonical = normalise_guid(event.check_in_id)
        if canonical is not None:
            return CheckInReported(**{**_fields(event), "check_in_id": canonical})
    return event


def _fields(event: CheckInReported) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__struct_fields__}


@settings(max_examples=300, deadline=None)
@given(st.one_of(check_ins, others), instants)
def test_every_inbound_event_round_trips_through_the_log(event: InboundEvent, ts: datetime) -> None:
    entry_id = f"{to_ms(ts)}-7"

    decoded = decode_entry(entry_id, encode_event(event))

    assert decoded == LogEntry(entry_id, ts, _as_sent(event))


@given(st.binary(max_size=60))
def test_arbitrary_bytes_decode_or_fail_with_undecodable_entry_only(payload: bytes) -> None:
    with contextlib.suppress(UndecodableEntry):
        decode_entry("1714565430000-0", payload)


def test_a_typical_check_in_is_compact_on_the_wire() -> None:
    event = CheckInReported(
        project="acme",
        monitor_slug="nightly-backup",
        environment="production",
        check_in_id="a0000000-0000-4000-8000-000000000001",
        status="ok",
        duration=12.5,
        received=datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC),
    )
    assert len(encode_event(event)) <= 80


@SETTINGS
@given(logs())
def test_derived_events_and_stored_records_round_trip(entries: list[LogEntry]) -> None:
    partition, events = fold_batch(entries)

    assert decode_out_entry(encode_out_entry(events)) == events
    for monitor in partition.monitors.values():
        field = monitor_field(monitor.project, monitor.slug)
        assert decode_state_field(field, encode_record(monitor)) == monitor
    for env in partition.all_environments():
        assert decode_state_field(environment_field(*env.key), encode_record(env)) == env


def test_wire_instants_keep_milliseconds() -> None:
    received = datetime(2024, 5, 1, 12, 0, 30, 123000, tzinfo=UTC)
    event = CheckInReported(
        project="p", monitor_slug="s", check_in_id="x", status="ok", received=received
    )
    decoded = decode_entry("1714565430200-0", encode_event(event)).event
    assert isinstance(decoded, CheckInReported)
    assert decoded.received == received
    assert to_ms(decoded.received) % 1000 == 123
