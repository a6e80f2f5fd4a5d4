"""Bytes <-> events: the log's wire form, the out stream's and the stored state's.

Log entries are msgpack. A check-in (nearly every entry) is a compact array
`[1, project, slug, check_in_id, status, environment, duration, received_ms,
monitor_config, trace_id]` with trailing nulls dropped: a valid GUID travels as 16 bytes
and a valid status as a small int (any other value boxed in a list), so a typical
check-in is well under 100 bytes. Every other event is the tagged msgspec map. Kind 1 is
check-in schema v1; a v2 gets a new kind and an upcaster.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from monitor_es.domain.events import CheckInReported, ClockDecided, DerivedEvent, InboundEvent
from monitor_es.domain.partition import Changes, ClockState, Partition
from monitor_es.domain.payload import normalise_guid
from monitor_es.domain.reducer import LogEntry
from monitor_es.domain.state import Environment, Monitor
from monitor_es.domain.time import LATEST, from_ms, iso, to_ms
from monitor_es.msgpack_depth import MAX_NESTING, nests_too_deep

CHECK_IN_V1: Final = 1
_STATUS_CODES: Final = {"ok": 0, "error": 1, "in_progress": 2}
_STATUS_NAMES: Final = tuple(sorted(_STATUS_CODES, key=_STATUS_CODES.__getitem__))

_encoder = msgspec.msgpack.Encoder()
_out_decoder = msgspec.msgpack.Decoder(list[DerivedEvent])
_env_decoder = msgspec.msgpack.Decoder(Environment)
_monitor_decoder = msgspec.msgpack.Decoder(Monitor)
_clock_decoder = msgspec.msgpack.Decoder(ClockState)


class UndecodableEntry(ValueError):
    """A log entry that is not a readable event (it goes to the dead-letter stream)."""

    def __init__(self, entry_id: str, reason: str) -> None:
        super().__init__(f"undecodable entry {entry_id}: {reason}")
        self.entry_id = entry_id
        self.reason = reason


class InvalidEvent(ValueError):
    """An inbound event that cannot go on the log: it does not encode, or not decode back."""


# ---------------------------------------------------------------- log entries


def encode_event(event: InboundEvent) -> bytes:
    """The wire form of an inbound event (its broker time will be its entry id)."""
    if isinstance(event, CheckInReported):
        return _encoder.encode(_check_in_wire(event))
    return _encoder.encode(event)


def encode_valid_event(event: InboundEvent) -> bytes:
    """``encode_event`` for events built in Python: raises InvalidEvent unless the bytes
    decode back to an event, so what the producer appends never ends in the dead letters.

    Structs do not check their field types when built, so a wrong type (a project that is
    an int, a naive ``received``, an int beyond 64 bits) shows up only here.
    """
    try:
        payload = encode_event(event)
    except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError) as exc:
        raise InvalidEvent(f"{type(event).__name__} cannot be encoded: {exc}") from None
    try:
        decode_entry("0-1", payload)
    except UndecodableEntry as exc:
        raise InvalidEvent(f"{type(event).__name__} would not decode: {exc.reason}") from None
    return payload


class _CheckInWire(msgspec.Struct, array_like=True, omit_defaults=True, tag=CHECK_IN_V1, gc=False):
    """Check-in schema v1 on the log: decoded by msgspec in C, trailing nulls omitted."""

    project: str
    monitor_slug: str
    check_in_id: Any
    status: Any
    environment: Any = None
    duration: Any = None
    received_ms: int | None = None
    monitor_config: Any = None
    trace_id: Any = None


_check_in_decoder = msgspec.msgpack.Decoder(_CheckInWire)
_inbound_decoder = msgspec.msgpack.Decoder(InboundEvent)
# msgpack array headers: fixarray, array 16, array 32. Every other event is a map.
_ARRAY_HEADERS: Final = frozenset([*range(0x90, 0xA0), 0xDC, 0xDD])


def _check_in_wire(event: CheckInReported) -> _CheckInWire:
    guid = event.check_in_id
    canonical = normalise_guid(guid)
    if canonical is not None:
        # A value that is no GUID travels as sent; the reducer rejects it with a typed error.
        guid = bytes.fromhex(canonical.replace("-", ""))
    status = event.status
    if isinstance(status, str) and status in _STATUS_CODES:
        status = _STATUS_CODES[status]
    else:
        # Anything else travels boxed, so a client's own `0` is never read as a code.
        status = [status]
    return _CheckInWire(
        project=event.project,
        monitor_slug=event.monitor_slug,
        check_in_id=guid,
        status=status,
        environment=event.environment,
        duration=event.duration,
        received_ms=None if event.received is None else to_ms(event.received),
        monitor_config=event.monitor_config,
        trace_id=event.trace_id,
    )


def decode_entry(entry_id: str, payload: bytes) -> LogEntry:
    """A log entry from its stream id (broker time) and payload; raises UndecodableEntry."""
    try:
        # A hand-written id can lie beyond datetime's year 9999.
        ts = from_ms(int(entry_id.partition("-")[0]))
        if ts >= LATEST:
            raise ValueError(f"broker time {iso(ts)} lies past {iso(LATEST)}")
        # Only a payload longer than the limit can nest deeper: the common check-in skips it.
        if len(payload) > MAX_NESTING and nests_too_deep(payload):
            raise ValueError(f"containers nested deeper than {MAX_NESTING} levels")
        if payload and payload[0] in _ARRAY_HEADERS:
            event: InboundEvent = _check_in_from_wire(_check_in_decoder.decode(payload))
        else:
            event = _in_utc(_inbound_decoder.decode(payload))
            _check_instants(event)
    except (
        msgspec.DecodeError,
        msgspec.ValidationError,
        ValueError,
        OverflowError,  # datetime.fromtimestamp, documented
        OSError,  # datetime.fromtimestamp, documented
        RecursionError,  # a backstop: the nesting limit keeps msgspec far from it
    ) as exc:
        reason = str(exc) if payload else "no payload (an empty or missing `e` field)"
        raise UndecodableEntry(entry_id, reason) from None
    return LogEntry(entry_id, ts, event)


def _check_instants(event: InboundEvent) -> None:
    """Refuses an instant inside a map-form event that the reducer could not compute with."""
    if type(event) is CheckInReported:
        _check_received(event.received)
    elif type(event) is ClockDecided and event.minute >= LATEST:
        raise ValueError(f"decision minute {iso(event.minute)} lies past {iso(LATEST)}")


def _check_received(received: datetime | None) -> None:
    if received is not None and received >= LATEST:
        raise ValueError(f"received {iso(received)} lies past {iso(LATEST)}")


def _in_utc(event: InboundEvent) -> InboundEvent:
    """The event with its instants in UTC: a map-form entry may spell them with an offset.

    The instant is the same, but its offset would ride along into the records and derived
    events (and, through memoised datetimes, into other monitors' ones) until a reload.
    """
    if type(event) is CheckInReported:
        received = event.received
        if received is not None and received.tzinfo is not UTC:
            return msgspec.structs.replace(event, received=received.astimezone(UTC))
    elif type(event) is ClockDecided and event.minute.tzinfo is not UTC:
        return msgspec.structs.replace(event, minute=event.minute.astimezone(UTC))
    return event


def _check_in_from_wire(wire: _CheckInWire) -> CheckInReported:
    guid = wire.check_in_id
    if type(guid) is bytes and len(guid) == 16:
        h = guid.hex()  # the canonical dashed form, without building a uuid.UUID
        guid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    status = wire.status
    if type(status) is int and 0 <= status < len(_STATUS_NAMES):
        status = _STATUS_NAMES[status]
    elif type(status) is list and len(status) == 1:
        status = status[0]
    else:
        raise ValueError("status is neither a status code nor a boxed value")
    received = None if wire.received_ms is None else from_ms(wire.received_ms)
    if received is not None and received >= LATEST:  # inline: every check-in passes here
        _check_received(received)
    return CheckInReported(
        project=wire.project,
        monitor_slug=wire.monitor_slug,
        check_in_id=guid,
        status=status,
        environment=wire.environment,
        duration=wire.duration,
        monitor_config=wire.monitor_config,
        received=received,
        trace_id=wire.trace_id,
    )


# ---------------------------------------------------------------- derived events


def encode_out_entry(events: list[DerivedEvent]) -> bytes:
    """One out-stream entry: every derived event of one commit, in order.

    One XADD per commit instead of one per event: most commits derive an event per
    check-in, and per-entry stream overhead would otherwise dominate the commit.
    """
    return _encoder.encode(events)


def decode_out_entry(payload: bytes) -> list[DerivedEvent]:
    """The derived events of one out-stream entry."""
    events: list[DerivedEvent] = _out_decoder.decode(payload)
    return events


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


def encode_changes(changes: Changes) -> tuple[dict[bytes, bytes], list[bytes]]:
    """The state-hash fields to write and to delete for what a batch changed."""
    state_set: dict[bytes, bytes] = {}
    for monitor in changes.monitors:
        state_set[monitor_field(monitor.project, monitor.slug)] = encode_record(monitor)
    for env in changes.environments:
        state_set[environment_field(*env.key)] = encode_record(env)
    if changes.clock is not None:
        state_set[CLOCK_FIELD] = encode_record(changes.clock)
    state_del = [monitor_field(*k) for k in changes.removed_monitors]
    state_del += [environment_field(*k) for k in changes.removed_environments]
    return state_set, state_del


def encode_state(partition: Partition) -> dict[bytes, bytes]:
    """The whole state hash a partition is stored as (the workers write it change by change)."""
    everything = Changes(
        monitors=list(partition.monitors.values()),
        environments=partition.all_environments(),
        removed_monitors=[],
        removed_environments=[],
        # Written with the first batch that ticks.
        clock=partition.clock if partition.clock.last_tick is not None else None,
    )
    return encode_changes(everything)[0]


def decode_state_field(field: bytes, blob: bytes) -> Monitor | Environment | ClockState:
    """A stored record by its field's kind."""
    if field == CLOCK_FIELD:
        return _clock_decoder.decode(blob)
    if field[:1] == b"m":
        return _monitor_decoder.decode(blob)
    if field[:1] == b"e":
        return _env_decoder.decode(blob)
    raise ValueError(f"unknown state field {field!r}")
