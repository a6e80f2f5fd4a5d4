"""The store on a real local 3-node Redis Cluster."""

from __future__ import annotations

import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot

from monitor_es.store import functions, keys
from monitor_es.store.connection import as_text, connect
from monitor_es.store.deployment import init_deployment, load_deployment
from monitor_es.store.leases import LeaseClient
from monitor_es.store.log import PartitionStore, append, append_many, broadcast

pytestmark = pytest.mark.cluster

N = 16


def _node_of(client: RedisCluster, key: str) -> str:
    node = client.get_node_from_key(key)
    assert node is not None
    return str(node.name)


def test_connect_with_the_cluster_scheme_returns_a_cluster_client(redis_cluster: str) -> None:
    client = connect(redis_cluster)
    try:
        assert isinstance(client, RedisCluster)
        assert len(client.get_primaries()) == 3
    finally:
        client.close()


def test_connect_with_cluster_true_returns_a_cluster_client(redis_cluster: str) -> None:
    client = connect(redis_cluster.replace("redis+cluster://", "redis://"), cluster=True)
    try:
        assert isinstance(client, RedisCluster)
    finally:
        client.close()


def test_every_key_of_a_partition_is_in_one_slot(cluster_client: RedisCluster) -> None:
    for p in range(N):
        slots = {int(cluster_client.cluster_keyslot(key)) for key in keys.partition_keys(p).all()}
        assert slots == {key_slot(keys.partition_keys(p).log.encode())}
    pulser = {int(cluster_client.cluster_keyslot(k)) for k in (keys.PULSER_LEASE, keys.PULSER_META)}
    assert len(pulser) == 1


def test_init_loads_the_functions_on_every_primary(cluster_client: RedisCluster) -> None:
    init_deployment(cluster_client, N)
    primaries = cluster_client.get_primaries()
    assert len(primaries) == 3
    for node in primaries:
        loaded = functions.loaded_functions(cluster_client.get_redis_connection(node))
        assert loaded >= functions.REQUIRED, node.name
    assert load_deployment(cluster_client) is not None
    functions.require_functions(cluster_client)
    # One primary that missed the library (added to the cluster after init) is found.
    cluster_client.get_redis_connection(primaries[2]).function_delete(functions.LIBRARY_NAME)
    with pytest.raises(functions.LibraryOutdated):
        functions.require_functions(cluster_client)
    init_deployment(cluster_client, N)
    functions.require_functions(cluster_client)


def test_leases_and_commits_work_for_partitions_on_every_node(
    cluster_client: RedisCluster,
) -> None:
    init_deployment(cluster_client, N)
    leases = LeaseClient(cluster_client, "worker-1", 10_000)
    nodes = {_node_of(cluster_client, keys.partition_keys(p).log) for p in range(N)}
    assert len(nodes) == 3
    for p in range(N):
        lease = leases.acquire(p)
        assert lease is not None
        store = PartitionStore(cluster_client, p)
        entry = append(cluster_client, p, f"check-in {p}".encode())
        assert store.read_batch("worker-1", 10, None) == [(entry, f"check-in {p}".encode())]
        assert store.commit(
            lease.token,
            entry,
            state_set={"env": f"state {p}".encode()},
            out=[b"o"],
            ack_ids=[entry],
        )
        assert not store.commit(lease.token, entry, out=[b"o"], ack_ids=[entry])
        assert store.load_state() == {b"env": f"state {p}".encode()}
        assert len(store.read_out()) == 1
        assert leases.release(lease)


def test_append_many_spans_slots_on_every_node_in_one_call(cluster_client: RedisCluster) -> None:
    init_deployment(cluster_client, N)
    items = [(p, f"pulse {p}".encode()) for p in range(N)] * 2
    ids = append_many(cluster_client, items)
    assert len(ids) == 2 * N
    for p in range(N):
        assert PartitionStore(cluster_client, p).read_range() == [
            (ids[p], f"pulse {p}".encode()),
            (ids[N + p], f"pulse {p}".encode()),
        ]
    assert len(broadcast(cluster_client, N, b"decision")) == N


def test_the_pulser_lease_works_on_a_cluster(cluster_client: RedisCluster) -> None:
    functions.load_functions(cluster_client)
    a, b = LeaseClient(cluster_client, "a", 10_000), LeaseClient(cluster_client, "b", 10_000)
    token = a.acquire_pulser()
    assert token is not None
    assert b.acquire_pulser() is None
    assert a.release_pulser(token)
    assert as_text(cluster_client.hget(keys.PULSER_META, keys.META_FENCE)) == str(token)
