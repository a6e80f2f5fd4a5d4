"""Property: any valid log, pushed through the pipeline, ends exactly as the pure fold."""

from __future__ import annotations

import fakeredis
from hypothesis import given, settings
from hypothesis import strategies as st
from log_strategies import encoded_state, fold_batch, logs

from monitor_es.codec import decode_out_entry, encode_event
from monitor_es.domain.reducer import LogEntry
from monitor_es.store.connection import EMBEDDED_VERSION
from monitor_es.store.deployment import init_deployment
from monitor_es.store.log import PartitionStore, append_many
from monitor_es.workers.drain import drain
from monitor_es.workers.partition import load_partition


@settings(max_examples=40, deadline=None)
@given(logs(), st.floats(0, 1))
def test_any_log_through_the_pipeline_equals_the_pure_fold(
    entries: list[LogEntry], where: float
) -> None:
    client = fakeredis.FakeRedis(
        server=fakeredis.FakeServer(version=EMBEDDED_VERSION), version=EMBEDDED_VERSION
    )
    init_deployment(client, 1)
    cut = int(len(entries) * where)
    # Two drains: the second worker loads the first one's state from Redis mid-log.
    for part in (entries[:cut], entries[cut:]):
        if part:
            append_many(client, [(0, encode_event(e.event)) for e in part], [e.id for e in part])
            drain(client, 1)

    expected, events = fold_batch(entries)
    store = PartitionStore(client, 0)
    stored, _ = load_partition(store, expected.limits)
    assert encoded_state(stored) == encoded_state(expected)
    out = [event for _, payload in store.read_out() for event in decode_out_entry(payload)]
    assert out == events
