"""Contract of the Redis store; every test runs on fakeredis and on a real redis-server."""

from __future__ import annotations

import time
import zlib
from dataclasses import replace

import pytest
from redis import Redis
from redis.exceptions import ResponseError

from monitor_es.domain.partition import Limits
from monitor_es.store import functions, keys
from monitor_es.store.connection import Client, as_text, connect
from monitor_es.store.deployment import (
    LIMIT_NAMES,
    DeploymentMismatch,
    NotInitialised,
    init_deployment,
    load_deployment,
    require_deployment,
)
from monitor_es.store.leases import Lease, LeaseClient, fair_share
from monitor_es.store.log import (
    DeadLetter,
    PartitionStore,
    append,
    append_many,
    broadcast,
)

N = 4


def _ready(client: Client, partition: int = 0) -> tuple[PartitionStore, Lease]:
    init_deployment(client, N)
    lease = LeaseClient(client, "w1", 10_000).acquire(partition)
    assert lease is not None
    return PartitionStore(client, partition), lease


@pytest.fixture
def loaded(client: Client) -> Client:
    """The contract client with the Functions loaded but no deployment initialised."""
    functions.load_functions(client)
    return client


def _pending(client: Client, partition: int = 0) -> int:
    summary = client.xpending(keys.partition_keys(partition).log, keys.REDUCER_GROUP)
    return int(summary["pending"])


# --- keys -------------------------------------------------------------------------------------


def test_partition_for_is_crc32_of_project_and_slug_mod_n() -> None:
    expected = zlib.crc32(b"acme:nightly-backup") % 16
    assert keys.partition_for("acme", "nightly-backup", 16) == expected
    assert keys.partition_for("acme", "nightly-backup", 1) == 0


def test_every_partition_key_carries_the_partition_hash_tag() -> None:
    pk = keys.partition_keys(7)
    assert all(key.startswith("mes:{p07}:") for key in pk.all())
    assert len(set(pk.all())) == 7


def test_global_keys_have_the_mes_prefix() -> None:
    assert keys.DEPLOYMENT == "mes:deployment"
    assert keys.PULSER_LEASE.startswith("mes:{pulser}:")
    assert keys.PULSER_META.startswith("mes:{pulser}:")


# --- connection ---------------------------------------------------------------------------------


def test_connect_without_url_shares_one_embedded_server_per_process() -> None:
    first, second = connect(None), connect(None)
    try:
        first.set("mes:test:embedded", b"seen")
        assert second.get("mes:test:embedded") == b"seen"
    finally:
        first.delete("mes:test:embedded")
        first.close()
        second.close()


# --- deployment ---------------------------------------------------------------------------------


def test_load_deployment_is_none_before_init(client: Client) -> None:
    assert load_deployment(client) is None
    with pytest.raises(NotInitialised):
        require_deployment(client)


def test_init_creates_every_partitions_log_group_and_out_stream(client: Client) -> None:
    deployment = init_deployment(client, N)
    assert deployment.partitions == N
    assert load_deployment(client) == deployment
    for p in range(N):
        pk = keys.partition_keys(p)
        groups = client.xinfo_groups(pk.log)
        assert [g["name"] for g in groups] == [keys.REDUCER_GROUP.encode()]
        assert client.exists(pk.out) == 1
        assert client.xinfo_groups(pk.out) == []


def test_init_loads_the_versioned_functions(client: Client) -> None:
    init_deployment(client, N)
    assert isinstance(client, Redis)
    assert functions.loaded_functions(client) == {
        functions.COMMIT,
        functions.FAIL,
        functions.LEASE_ACQUIRE,
        functions.LEASE_RENEW,
        functions.LEASE_RELEASE,
        functions.AGGREGATOR_WRITE,
        functions.HEARTBEAT,
        # The previous version's name stays while its processes run during an upgrade.
        "mes_aggregator_write_v1",
    }
    assert functions.loaded_functions(client) >= functions.REQUIRED


def test_aggregator_writes_are_refused_below_the_highest_token_their_fence_has_seen(
    client: Client,
) -> None:
    init_deployment(client, N)
    pk = keys.partition_keys(0)

    def write(token: int, op: str, target: str, *fields: object) -> object:
        fence = target if target.startswith(keys.PREFIX + "system") else pk.meta
        return functions.fcall(
            client, functions.AGGREGATOR_WRITE, [fence, target], [token, op, *fields]
        )

    assert write(3, "hset", keys.SYSTEM_INCIDENT_STATE, "last_tick", 60) == 1
    assert write(3, "hset", keys.SYSTEM_INCIDENT_STATE, "last_tick", 120) == 0  # same token
    with pytest.raises(functions.Fenced):
        write(2, "hset", keys.SYSTEM_INCIDENT_STATE, "last_tick", 0)
    assert client.hget(keys.SYSTEM_INCIDENT_STATE, "last_tick") == b"120"
    assert write(4, "xadd", pk.log, "e", b"decision") is not None
    with pytest.raises(functions.Fenced):
        write(3, "xadd", pk.log, "e", b"stale")
    assert [payload for _, payload in PartitionStore(client, 0).read_range()] == [b"decision"]
    client.hset(pk.volume, mapping={"60": 5, "120": 6})
    with pytest.raises(functions.Fenced):
        write(3, "hdel", pk.volume, "60")
    assert write(4, "hdel", pk.volume, "60") == 1
    assert client.hkeys(pk.volume) == [b"120"]
    # A missing log is not created (NOMKSTREAM), and its fence is left as it was.
    gone = keys.partition_keys(N)
    assert write(9, "xadd", gone.log, "e", b"x") is None
    assert client.exists(gone.log) == 0
    assert client.hget(gone.meta, "aggregator_fence") is None
    with pytest.raises(ResponseError, match="unknown aggregator op"):
        write(9, "del", pk.log, "x")


def test_init_again_with_the_same_count_keeps_the_logs(client: Client) -> None:
    init_deployment(client, N)
    entry = append(client, 1, b"kept")
    assert init_deployment(client, N).partitions == N
    assert PartitionStore(client, 1).read_range() == [(entry, b"kept")]


def test_init_with_a_different_count_is_refused(client: Client) -> None:
    init_deployment(client, 16)
    with pytest.raises(DeploymentMismatch) as raised:
        init_deployment(client, 8)
    assert str(raised.value) == (
        "deployment is initialised with 16 partitions; refusing to change to 8 "
        "(re-partitioning is a replay migration)"
    )
    deployment = load_deployment(client)
    assert deployment is not None
    assert deployment.partitions == 16


def test_init_stores_the_limits_it_is_asked_for_and_the_defaults_for_the_rest(
    client: Client,
) -> None:
    made = init_deployment(client, N, {"checkins_per_minute": 3})
    expected = replace(Limits(), checkins_per_minute=3)
    assert made.limits == expected
    loaded = load_deployment(client)
    assert loaded is not None and loaded.limits == expected
    assert client.hget(keys.DEPLOYMENT, "limit:checkins_per_minute") == b"3"
    # Asking for nothing, or for what is stored, agrees with the deployment.
    assert init_deployment(client, N).limits == expected
    assert init_deployment(client, N, {"checkins_per_minute": 3}).limits == expected


def test_init_with_other_limits_is_refused_and_the_stored_ones_stay(client: Client) -> None:
    init_deployment(client, N, {"checkins_per_minute": 3})
    with pytest.raises(DeploymentMismatch) as raised:
        init_deployment(client, N, {"checkins_per_minute": 10, "max_monitors_per_project": 5})
    assert str(raised.value) == (
        "deployment folds with other limits (checkins_per_minute is 3, not 10; "
        "max_monitors_per_project is 10000, not 5); refusing to change them: every worker "
        "and every replay of a log must fold with the same limits (changing them is a "
        "replay migration)"
    )
    loaded = load_deployment(client)
    assert loaded is not None
    assert loaded.limits == replace(Limits(), checkins_per_minute=3)


def test_a_deployment_from_before_stored_limits_folds_with_the_defaults_until_init_names_them(
    client: Client,
) -> None:
    init_deployment(client, N)
    client.hdel(keys.DEPLOYMENT, *[f"limit:{name}" for name in LIMIT_NAMES])
    loaded = load_deployment(client)
    assert loaded is not None and loaded.limits == Limits()
    again = init_deployment(client, N, {"max_environments_per_monitor": 7})
    assert again.limits == replace(Limits(), max_environments_per_monitor=7)


def test_a_refused_init_creates_no_partitions(client: Client) -> None:
    init_deployment(client, 2)
    with pytest.raises(DeploymentMismatch):
        init_deployment(client, 4)
    assert client.exists(keys.partition_keys(2).log, keys.partition_keys(3).log) == 0


# --- append and read ----------------------------------------------------------------------------


def test_append_to_an_uninitialised_deployment_raises_and_writes_nothing(client: Client) -> None:
    with pytest.raises(NotInitialised):
        append(client, 0, b"lost?")
    with pytest.raises(NotInitialised):
        append_many(client, [(0, b"a"), (1, b"b")])
    assert client.keys("*") == []


def test_append_returns_ids_that_read_range_returns_in_order(client: Client) -> None:
    init_deployment(client, N)
    ids = [append(client, 2, f"e{i}".encode()) for i in range(3)]
    explicit = append(client, 2, b"explicit", entry_id="99999999999999-0")
    store = PartitionStore(client, 2)
    expected = [(ids[0], b"e0"), (ids[1], b"e1"), (ids[2], b"e2"), (explicit, b"explicit")]
    assert store.read_range() == expected
    assert store.read_range(f"({ids[0]}", "+", 1) == [(ids[1], b"e1")]


def test_append_many_returns_one_id_per_item_in_item_order(client: Client) -> None:
    init_deployment(client, N)
    items = [(0, b"a"), (3, b"b"), (0, b"c")]
    ids = append_many(client, items)
    assert PartitionStore(client, 0).read_range() == [(ids[0], b"a"), (ids[2], b"c")]
    assert PartitionStore(client, 3).read_range() == [(ids[1], b"b")]


def test_broadcast_appends_the_payload_once_to_every_partition(client: Client) -> None:
    init_deployment(client, N)
    ids = broadcast(client, N, b"pulse")
    assert len(ids) == N
    for p in range(N):
        assert PartitionStore(client, p).read_range() == [(ids[p], b"pulse")]


def test_read_batch_delivers_each_new_entry_once(client: Client) -> None:
    store, _ = _ready(client)
    ids = [append(client, 0, f"e{i}".encode()) for i in range(5)]
    assert store.read_batch("c1", 3, None) == [(ids[i], f"e{i}".encode()) for i in range(3)]
    assert store.read_batch("c1", 10, 10) == [(ids[i], f"e{i}".encode()) for i in (3, 4)]
    assert store.read_batch("c1", 10, 10) == []
    assert store.read_batch("c1", 10, None) == []
    assert _pending(client) == 5


def test_claim_pending_takes_over_all_pending_entries_and_marks_deleted_ones(
    client: Client,
) -> None:
    store, _ = _ready(client)
    ids = [append(client, 0, f"e{i}".encode()) for i in range(25)]
    store.read_batch("dead", 25, None)
    client.xdel(store.keys.log, ids[4])
    # count=3 forces several XAUTOCLAIM rounds before the cursor returns to 0-0.
    claimed = store.claim_pending("heir", count=3)
    assert [entry_id for entry_id, _ in claimed] == ids
    assert claimed[4] == (ids[4], None)
    assert claimed[5] == (ids[5], b"e5")
    consumers = {
        as_text(c["name"]): c["pending"] for c in client.xinfo_consumers(store.keys.log, "reducer")
    }
    assert consumers["heir"] == 24
    assert consumers["dead"] == 0


# --- commit -------------------------------------------------------------------------------------


def test_commit_writes_every_section_and_acks_the_batch(client: Client) -> None:
    store, lease = _ready(client)
    ids = [append(client, 0, f"e{i}".encode()) for i in range(3)]
    store.read_batch("c1", 10, None)
    client.hset(store.keys.state, "gone", b"old")
    applied = store.commit(
        lease.token,
        ids[-1],
        state_set={"env-1": b"s1", b"env-2": b"s2"},
        state_del=["gone"],
        meta_set={"stream_ms": "123"},
        out=[b"o1", b"o2"],
        dlq=[DeadLetter(ids[0], "undecodable", 3, b"e0")],
        volume={28_000_000: 2, 28_000_001: 1},
        ack_ids=ids,
    )
    assert applied is True
    assert store.load_state() == {b"env-1": b"s1", b"env-2": b"s2"}
    meta = store.load_meta()
    assert meta[b"last_id"] == ids[-1].encode()
    assert meta[b"stream_ms"] == b"123"
    assert [payload for _, payload in store.read_out()] == [b"o1", b"o2"]
    assert [d for _, d in store.read_dlq()] == [DeadLetter(ids[0], "undecodable", 3, b"e0")]
    assert client.hgetall(store.keys.volume) == {b"28000000": b"2", b"28000001": b"1"}
    assert _pending(client) == 0


def test_a_batch_at_or_below_last_id_writes_nothing(client: Client) -> None:
    store, lease = _ready(client)
    ids = [append(client, 0, b"x") for _ in range(2)]
    store.read_batch("c1", 10, None)
    batch = {"state_set": {"e": b"s"}, "out": [b"o"], "volume": {1: 2}, "ack_ids": ids}
    assert store.commit(lease.token, ids[-1], **batch) is True  # type: ignore[arg-type]
    client.hset(store.keys.state, "e", b"changed-later")
    assert store.commit(lease.token, ids[-1], **batch) is False  # type: ignore[arg-type]
    assert store.commit(lease.token, ids[0], **batch) is False  # type: ignore[arg-type]
    assert store.load_state() == {b"e": b"changed-later"}
    assert len(store.read_out()) == 1
    assert client.hgetall(store.keys.volume) == {b"1": b"2"}


def test_a_duplicate_batch_still_acks_its_pending_entries(client: Client) -> None:
    store, lease = _ready(client)
    first = append(client, 0, b"a")
    store.read_batch("c1", 10, None)
    client.hset(store.keys.meta, "last_id", first)  # applied (say, by an older version)
    assert _pending(client) == 1
    assert store.commit(lease.token, first, ack_ids=[first]) is False
    assert _pending(client) == 0


@pytest.mark.parametrize(
    ("last_id", "batch_last_id", "applies"),
    [
        ("9999999999999-0", "10000000000000-0", True),  # as strings "1..." < "9..."
        ("5-10", "5-9", False),  # as strings "5-9" > "5-10"
        ("5-9", "5-10", True),
        ("5-9", "5-9", False),
        ("0-1", "00-2", True),  # leading zeros do not change the number
    ],
)
def test_commit_compares_stream_ids_numerically(
    client: Client, last_id: str, batch_last_id: str, applies: bool
) -> None:
    store, lease = _ready(client)
    client.hset(store.keys.meta, "last_id", last_id)
    assert store.commit(lease.token, batch_last_id, out=[b"o"]) is applies
    assert len(store.read_out()) == (1 if applies else 0)


def test_a_stale_token_is_fenced_and_writes_nothing(client: Client) -> None:
    store, first = _ready(client)
    leases = LeaseClient(client, "w1", 10_000)
    assert leases.release(first)
    second = leases.acquire(0)
    assert second is not None
    assert second.token == first.token + 1
    entry = append(client, 0, b"x")
    store.read_batch("c1", 10, None)
    with pytest.raises(functions.Fenced, match=r"^FENCED"):
        store.commit(first.token, entry, state_set={"e": b"s"}, out=[b"o"], ack_ids=[entry])
    assert store.load_state() == {}
    assert store.read_out() == []
    assert b"last_id" not in store.load_meta()
    assert _pending(client) == 1


@pytest.mark.parametrize("field", ["last_id", "fence", "fail:1-0"])
def test_commit_may_not_set_fields_that_only_the_functions_write(
    client: Client, field: str
) -> None:
    store, lease = _ready(client)
    with pytest.raises(ResponseError, match="reserved meta field"):
        store.commit(lease.token, "1-0", meta_set={field: "9"}, out=[b"o"])
    assert store.read_out() == []
    assert b"last_id" not in store.load_meta()


def test_failures_are_counted_per_entry_and_cleared_when_dead_lettered(client: Client) -> None:
    store, lease = _ready(client)
    poison = append(client, 0, b"poison")
    assert [store.record_failure(lease.token, poison) for _ in range(3)] == [1, 2, 3]
    assert store.load_meta()[keys.fail_field(poison).encode()] == b"3"
    dead = DeadLetter(poison, "reducer raised ValueError", 3, b"poison")
    assert store.commit(lease.token, poison, dlq=[dead], ack_ids=[poison])
    assert keys.fail_field(poison).encode() not in store.load_meta()
    assert [d for _, d in store.read_dlq()] == [dead]


def test_a_failure_counter_is_cleared_when_its_entry_is_applied(client: Client) -> None:
    store, lease = _ready(client)
    flaky, other = append(client, 0, b"flaky"), append(client, 0, b"other")
    store.record_failure(lease.token, flaky)
    store.record_failure(lease.token, other)
    assert store.commit(lease.token, flaky, ack_ids=[flaky])
    meta = store.load_meta()
    assert keys.fail_field(flaky).encode() not in meta
    assert meta[keys.fail_field(other).encode()] == b"1"


def test_record_failure_with_a_stale_token_is_fenced(client: Client) -> None:
    store, lease = _ready(client)
    leases = LeaseClient(client, "w1", 10_000)
    leases.release(lease)
    assert leases.acquire(0) is not None
    with pytest.raises(functions.Fenced):
        store.record_failure(lease.token, "1-0")
    assert keys.fail_field("1-0").encode() not in store.load_meta()


def test_commit_acks_more_ids_than_one_xack_chunk(client: Client) -> None:
    store, lease = _ready(client)
    ids = append_many(client, [(0, b"x")] * 2500)
    assert len(store.read_batch("c1", 2500, None)) == 2500
    assert store.commit(lease.token, ids[-1], ack_ids=ids)
    assert _pending(client) == 0


def test_load_state_returns_every_field_across_scan_pages(client: Client) -> None:
    store, lease = _ready(client)
    state = {f"env-{i}": f"blob-{i}".encode() for i in range(1500)}
    assert store.commit(lease.token, "1-0", state_set=state)
    assert store.load_state(page=100) == {k.encode(): v for k, v in state.items()}


# --- leases ---------------------------------------------------------------------------------------


def test_acquiring_a_free_lease_stamps_its_token_into_meta(client: Client) -> None:
    init_deployment(client, N)
    lease = LeaseClient(client, "w1", 10_000).acquire(3)
    assert lease == Lease(3, 1)
    assert PartitionStore(client, 3).load_meta()[b"fence"] == b"1"
    assert client.get(keys.partition_keys(3).lease) == b"w1 1"
    assert 0 < client.pttl(keys.partition_keys(3).lease) <= 10_000


def test_the_holder_reacquires_its_own_lease_with_the_same_token(loaded: Client) -> None:
    leases = LeaseClient(loaded, "w1", 10_000)
    first = leases.acquire(0)
    assert leases.acquire(0) == first


def test_a_lease_held_by_another_worker_is_not_acquired(loaded: Client) -> None:
    assert LeaseClient(loaded, "w1", 10_000).acquire(0) is not None
    assert LeaseClient(loaded, "w2", 10_000).acquire(0) is None
    assert PartitionStore(loaded, 0).load_meta()[b"fence"] == b"1"


def test_renew_and_release_need_both_owner_and_token(loaded: Client) -> None:
    mine, theirs = LeaseClient(loaded, "w1", 10_000), LeaseClient(loaded, "w2", 10_000)
    lease = mine.acquire(0)
    assert lease is not None
    stale = Lease(0, lease.token + 1)
    assert not theirs.renew(lease)
    assert not theirs.release(lease)
    assert not mine.renew(stale)
    assert not mine.release(stale)
    assert mine.renew(lease)
    assert mine.release(lease)
    assert loaded.exists(keys.partition_keys(0).lease) == 0
    assert not mine.renew(lease)


def test_an_expired_lease_goes_to_the_next_worker_with_a_higher_token(loaded: Client) -> None:
    first = LeaseClient(loaded, "w1", 50).acquire(0)
    assert first is not None
    time.sleep(0.12)
    second = LeaseClient(loaded, "w2", 10_000).acquire(0)
    assert second == Lease(0, first.token + 1)
    assert not LeaseClient(loaded, "w1", 50).renew(first)


def test_only_one_pulser_holds_the_pulser_lease(loaded: Client) -> None:
    a, b = LeaseClient(loaded, "a", 10_000), LeaseClient(loaded, "b", 10_000)
    token = a.acquire_pulser()
    assert token == 1
    assert b.acquire_pulser() is None
    assert a.renew_pulser(token)
    assert not b.release_pulser(token)
    assert a.release_pulser(token)
    assert b.acquire_pulser() == 2


def test_live_workers_are_those_with_a_heartbeat_within_one_ttl_of_server_time(
    loaded: Client,
) -> None:
    a, b = LeaseClient(loaded, "a", 1_000), LeaseClient(loaded, "b", 1_000)
    assert a.heartbeat() == ["a"]
    assert b.heartbeat() == ["a", "b"]
    # Scores are the server's milliseconds, whatever the workers' own clocks say.
    seconds, micros = loaded.time()
    server_ms = seconds * 1000 + micros // 1000
    scores = dict(loaded.zrange(keys.WORKERS, 0, -1, withscores=True))
    assert all(abs(score - server_ms) < 1_000 for score in scores.values())
    # A worker last seen more than a ttl ago (by server time) is forgotten at the next beat.
    loaded.zadd(keys.WORKERS, {"gone": server_ms - 5_000})
    assert b.heartbeat() == ["a", "b"]
    assert loaded.zscore(keys.WORKERS, "gone") is None
    b.leave()
    assert a.heartbeat() == ["a"]


@pytest.mark.parametrize(
    ("partitions", "live", "share"), [(16, 1, 16), (16, 3, 6), (16, 16, 1), (16, 20, 1), (8, 0, 8)]
)
def test_fair_share_is_the_ceiling_of_partitions_per_live_worker(
    partitions: int, live: int, share: int
) -> None:
    assert fair_share(partitions, live) == share


def test_lease_owner_must_not_contain_whitespace(client: Client) -> None:
    with pytest.raises(ValueError, match="whitespace"):
        LeaseClient(client, "host 1", 1_000)
