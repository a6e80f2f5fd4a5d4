"""Recovery paths of the store on a real redis-server: zombies, redelivery, takeover, restarts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Protocol

import pytest
import redis

from monitor_es.store import keys
from monitor_es.store.connection import as_text
from monitor_es.store.deployment import init_deployment, load_deployment
from monitor_es.store.functions import Fenced
from monitor_es.store.leases import Lease, LeaseClient
from monitor_es.store.log import PartitionStore, append, append_many

pytestmark = pytest.mark.redis


class RestartableServer(Protocol):
    """What the ``redis_aof_server`` fixture offers."""

    @property
    def url(self) -> str: ...

    def restart(self, *, crash: bool = False) -> None: ...


# Short enough to let a lease lapse in a test, long enough not to lapse by accident.
SHORT_TTL_MS = 100


def _expire(lease_client: LeaseClient) -> None:
    time.sleep(lease_client.ttl_ms * 1.5 / 1000)


def _pending_by_consumer(client: redis.Redis, partition: int = 0) -> dict[str, int]:
    log = keys.partition_keys(partition).log
    return {
        as_text(c["name"]): int(c["pending"])
        for c in client.xinfo_consumers(log, keys.REDUCER_GROUP)
    }


def _take_over(client: redis.Redis, owner: str) -> Lease:
    lease = LeaseClient(client, owner, 10_000).acquire(0)
    assert lease is not None
    return lease


@pytest.fixture
def zombie_setup(real_client: redis.Redis) -> tuple[redis.Redis, Lease, list[str]]:
    """Worker A holds partition 0, has read three entries, and then stalls past its ttl."""
    init_deployment(real_client, 2)
    a = LeaseClient(real_client, "worker-a", SHORT_TTL_MS)
    lease_a = a.acquire(0)
    assert lease_a is not None
    ids = [append(real_client, 0, f"e{i}".encode()) for i in range(3)]
    assert len(PartitionStore(real_client, 0).read_batch("a", 10, None)) == 3
    _expire(a)
    return real_client, lease_a, ids


def test_a_zombie_is_fenced_before_the_new_owners_first_commit(
    zombie_setup: tuple[redis.Redis, Lease, list[str]],
) -> None:
    client, lease_a, ids = zombie_setup
    lease_b = _take_over(client, "worker-b")
    assert lease_b.token == lease_a.token + 1
    store = PartitionStore(client, 0)
    # B has not committed anything yet; acquiring alone must already fence A.
    with pytest.raises(Fenced):
        store.commit(lease_a.token, ids[-1], state_set={"env": b"from-a"}, out=[b"a"], ack_ids=ids)
    assert store.load_state() == {}
    assert store.read_out() == []
    assert b"last_id" not in store.load_meta()
    assert _pending_by_consumer(client) == {"a": 3}


def test_a_zombie_is_fenced_after_the_new_owners_commit(
    zombie_setup: tuple[redis.Redis, Lease, list[str]],
) -> None:
    client, lease_a, ids = zombie_setup
    lease_b = _take_over(client, "worker-b")
    store = PartitionStore(client, 0)
    claimed = store.claim_pending("b")
    assert [entry_id for entry_id, _ in claimed] == ids
    assert store.commit(
        lease_b.token, ids[-1], state_set={"env": b"from-b"}, out=[b"b"], ack_ids=ids
    )
    with pytest.raises(Fenced):
        store.commit(lease_a.token, ids[-1], state_set={"env": b"from-a"}, out=[b"a"], ack_ids=ids)
    with pytest.raises(Fenced):
        store.record_failure(lease_a.token, ids[0])
    assert store.load_state() == {b"env": b"from-b"}
    assert [payload for _, payload in store.read_out()] == [b"b"]
    assert store.load_meta()[b"last_id"] == ids[-1].encode()


def test_a_crash_between_read_and_commit_is_applied_once_by_the_next_owner(
    zombie_setup: tuple[redis.Redis, Lease, list[str]],
) -> None:
    client, _, ids = zombie_setup
    lease_b = _take_over(client, "worker-b")
    store = PartitionStore(client, 0)
    claimed = store.claim_pending("b")
    assert claimed == [(ids[i], f"e{i}".encode()) for i in range(3)]
    assert store.commit(lease_b.token, ids[-1], out=[b"derived"], volume={7: 3}, ack_ids=ids)
    assert store.read_out()[0][1] == b"derived"
    assert len(store.read_out()) == 1
    assert client.hgetall(store.keys.volume) == {b"7": b"3"}
    assert _pending_by_consumer(client) == {"a": 0, "b": 0}


def test_a_redelivered_batch_writes_nothing_twice(real_client: redis.Redis) -> None:
    init_deployment(real_client, 1)
    lease = _take_over(real_client, "worker-a")
    store = PartitionStore(real_client, 0)
    ids = append_many(real_client, [(0, b"x")] * 4)
    store.read_batch("a", 10, None)
    batch = {
        "state_set": {"env": b"v1"},
        "out": [b"opened"],
        "volume": {100: 4},
        "ack_ids": ids,
    }
    assert store.commit(lease.token, ids[-1], **batch)  # type: ignore[arg-type]
    # The reply was lost, say, so the worker retries the very same commit after taking over.
    lease_again = _take_over(real_client, "worker-a")
    assert lease_again == lease
    assert not store.commit(lease.token, ids[-1], **batch)  # type: ignore[arg-type]
    assert [payload for _, payload in store.read_out()] == [b"opened"]
    assert real_client.hgetall(store.keys.volume) == {b"100": b"4"}
    assert store.claim_pending("a") == []


def test_xautoclaim_takes_over_every_pending_entry_of_a_dead_consumer(
    real_client: redis.Redis,
) -> None:
    init_deployment(real_client, 1)
    store = PartitionStore(real_client, 0)
    ids = append_many(real_client, [(0, f"e{i}".encode()) for i in range(250)])
    assert len(store.read_batch("dead", 250, None)) == 250
    real_client.xdel(store.keys.log, ids[10], ids[200])
    # count=40 scans at most 400 PEL entries per call, so the cursor loop must run.
    claimed = store.claim_pending("heir", count=40)
    assert [entry_id for entry_id, _ in claimed] == ids
    assert {i for i, payload in claimed if payload is None} == {ids[10], ids[200]}
    assert _pending_by_consumer(real_client) == {"dead": 0, "heir": 248}
    # Claiming with min-idle 0 moves ownership without waiting for the entries to go idle.
    assert store.claim_pending("heir-2") == [(i, p) for i, p in claimed if p is not None]


@pytest.fixture
def aof_client(redis_aof_server: RestartableServer) -> Iterator[redis.Redis]:
    """A client of the AOF server; it reconnects by itself after a restart."""
    client = redis.Redis.from_url(redis_aof_server.url)
    try:
        yield client
    finally:
        client.close()


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
def test_a_restart_with_aof_loses_nothing_acknowledged(
    redis_aof_server: RestartableServer, aof_client: redis.Redis, crash: bool
) -> None:
    init_deployment(aof_client, 2)
    lease = _take_over(aof_client, "worker-a")
    store = PartitionStore(aof_client, 0)
    ids = append_many(aof_client, [(0, b"a"), (0, b"b"), (0, b"c")])
    store.read_batch("a", 2, None)
    assert store.commit(lease.token, ids[1], state_set={"env": b"s"}, out=[b"o"], ack_ids=ids[:2])

    redis_aof_server.restart(crash=crash)

    assert load_deployment(aof_client) is not None
    assert store.load_state() == {b"env": b"s"}
    assert store.load_meta()[b"last_id"] == ids[1].encode()
    assert store.load_meta()[b"fence"] == str(lease.token).encode()
    assert [payload for _, payload in store.read_out()] == [b"o"]
    assert store.read_batch("a", 10, None) == [(ids[2], b"c")]
    # The Functions persisted with the data: the owner commits on without reloading them.
    assert store.commit(lease.token, ids[2], ack_ids=[ids[2]])
    assert _pending_by_consumer(aof_client) == {"a": 0}
