"""Redis fixtures: embedded fakeredis, a real redis-server, an AOF server and a 3-node cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
import redis
from redis.cluster import RedisCluster
from redis_process import RedisProcess, free_cluster_port, free_port

from monitor_es.store.connection import EMBEDDED_VERSION, Client, connect

_START_TIMEOUT_S = 10.0
_CLUSTER_NODE_CONFIG = {
    "appendonly": "no",
    "cluster-enabled": "yes",
    "cluster-config-file": "nodes.conf",
    "cluster-node-timeout": "5000",
}


def _require_binary(name: str) -> str:
    """Return the path of ``name``; fail in CI (the suite must run there), skip elsewhere."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not on PATH; the real-Redis tests need it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _flush(client: Client) -> None:
    client.flushall()
    client.function_flush()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for the whole session, without persistence; yields its URL."""
    binary = _require_binary("redis-server")
    config = {"appendonly": "no"}
    server = RedisProcess(binary, free_port(), tmp_path_factory.mktemp("redis"), config)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_aof_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A real redis-server with ``appendfsync always``; ``restart()`` keeps its dir and port."""
    binary = _require_binary("redis-server")
    config = {"appendonly": "yes", "appendfsync": "always"}
    server = RedisProcess(binary, free_port(), tmp_path / "redis-aof", config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _cluster_ready(ports: list[int]) -> bool:
    for port in ports:
        node = redis.Redis(port=port, decode_responses=True)
        try:
            text = node.execute_command("CLUSTER", "INFO")
        finally:
            node.close()
        info = dict(line.split(":", 1) for line in str(text).split() if ":" in line)
        if info.get("cluster_state") != "ok" or info.get("cluster_known_nodes") != "3":
            return False
    return True


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real local 3-node Redis Cluster (no replicas); yields a redis+cluster:// URL."""
    binary = _require_binary("redis-server")
    cli = _require_binary("redis-cli")
    base = tmp_path_factory.mktemp("cluster")
    nodes: list[RedisProcess] = []
    try:
        for _ in range(3):
            port = free_cluster_port()
            nodes.append(RedisProcess(binary, port, base / str(port), _CLUSTER_NODE_CONFIG))
            nodes[-1].start()
        ports = [node.port for node in nodes]
        nodes_addresses = [f"127.0.0.1:{p}" for p in ports]
        create = [cli, "--cluster", "create", *nodes_addresses, "--cluster-replicas", "0"]
        created = subprocess.run(
            [*create, "--cluster-yes"], capture_output=True, text=True, timeout=30, check=False
        )
        if created.returncode != 0:
            raise RuntimeError(f"cluster create failed:\n{created.stdout}{created.stderr}")
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _cluster_ready(ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the local cluster did not reach cluster_state:ok")
            time.sleep(0.05)
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture
def cluster_client(redis_cluster: str) -> Iterator[RedisCluster]:
    """A client of the session cluster, emptied (data and Functions) on every primary."""
    client = connect(redis_cluster)
    assert isinstance(client, RedisCluster)
    _flush(client)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def fake_client() -> Iterator[fakeredis.FakeRedis]:
    """A fakeredis client on a fresh FakeServer speaking Redis 7.0."""
    server = fakeredis.FakeServer(version=EMBEDDED_VERSION)
    client = fakeredis.FakeRedis(server=server, version=EMBEDDED_VERSION)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def real_client(redis_server: str) -> Iterator[redis.Redis]:
    """A client of the session redis-server, emptied (data and Functions) before the test."""
    client = redis.Redis.from_url(redis_server)
    _flush(client)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.redis)])
def client(request: pytest.FixtureRequest) -> Client:
    """The contract-suite client: each test runs on fakeredis and on a real redis-server."""
    name = "fake_client" if request.param == "fake" else "real_client"
    backend: Client = request.getfixturevalue(name)
    return backend
