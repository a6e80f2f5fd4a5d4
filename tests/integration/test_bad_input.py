"""Bad input on a real redis-server (and fakeredis): rejected and recorded, nothing else lost.

Entries are written by hand straight into a partition log (XADD), between the entries of a
good scenario, and a worker drains the log. Whatever the bad entry holds, the worker must
not raise, the bad entry must end as an `event_rejected` derived event with a typed error
(a well-formed event with a bad value: the reducer judges it, as Sentry would) or in the
dead-letter stream with a readable reason (bytes that are no event of the wire schema:
there is nothing to attribute a typed error to), and every good entry must be applied
exactly as the pure fold of the good entries alone, with the high-water mark past the bad
entry and nothing left pending.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from test_worker_recovery import (
    _lease,
    _scenario_entries,
    append_entries,
    assert_partition_matches,
    encoded_state,
    last_id,
    pure_fold,
    run_until_drained,
    stored_events,
)

from monitor_es.codec import (
    InvalidEvent,
    UndecodableEntry,
    decode_entry,
    encode_event,
)
from monitor_es.domain.events import (
    CheckInReported,
    ClockDecided,
    DerivedEvent,
    EventRejected,
    InboundEvent,
    MonitorConfigured,
    MonitorDeleted,
    MonitorDisabled,
    MonitorMuted,
)
from monitor_es.domain.partition import Limits, Partition
from monitor_es.domain.reducer import LogEntry, fold
from monitor_es.msgpack_depth import MAX_NESTING
from monitor_es.producer import Producer
from monitor_es.store import keys
from monitor_es.store.connection import Client
from monitor_es.store.deployment import init_deployment
from monitor_es.store.log import PartitionStore, parse_id
from monitor_es.workers import partition as partition_module
from monitor_es.workers.partition import PartitionWorker

pytestmark = pytest.mark.redis

GOOD = _scenario_entries("many_monitors_and_environments")
# The bad entry goes right after an acme/api-sync production check-in, at its broker time:
# no minute boundary between them, so a rejected entry ticks nothing.
AFTER = 10  # GOOD[AFTER - 1] is that check-in
GUID = bytes.fromhex("bad00000000040008000000000000001")
LOG = keys.partition_keys(0).log
YEAR_9999_END_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_MB = 1 << 20


def _pack(value: Any) -> bytes:
    return msgspec.msgpack.encode(value)


def _check_in(*elements: Any) -> bytes:
    """A hand-made v1 check-in array: [1, project, slug, guid, status, env, duration, ...]."""
    return _pack([1, *elements])


def _ours(*elements: Any) -> bytes:
    """A v1 check-in of acme/api-sync with our GUID: [1, "acme", "api-sync", GUID, ...]."""
    return _check_in("acme", "api-sync", GUID, *elements)


def _upsert(slug: str, config: Any) -> bytes:
    """An ok check-in carrying a `monitor_config` (element 9 of the array)."""
    return _check_in("acme", slug, GUID, 0, None, None, None, config)


def _tagged(kind: str, **fields: Any) -> bytes:
    """A tagged-map event, of acme/api-sync unless told otherwise."""
    if kind.startswith("monitor_") or kind == "check_in":
        fields = {"project": "acme", "monitor_slug": "api-sync", **fields}
    return _pack({"type": kind, **fields})


def _nested_arrays(depth: int) -> bytes:
    return b"\x91" * depth + b"\x01"  # msgpack encoders recurse; bytes do not


def _nested_maps(depth: int) -> bytes:
    return b"\x81\xa1k" * depth + b"\x01"


_OURS_HEAD = _pack("acme") + _pack("api-sync") + _pack(GUID)  # elements 2-4, as bytes


def _ours_raw(count: int, *elements: bytes) -> bytes:
    """`_ours` from raw element bytes (for nesting no encoder can build): fixarray `count`."""
    return bytes([0x90 | count]) + b"\x01" + _OURS_HEAD + b"".join(elements)


@dataclass(frozen=True)
class Dead:
    """Expected in the dead-letter stream, its reason containing `reason`."""

    reason: str
    attempts: int = 1

    def mentioned_in(self, text: str) -> bool:
        # Case-blind: the words come from msgspec, whose capitals change between releases
        # ("invalid utf-8" in 0.22, "Invalid UTF-8" in 0.23).
        return self.reason.lower() in text.lower()


@dataclass(frozen=True)
class Rejected:
    """Expected as one `event_rejected` with these error types, changing nothing else."""

    types: tuple[str, ...]


@dataclass(frozen=True)
class Accepted:
    """Surprising but valid: applied as the event it decodes to."""


Expected = Dead | Rejected | Accepted
INVALID = Rejected(("checkin_validation_failed",))
INVALID_GUID = Rejected(("checkin_invalid_guid",))
NOT_FOUND = Rejected(("monitor_not_found",))
NO_SLUG = Rejected(("invalid_event",))  # a slug that slugifies to "" (Relay drops it)
BAD_ENVIRONMENT = Rejected(("monitor_invalid_environment",))
BAD_UPSERT = Rejected(("monitor_invalid_config", "monitor_not_found"))
TOO_DEEP = Dead(f"nested deeper than {MAX_NESTING} levels")


def _case(name: str, fields: dict[bytes, bytes] | bytes, expected: Expected) -> Any:
    entry = fields if isinstance(fields, dict) else {keys.ENTRY_FIELD: fields}
    return pytest.param(entry, expected, id=name)


# fmt: off
WIRE_CASES = [
    # ---- not msgpack, or no payload at all
    _case("garbage-bytes", b"\xc1\xff not msgpack", Dead("invalid opcode")),
    _case("empty-payload", b"", Dead("no payload")),
    _case("no-payload-field", {b"x": b"y"}, Dead("no payload")),
    _case("1mb-garbage", b"\xc1" * _MB, Dead("malformed")),
    _case("check-in-then-1mb-trailing", _ours(0) + bytes(_MB), Dead("trailing characters")),
    _case("array-claims-4g-items", b"\xdd\xff\xff\xff\xff", Dead("truncated")),
    _case("bare-ext", b"\xd4\x05\x00", Dead("got `ext`")),
    # ---- the check-in array with the wrong shape or element types
    _case("array-missing-elements", _check_in("acme", "api-sync"), Dead("at least length 5")),
    _case("array-empty", _pack([]), Dead("at least length 5")),
    _case("array-unknown-kind", _pack([2, "acme", "api-sync", GUID, 0]), Dead("Invalid value 2")),
    _case("array-kind-a-string", _pack(["check_in", "a", "s", GUID, 0]), Dead("at `$[0]`")),
    _case("project-an-int", _check_in(7, "api-sync", GUID, 0), Dead("Expected `str`, got `int`")),
    _case("project-a-dict", _check_in({"a": 1}, "api-sync", GUID, 0), Dead("got `object`")),
    _case("slug-null", _check_in("acme", None, GUID, 0), Dead("Expected `str`, got `None`")),
    _case("status-code-3", _ours(3), Dead("status is neither")),
    _case("status-code-negative", _ours(-1), Dead("status is neither")),
    _case("status-box-empty", _ours([]), Dead("status is neither")),
    _case("status-box-of-two", _ours(["ok", "ok"]), Dead("status is neither")),
    _case("received-a-float", _ours(0, None, None, 1.5), Dead("got `float` - at `$[7]`")),
    _case("received-int64-max", _ours(0, None, None, 2**63 - 1), Dead("out of range")),
    _case("received-int64-min", _ours(0, None, None, -(2**63)), Dead("out of range")),
    _case("project-not-utf8", b"\x95\x01\xa2\xff\xfe" + _OURS_HEAD[5:] + b"\x00", Dead("utf-8")),
    _case("project-surrogate", b"\x95\x01\xa3\xed\xa0\x80" + _OURS_HEAD[5:] + b"\x00",
          Dead("utf-8")),
    # ---- nesting (before: msgspec's RecursionError escaped and stopped the worker)
    _case("status-nested-100k", _ours_raw(5, b"\x91" + _nested_arrays(100_000)), TOO_DEEP),
    _case("config-nested-1000", _ours_raw(9, b"\x00\xc0\xc0\xc0", _nested_maps(1000)), TOO_DEEP),
    _case("environment-nested-257", _ours_raw(6, b"\x00", _nested_arrays(MAX_NESTING)), TOO_DEEP),
    _case("unknown-field-nested-1000",
          b"\x82" + _pack("type") + _pack("clock_pulse") + _pack("x") + _nested_arrays(1000),
          TOO_DEEP),
    # ---- tagged maps
    _case("map-unknown-tag", _pack({"type": "check_in_v9"}), Dead("Invalid value 'check_in_v9'")),
    _case("map-without-tag", _pack({"project": "acme"}), Dead("missing required field `type`")),
    _case("muted-a-string", _tagged("monitor_muted", muted="yes"), Dead("at `$.muted`")),
    _case("mute-environment-an-int", _tagged("monitor_muted", muted=True, environment=3),
          Dead("Expected `str | null`, got `int`")),
    _case("disabled-an-int", _tagged("monitor_disabled", disabled=1), Dead("got `int`")),
    _case("configured-name-an-int", _tagged("monitor_configured", config={}, name=5),
          Dead("at `$.name`")),
    _case("deleted-without-slug", _pack({"type": "monitor_deleted", "project": "acme"}),
          Dead("missing required field `monitor_slug`")),
    _case("decision-unknown", _tagged("clock_decision", minute="2024-05-01T08:01:00Z",
          decision="panic"), Dead("Invalid enum value 'panic'")),
    _case("decision-minute-garbage", _tagged("clock_decision", minute="soon", decision="normal"),
          Dead("Invalid RFC3339")),
    _case("decision-minute-an-int", _tagged("clock_decision", minute=5, decision="normal"),
          Dead("Expected `datetime`, got `int`")),
    # Before: applied and stored in the clock, where it made every later tick raise.
    _case("decision-minute-naive", _tagged("clock_decision", minute="2024-05-01T08:01:00",
          decision="abnormal"), Dead("timezone")),
    # Before: the reducer raised comparing it with broker time (retried, then dead-lettered).
    _case("map-check-in-received-naive", _tagged("check_in", check_in_id=GUID.hex(),
          status="ok", received="2024-05-01T08:01:31"), Dead("timezone")),
    # ---- well-formed events with bad values: typed rejections
    _case("status-unknown-string", _ours(["done"]), INVALID),
    _case("status-a-boxed-dict", _ours([{"a": [1, 2]}]), INVALID),
    _case("status-nested-within-limit", _ours_raw(5, b"\x91" + _nested_arrays(MAX_NESTING - 3)),
          INVALID),
    _case("guid-15-bytes", _check_in("acme", "api-sync", GUID[:15], 0), INVALID_GUID),
    _case("guid-an-int", _check_in("acme", "api-sync", 7, 0), INVALID_GUID),
    _case("duration-nan", _ours(0, None, math.nan), INVALID),
    _case("duration-minus-infinity", _ours(0, None, -math.inf), INVALID),
    # Before: int(1e308 * 1000) raised OverflowError in the reducer (retried, dead-lettered).
    _case("duration-1e308", _ours(0, None, 1e308), INVALID),
    _case("duration-minus-1e308", _ours(0, None, -1e308), INVALID),
    _case("duration-uint64-max", _ours(0, None, 2**64 - 1), INVALID),
    _case("duration-a-string", _ours(0, None, "5"), INVALID),
    _case("environment-an-int", _ours(0, 7), INVALID),
    _case("environment-a-dict", _ours(0, {"a": 1}), INVALID),
    _case("environment-1mb", _ours(0, "e" * _MB), BAD_ENVIRONMENT),
    _case("environment-with-slash", _ours(0, "prod/eu"), BAD_ENVIRONMENT),
    _case("trace-id-a-dict", _ours(0, None, None, None, None, {"a": 1}), INVALID),
    _case("project-1mb", _check_in("p" * _MB, "api-sync", GUID, 0), NOT_FOUND),
    _case("slug-1mb", _check_in("acme", "j" * _MB, GUID, 0), NOT_FOUND),
    _case("slug-emoji-only", _check_in("acme", "\U0001f4a5" * 1000, GUID, 0), NO_SLUG),
    _case("slug-with-nul", _check_in("acme", "api\x00sync", GUID, 0), NOT_FOUND),
    _case("upsert-crontab-1mb", _upsert("fresh", {"schedule_type": "crontab",
          "schedule": "* " * (_MB // 2)}), BAD_UPSERT),
    _case("upsert-nan-margin", _upsert("fresh", {"schedule_type": "crontab",
          "schedule": "* * * * *", "checkin_margin": math.nan}), BAD_UPSERT),
    _case("upsert-config-a-list", _upsert("fresh", [1, 2]), BAD_UPSERT),
    _case("configured-config-a-list", _tagged("monitor_configured", monitor_slug="fresh",
          config=[1]), Rejected(("monitor_invalid_config",))),
    _case("mute-unknown-environment", _tagged("monitor_muted", muted=True, environment="e" * 999),
          BAD_ENVIRONMENT),
    _case("disable-nul-project", _tagged("monitor_disabled", project="\x00",
          monitor_slug="\ud7ff", disabled=True), NOT_FOUND),
    # ---- surprising but valid: forward compatible, or allowed as Sentry allows it
    _case("array-extra-element", _ours(0, *[None] * 5, "from-v1.1"), Accepted()),
    _case("map-unknown-field", _pack({"type": "clock_pulse", "extra": {"a": [1]}}), Accepted()),
    _case("extra-stream-fields", {b"x": b"1", keys.ENTRY_FIELD: _ours(0), b"y": b"2"},
          Accepted()),
    _case("environment-with-nul", _ours(0, "pre\x00prod"), Accepted()),
    # `received` is the edge's own clock, trusted as Sentry trusts Relay's start_time.
    _case("received-in-year-1", _ours(2, None, None, -62_135_596_800_000), Accepted()),
    _case("decision-minute-with-offset", _tagged("clock_decision",
          minute="2024-05-01T13:31:00+05:30", decision="normal"), Accepted()),
]

# Instants past 9000-01-01 (schedule arithmetic would overflow datetime's year 9999): the
# decoder refuses them at once, so they never reach the reducer.
REDUCER_CASES = [
    _case("received-in-year-9999", _ours(0, None, None, YEAR_9999_END_MS - 60_000),
          Dead("received 9999-12-31T23:58:59.999000Z lies past 9000-01-01T00:00:00Z")),
    _case("received-in-year-9000", _ours(0, None, None, 221_845_392_000_000),
          Dead("lies past 9000-01-01T00:00:00Z")),
    _case("map-received-in-year-9000", _tagged("check_in", check_in_id=str(uuid.UUID(
          bytes=GUID)), status="ok", received="9000-01-01T00:00:00Z"), Dead("lies past")),
    _case("decision-minute-in-year-9000", _tagged("clock_decision",
          minute="9000-01-01T00:00:00Z", decision="normal"), Dead("lies past")),
]
# An interval with no next slot datetime can hold is an invalid config (spec §2.10).
WIRE_CASES.append(
    _case("upsert-interval-9000-years", _upsert("fresh", {"schedule_type": "interval",
          "schedule": [9000, "year"]}), BAD_UPSERT)
)
# fmt: on


# ------------------------------------------------------------------ helpers


def _bad_id(after: LogEntry, n: int = 0) -> str:
    ms, _, seq = after.id.partition("-")
    return f"{ms}-{int(seq) + 1000 + n}"


def _write_log(client: Client, bad: Sequence[tuple[str, dict[bytes, bytes]]]) -> None:
    """GOOD with hand-written entries at the given ids, everything in id order."""
    init_deployment(client, 1)
    pending = sorted(bad, key=lambda item: parse_id(item[0]))
    chunk: list[LogEntry] = []
    for entry in GOOD:
        while pending and parse_id(pending[0][0]) < parse_id(entry.id):
            append_entries(client, chunk, 1)
            chunk = []
            entry_id, fields = pending.pop(0)
            assert client.xadd(LOG, fields, id=entry_id) is not None
        chunk.append(entry)
    append_entries(client, chunk, 1)
    for entry_id, fields in pending:
        assert client.xadd(LOG, fields, id=entry_id) is not None


def _drain(client: Client) -> None:
    worker = PartitionWorker(PartitionStore(client, 0), _lease(client, "w").token, "w:1")
    run_until_drained(worker)  # raises if the worker does


def _inserted(entries: Sequence[LogEntry], extra: Sequence[LogEntry]) -> list[LogEntry]:
    return sorted([*entries, *extra], key=lambda entry: parse_id(entry.id))


def _rate_free(partition: Partition) -> dict[bytes, bytes]:
    """The encoded state without rate-limit counters (a rejected check-in still counts)."""
    for env in partition.all_environments():
        env.rate_minute, env.rate_count = None, 0
    partition.clock.rate_minute, partition.clock.rate_counts = None, {}
    return encoded_state(partition)


def _assert_drained_past(client: Client, entry_id: str) -> None:
    mark = last_id(client, 0)
    assert mark is not None and parse_id(mark) >= parse_id(entry_id), "high-water mark"
    assert client.xpending(LOG, keys.REDUCER_GROUP)["pending"] == 0
    meta = PartitionStore(client, 0).load_meta()
    assert not [f for f in meta if f.startswith(keys.META_FAIL_PREFIX.encode())], "fail counters"


def _check_outcome(
    client: Client, bad_id: str, fields: dict[bytes, bytes], expected: Expected
) -> None:
    store = PartitionStore(client, 0)
    payload = fields.get(keys.ENTRY_FIELD, b"")
    dead = store.read_dlq()
    if isinstance(expected, Dead):
        assert [(d.entry_id, d.attempts) for _, d in dead] == [(bad_id, expected.attempts)]
        letter = dead[0][1]
        assert expected.mentioned_in(letter.reason), letter.reason[:300]
        assert letter.payload == payload
        assert len(letter.reason) < 1000, "a reason is a line, not a dump of the entry"
        events = assert_partition_matches(client, 0, GOOD)
        assert all(not isinstance(e, EventRejected) for e in events)
    else:
        assert dead == []
        full = _inserted(GOOD, [decode_entry(bad_id, payload)])
        events = assert_partition_matches(client, 0, full)
        mine = [e for e in events if isinstance(e, EventRejected) and e.entry_id == bad_id]
        if isinstance(expected, Rejected):
            assert len(mine) == 1
            assert tuple(error["type"] for error in mine[0].errors) == expected.types
            # Nothing but the rejection and the rate-limit counters differs from GOOD alone.
            others = [e for e in events if e is not mine[0]]
            good_partition, good_events = pure_fold(GOOD)
            assert others == good_events
            assert _rate_free(pure_fold(full)[0]) == _rate_free(good_partition)
        else:
            assert mine == []
    _assert_drained_past(client, GOOD[-1].id)


# ------------------------------------------------------------------ hand-written entries


@pytest.mark.parametrize(("fields", "expected"), WIRE_CASES + REDUCER_CASES)
def test_a_bad_entry_written_by_hand_is_rejected_or_dead_lettered_and_nothing_else_changes(
    client: Client, fields: dict[bytes, bytes], expected: Expected
) -> None:
    bad_id = _bad_id(GOOD[AFTER - 1])
    _write_log(client, [(bad_id, fields)])

    _drain(client)

    _check_outcome(client, bad_id, fields, expected)


def _assert_matches(
    client: Client, entries: Sequence[LogEntry], limits: Limits
) -> list[DerivedEvent]:
    """assert_partition_matches, for a worker that ran with `limits`."""
    partition = Partition(limits)
    expected_events = fold(partition, entries)
    store = PartitionStore(client, 0)
    assert store.load_state() == encoded_state(partition)
    events = stored_events(store)
    assert events == expected_events
    return events


@pytest.mark.parametrize("count", [1, 4, 500])
def test_every_bad_entry_at_once_through_a_pipelined_worker(
    real_client: redis.Redis, count: int
) -> None:
    # A generous rate limit, so each bad entry meets the check it was written for.
    limits = Limits(checkins_per_minute=10_000)
    cases = [(p.values[0], p.values[1]) for p in WIRE_CASES + REDUCER_CASES]
    bad = []
    for n, (fields, expected) in enumerate(cases):  # spread over every gap of the log
        # Each its own check-in id: no case may close (or reopen) another case's check-in.
        guid = GUID[:-2] + n.to_bytes(2, "big")
        own = {
            k: v.replace(GUID, guid).replace(GUID.hex().encode(), guid.hex().encode())
            for k, v in fields.items()
        }
        bad.append((_bad_id(GOOD[(n * 5) % len(GOOD)], n), own, expected))
    _write_log(real_client, [(i, f) for i, f, _ in bad])
    worker = PartitionWorker(
        PartitionStore(real_client, 0),
        _lease(real_client, "w").token,
        "w:1",
        limits,
        pipelined=True,
    )

    run_until_drained(worker, count=count)
    worker.close()

    dead = {d.entry_id: d for _, d in PartitionStore(real_client, 0).read_dlq()}
    expected_dead = {i: e for i, _, e in bad if isinstance(e, Dead)}
    assert sorted(dead) == sorted(expected_dead)
    for entry_id, expectation in expected_dead.items():
        assert expectation.mentioned_in(dead[entry_id].reason)
        assert dead[entry_id].attempts == expectation.attempts
    kept = [decode_entry(i, f[keys.ENTRY_FIELD]) for i, f, e in bad if not isinstance(e, Dead)]
    events = _assert_matches(real_client, _inserted(GOOD, kept), limits)
    rejected = {e.entry_id: e for e in events if isinstance(e, EventRejected)}
    # Typed, though not always as alone: where a case lands decides (no monitor yet, ...).
    assert {i for i, _, e in bad if isinstance(e, Rejected)} <= set(rejected)
    _assert_drained_past(real_client, max((i for i, _, _ in bad), key=parse_id))


def test_an_entry_id_beyond_year_9999_is_dead_lettered_not_a_worker_crash(client: Client) -> None:
    # Broker time is the id: an id written by hand can lie beyond what a datetime can hold.
    # (Redis then gives every later `*` entry an id at least as far: see the report.)
    bad_id = f"{10**15}-0"
    fields = {keys.ENTRY_FIELD: encode_event(GOOD[-1].event)}
    _write_log(client, [(bad_id, fields)])

    _drain(client)

    dead = PartitionStore(client, 0).read_dlq()
    assert [(d.entry_id, d.attempts) for _, d in dead] == [(bad_id, 1)]
    assert "out of range" in dead[0][1].reason
    assert_partition_matches(client, 0, GOOD)
    _assert_drained_past(client, bad_id)


def test_a_decoder_bug_dead_letters_the_entry_instead_of_stopping_the_partition(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_id = _bad_id(GOOD[AFTER - 1])
    _write_log(client, [(bad_id, {keys.ENTRY_FIELD: encode_event(GOOD[AFTER - 1].event)})])
    real_decode = partition_module.decode_entry

    def broken_decode(entry_id: str, payload: bytes) -> LogEntry:
        if entry_id == bad_id:
            raise KeyError("injected decoder bug")
        return real_decode(entry_id, payload)

    monkeypatch.setattr(partition_module, "decode_entry", broken_decode)
    _drain(client)

    dead = PartitionStore(client, 0).read_dlq()
    assert [(d.entry_id, d.attempts) for _, d in dead] == [(bad_id, 1)]
    assert "KeyError" in dead[0][1].reason and "injected decoder bug" in dead[0][1].reason
    assert_partition_matches(client, 0, GOOD)
    _assert_drained_past(client, GOOD[-1].id)


# ------------------------------------------------------------------ nesting limit


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in [*value, *value.values()]), default=0)
    return 0


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(alphabet=st.characters(min_codepoint=0x7F, max_codepoint=0x24F), max_size=300),
    st.binary(max_size=300).map(lambda b: msgspec.msgpack.Ext(1, b)),
    st.binary(max_size=70_000),
)
shallow = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=20) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=40,
)


@st.composite
def _deep_values(draw: st.DrawFn) -> Any:
    """A value nested close to the limit: arrays, maps, and wide levels full of headers."""
    value = draw(shallow)
    levels = draw(st.integers(MAX_NESTING - 6, MAX_NESTING + 3))
    for kind in draw(st.lists(st.sampled_from("lmw"), min_size=levels, max_size=levels)):
        if kind == "l":
            value = [value]
        elif kind == "m":
            value = {"k": value}
        else:
            value = [{}] * 20 + [value]  # wide: many container headers, no extra depth
    return value


@settings(max_examples=150, deadline=None)
@given(_deep_values())
def test_the_nesting_limit_is_exact_and_never_a_recursion_error(value: Any) -> None:
    payload = _pack({"type": "clock_pulse", "x": value})
    depth = 1 + _depth(value)
    if depth <= MAX_NESTING:
        assert decode_entry("1-0", payload).event.__class__.__name__ == "ClockPulsed"
    else:
        with pytest.raises(UndecodableEntry, match="nested deeper"):
            decode_entry("1-0", payload)


# ------------------------------------------------------------------ the producer

BASE = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
NAIVE = datetime(2024, 5, 1, 9, 0)


def _deep_dict(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"k": value}
    return value


def _check_in_event(**fields: Any) -> CheckInReported:
    base: dict[str, Any] = {
        "project": "acme",
        "monitor_slug": "api-sync",
        "check_in_id": GUID.hex(),
        "status": "ok",
    }
    return CheckInReported(**{**base, **fields})


PRODUCER_CASES = [
    pytest.param(_check_in_event(project=7), "Expected `str`, got `int`", id="project-int"),
    pytest.param(_check_in_event(monitor_slug=None), "got `None`", id="slug-none"),
    pytest.param(_check_in_event(monitor_slug=b"api-sync"), "got `bytes`", id="slug-bytes"),
    pytest.param(_check_in_event(project="a\ud800"), "surrogates", id="project-lone-surrogate"),
    pytest.param(_check_in_event(status=object()), "unsupported", id="status-object"),
    pytest.param(_check_in_event(duration=2**70), "can't serialize", id="duration-2**70"),
    pytest.param(_check_in_event(received=NAIVE), "offset-naive", id="received-naive"),
    pytest.param(
        _check_in_event(received="2024-05-01T09:00:00Z"), "unsupported", id="received-str"
    ),
    pytest.param(
        _check_in_event(monitor_config=_deep_dict(2000)), "recursion", id="config-nested-2000"
    ),
    pytest.param(
        _check_in_event(monitor_config=_deep_dict(MAX_NESTING)),
        "nested deeper",
        id="config-nested-past-limit",
    ),
    pytest.param(
        MonitorMuted(project="acme", monitor_slug="api-sync", muted="yes"),  # type: ignore[arg-type]
        "Expected `bool`",
        id="muted-str",
    ),
    pytest.param(
        MonitorMuted(project="acme", monitor_slug="api-sync", muted=True, environment=3),  # type: ignore[arg-type]
        "Expected `str | null`",
        id="mute-environment-int",
    ),
    pytest.param(
        MonitorDisabled(project="acme", monitor_slug="api-sync", disabled=None),  # type: ignore[arg-type]
        "Expected `bool`",
        id="disabled-none",
    ),
    pytest.param(
        MonitorConfigured(project="acme", monitor_slug="api-sync", config={}, name=5),  # type: ignore[arg-type]
        "Expected `str | null`",
        id="name-int",
    ),
    pytest.param(
        MonitorConfigured(project="acme", monitor_slug="api-sync", config=object()),
        "unsupported",
        id="config-object",
    ),
    pytest.param(
        MonitorDeleted(project=None, monitor_slug="api-sync"),  # type: ignore[arg-type]
        "got `None`",
        id="deleted-project-none",
    ),
    pytest.param(
        ClockDecided(minute=NAIVE, decision="normal"), "timezone", id="decision-naive-minute"
    ),
    pytest.param(
        ClockDecided(minute=BASE, decision="panic"),  # type: ignore[arg-type]
        "Invalid enum value",
        id="decision-unknown",
    ),
]


@pytest.mark.parametrize(("event", "message"), PRODUCER_CASES)
def test_the_producer_refuses_an_event_of_wrong_types_with_a_typed_error_and_appends_nothing(
    client: Client, event: InboundEvent, message: str
) -> None:
    init_deployment(client, 2)
    producer = Producer(client)
    good = GOOD[AFTER - 1].event

    with pytest.raises(InvalidEvent) as raised:
        producer.append_all([good, event, good])

    assert str(raised.value).startswith(f"event 1: {type(event).__name__} ")
    assert message.lower() in str(raised.value).lower()
    assert [client.xlen(keys.partition_keys(p).log) for p in range(2)] == [0, 0]
    producer.append_all([good])  # the producer is still usable
    assert sum(client.xlen(keys.partition_keys(p).log) for p in range(2)) == 1


def test_the_producer_appends_bad_values_of_the_right_types_for_the_reducer_to_reject(
    client: Client,
) -> None:
    init_deployment(client, 1)
    events: list[InboundEvent] = [
        _check_in_event(status="done"),
        _check_in_event(duration=-1),
        _check_in_event(check_in_id="not-a-guid"),
        _check_in_event(environment=["prod"]),
    ]
    ids = [_bad_id(GOOD[AFTER - 1], n) for n in range(len(events))]
    entries = [
        LogEntry(i, decode_entry(i, encode_event(e)).ts, e)
        for i, e in zip(ids, events, strict=True)
    ]
    append_entries(client, GOOD[:AFTER], 1)
    Producer(client).append_all(events, ids=ids)
    append_entries(client, GOOD[AFTER:], 1)

    _drain(client)

    assert PartitionStore(client, 0).read_dlq() == []
    events_out = assert_partition_matches(client, 0, _inserted(GOOD, entries))
    rejected = [e for e in events_out if isinstance(e, EventRejected)]
    assert [(e.entry_id, [x["type"] for x in e.errors]) for e in rejected] == [
        (ids[0], ["checkin_validation_failed"]),
        (ids[1], ["checkin_validation_failed"]),
        (ids[2], ["checkin_invalid_guid"]),
        (ids[3], ["checkin_validation_failed"]),
    ]


# ------------------------------------------------------------------ known gaps (domain)


def test_a_monitor_whose_interval_overflows_the_calendar_is_rejected_when_configured(
    client: Client,
) -> None:
    configured = MonitorConfigured(
        project="acme",
        monitor_slug="api-sync",
        config={"schedule_type": "interval", "schedule": [9000, "year"]},
    )
    bad_id = _bad_id(GOOD[AFTER - 1])
    _write_log(client, [(bad_id, {keys.ENTRY_FIELD: encode_event(configured)})])

    _drain(client)

    dead = PartitionStore(client, 0).read_dlq()
    assert dead == [], [d.reason for _, d in dead]  # good check-ins of api-sync, before a fix
    events = stored_events(PartitionStore(client, 0))
    rejected = [e for e in events if isinstance(e, EventRejected) and e.entry_id == bad_id]
    assert [x["type"] for x in rejected[0].errors] == ["monitor_invalid_config"]


def test_an_entry_with_the_payload_field_twice_reads_alike_on_every_read_path(
    real_client: redis.Redis,
) -> None:
    init_deployment(real_client, 1)
    good = _ours(0)
    real_client.execute_command("XADD", LOG, "1-1", "e", b"\xc1 garbage", "e", good)
    store = PartitionStore(real_client, 0)

    pipelined = store.send_read("pipelined", 10).result()
    real_client.xgroup_setid(LOG, keys.REDUCER_GROUP, "0")
    plain = store.read_batch("plain", 10, None)
    store.close()

    assert plain == store.read_range()
    assert pipelined == plain


def test_a_thousand_garbage_entries_are_dead_lettered_in_batches_and_the_rest_applied(
    client: Client,
) -> None:
    bad = [
        (_bad_id(GOOD[n % len(GOOD)], n), {keys.ENTRY_FIELD: b"\xc1%d" % n}) for n in range(1200)
    ]
    _write_log(client, bad)

    _drain(client)

    dead = PartitionStore(client, 0).read_dlq()
    assert sorted(d.entry_id for _, d in dead) == sorted(i for i, _ in bad)
    assert all(d.payload == dict(bad)[d.entry_id][keys.ENTRY_FIELD] for _, d in dead)
    assert_partition_matches(client, 0, GOOD)
    _assert_drained_past(client, max((i for i, _ in bad), key=parse_id))


# ------------------------------------------------------------------ monitor-es simulate

_SCRIPT = Path(sys.executable).with_name("monitor-es")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "monitor_es.cli"]
_T = "2024-05-01T08:{:02d}:00Z"


def _line(**fields: Any) -> str:
    return json.dumps(fields)


def _ok(minute: int, n: int, **extra: Any) -> str:
    fields = {
        "type": "check_in",
        "ts": _T.format(minute),
        "project": "acme",
        "monitor_slug": "job",
        "check_in_id": f"c0000000-0000-4000-8000-{n:012d}",
        "status": "ok",
    }
    return json.dumps({**fields, **extra})


GOOD_LINES = {
    1: _line(
        type="monitor_configured",
        ts=_T.format(0),
        project="acme",
        monitor_slug="job",
        config={"schedule_type": "crontab", "schedule": "*/5 * * * *"},
    ),
    3: _ok(5, 1),
    6: _ok(10, 2),
    9: _ok(15, 3),
    13: _ok(20, 4),
    17: _line(type="clock_pulse", ts=_T.format(40)),
}
BAD_LINES = {
    2: '{"type": "check_in", "ts": ',  # invalid JSON
    4: _ok(6, 5, project=7),  # wrong type
    5: _ok(7, 6, ts=1e20),  # epoch seconds far beyond year 9999
    7: _ok(11, 7, duration=10**26),  # an int the log cannot hold
    8: _ok(12, 8, received=1e300),  # an instant out of range
    10: _ok(1, 9),  # ts goes backwards
    11: _ok(16, 10, monitor_config=json.loads("[" * 600 + "]" * 600)),  # nested too deep
    12: "[" * 100_000 + "]" * 100_000,  # nested far too deep for the JSON decoder
    14: _line(type="check_in_v2", ts=_T.format(21)),  # unknown type
    15: _line(type="clock_pulse"),  # no ts
    16: _line(type="clock_decision", ts=_T.format(22), minute="soon", decision="normal"),
}


def _simulate(path: Path, *extra: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "MONITOR_ES_REDIS_URL"}
    done = subprocess.run(
        [*CLI, "simulate", str(path), "--json", *extra],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    document: dict[str, Any] = json.loads(done.stdout)
    return document


@pytest.fixture
def scenario_files(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """The scenario with bad lines, and the same with each bad line blanked (same numbers)."""
    size = max(GOOD_LINES | BAD_LINES)
    with_bad = [GOOD_LINES.get(n) or BAD_LINES[n] for n in range(1, size + 1)]
    without = [GOOD_LINES.get(n, "# removed") for n in range(1, size + 1)]
    bad, clean = tmp_path / "bad.jsonl", tmp_path / "clean.jsonl"
    bad.write_text("\n".join(with_bad) + "\n", encoding="utf-8")
    clean.write_text("\n".join(without) + "\n", encoding="utf-8")
    yield bad, clean


def _assert_bad_lines_reported_and_the_rest_processed(
    document: dict[str, Any], clean: dict[str, Any]
) -> None:
    rejected = {row["line"]: row["errors"] for row in document["rejected"]}
    assert sorted(rejected) == sorted(BAD_LINES)
    for line, errors in rejected.items():
        assert [e["type"] for e in errors] == ["invalid_event"], (line, errors)
        assert all(str(e.get("message", "")).strip() for e in errors), (line, errors)
    assert clean["rejected"] == []
    for part in ("environments", "check_ins", "incidents", "events"):
        assert document[part] == clean[part], part
    assert len(document["check_ins"]) >= 4  # the good lines were folded


def test_simulate_reports_each_bad_line_with_its_number_and_folds_the_rest(
    scenario_files: tuple[Path, Path],
) -> None:
    bad, clean = scenario_files
    _assert_bad_lines_reported_and_the_rest_processed(_simulate(bad), _simulate(clean))


def test_simulate_on_redis_refuses_the_same_lines_as_the_pure_fold(
    scenario_files: tuple[Path, Path], redis_server: str, real_client: redis.Redis
) -> None:
    bad, clean = scenario_files
    in_memory = _simulate(bad)

    on_redis = _simulate(bad, "--redis-url", redis_server)

    assert on_redis == in_memory
    assert PartitionStore(real_client, 0).read_dlq() == []  # nothing unreadable was appended
    real_client.flushall()
    _assert_bad_lines_reported_and_the_rest_processed(
        on_redis, _simulate(clean, "--redis-url", redis_server)
    )
