"""Bytes <-> events: the log's wire form, the out stream's and the stored state's.

Log entries are msgpack. A check-in (nearly every entry) is a compact array
`[1, project, slug, check_in_id, status, environment, duration, received_ms,
monitor_config, trace_id]` with trailing nulls dropped: a valid GUID travels as 16
bytes and a valid status as a small int, so a typical check-in is well under 100 bytes.
Every other event is the tagged msgspec map. Kind 1 is check-in schema v1; a v2 gets a
new kind and an upcaster."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from monitor_es.domain.events import CheckInReported, DerivedEvent, InboundEvent
from monitor_es.domain.partition import ClockState
from monitor_es.domain.payload import normalise_guid
from monitor_es.domain.reducer import LogEntry
from monitor_es.domain.state import Environment, Monitor
from monitor_es.domain.time import from_ms, to_ms

CHECK_IN_V1: Final = 1
_STATUS_CODES: Final = {"ok": 0, "error": 1, "in_progress": 2}
_STATUS_NAMES: Final = {code: name for name, code in _STATUS_CODES.items()}

_encoder = msgspec.msgpack.Encoder()
_raw_decoder = msgspec.msgpack.Decoder()
_derived_decoder = msgspec.msgpack.Decoder(DerivedEvent)
_env_decoder = msgspec.msgpack.Decoder(Environment)
_monitor_decoder = msgspec.msgpack.Decoder(Monitor)
_clock_decoder = msgspec.msgpack.Decoder(ClockState)


class UndecodableEntry(ValueError):
    """A log entry that is not a readable event (it goes to the dead-letter stream)."""


# ---------------------------------------------------------------- log entries


def encode_event(event: InboundEvent) -> bytes:
    """The wire form of an inbound event (its broker time will be its entry id)."""
    if isinstance(event, CheckInReported):
        return _encoder.encode(_check_in_array(event))
    return _encoder.encode(event)


def _check_in_array(event: CheckInReported) -> list[Any]:
    guid = event.check_in_id
    canonical = normalise_guid(guid)
    if canonical is not None:
        # A value that is no GUID travels as sent; the reducer rejects it with a typed error.
        guid = bytes.fromhex(canonical.replace("-", ""))
    status = event.status
    if isinstance(status, str) and status in _STATUS_CODES:
        status = _STATUS_CODES[status]
    received = None if event.received is None else to_ms(event.received)
    row = [
        CHECK_IN_V1,
        event.project,
        event.monitor_slug,
        guid,
        status,
        event.environment,
        event.duration,
        received,
        event.monitor_config,
        event.trace_id,
    ]
    while row[-1] is None:
        row.pop()
    return row


def decode_entry(entry_id: str, payload: bytes) -> LogEntry:
    """A log entry from its stream id (broker time) and payload; raises UndecodableEntry."""
    ts = from_ms(int(entry_id.split("-", 1)[0]))
    try:
        raw = _raw_decoder.decode(payload)
        if isinstance(raw, list):
            event: InboundEvent = _check_in_from_array(raw)
        else:
            event = msgspec.convert(raw, InboundEvent)
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError, ValueError) as exc:
        raise UndecodableEntry(f"undecodable entry {entry_id}: {exc}") from None
    return LogEntry(entry_id, ts, event)


def _check_in_from_array(row: list[Any]) -> CheckInReported:
    if not row or row[0] != CHECK_IN_V1 or len(row) < 5:
        raise ValueError("unknown entry kind or short check-in")
    row = row + [None] * (10 - len(row))
    _, project, slug, guid, status, environment, duration, received, config, trace = row[:10]
    if not isinstance(project, str) or not isinstance(slug, str):
        raise ValueError("project and monitor_slug must be strings")
    if isinstance(guid, bytes) and len(guid) == 16:
        h = guid.hex()  # the canonical dashed form, without building a uuid.UUID
        guid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    if isinstance(status, int) and not isinstance(status, bool):
        status = _STATUS_NAMES.get(status, status)
    return CheckInReported(
        project=project,
        monitor_slug=slug,
        check_in_id=guid,
        status=status,
        environment=environment,
        duration=duration,
        monitor_config=config,
        received=None if received is None else from_ms(received),
        trace_id=trace,
    )


# ---------------------------------------------------------------- derived events


def encode_derived(event: DerivedEvent) -> bytes:
    """The out stream's form of a derived event."""
    return _encoder.encode(event)


def decode_derived(payload: bytes) -> DerivedEvent:
    """A derived event from the out stream."""
    event: DerivedEvent = _derived_decoder.decode(payload)
    return event


# ---------------------------------------------------------------- stored state

CLOCK_FIELD: Final = b"clock"


def monitor_field(project: str, slug: str) -> bytes:
    """The state-hash field of a monitor (msgpack, so any project name is unambiguous)."""
    return b"m" + _encoder.encode((project, slug))


def environment_field(project: str, slug: str, name: str) -> bytes:
    """The state-hash field of an environment."""
    return b"e" + _encoder.encode((project, slug, name))


def encode_record(record: Monitor | Environment | ClockState) -> bytes:
    """A stored state record."""
    return _encoder.encode(record)


def decode_state_field(field: bytes, blob: bytes) -> Monitor | Environment | ClockState:
    """A stored record by its field's kind."""
    if field == CLOCK_FIELD:
        return _clock_decoder.decode(blob)
    if field[:1] == b"m":
        return _monitor_decoder.decode(blob)
    if field[:1] == b"e":
        return _env_decoder.decode(blob)
    raise ValueError(f"unknown state field {field!r}")
