"""The monitor-es Redis Functions library: loading it and calling its functions."""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis import Redis
from redis.cluster import RedisCluster
from redis.exceptions import ResponseError

from monitor_es.store.connection import Client, as_text

LIBRARY_NAME = "mes_v1"
COMMIT = "mes_commit_v1"
FAIL = "mes_fail_v1"
LEASE_ACQUIRE = "mes_lease_acquire_v1"
LEASE_RENEW = "mes_lease_renew_v1"
LEASE_RELEASE = "mes_lease_release_v1"
AGGREGATOR_WRITE = "mes_aggregator_write_v2"
HEARTBEAT = "mes_heartbeat_v1"

_FENCED_PREFIX = "FENCED"
_GAP_PREFIX = "GAP"


class Fenced(Exception):
    """A write was refused because a newer lease owner holds a higher fencing token."""


class Gap(Exception):
    """A commit was refused: an entry below its last id was read but is neither in it nor
    acknowledged (its read reply was lost), so the high-water mark must not pass it."""


def library_code() -> str:
    """Return the Lua source of the library, shipped as package data."""
    return resources.files("monitor_es.store").joinpath("functions.lua").read_text(encoding="utf-8")


def load_functions(client: Client) -> str:
    """Load (or replace) the library; a RedisCluster client sends it to every primary."""
    # FUNCTION LOAD REPLACE is idempotent, and Functions persist and replicate with the data.
    client.function_load(library_code(), replace=True)
    return LIBRARY_NAME


def fcall(client: Client, function: str, keys: list[str], args: list[Any]) -> Any:
    """Call one of the library's functions, turning a FENCED error reply into ``Fenced``."""
    try:
        return client.fcall(function, len(keys), *keys, *args)
    except ResponseError as exc:
        raise fenced_or(exc) from exc


def fenced_or(exc: ResponseError) -> Exception:
    """The exception an error reply stands for: ``Fenced``, ``Gap``, else itself."""
    message = str(exc)
    if message.startswith(_FENCED_PREFIX):
        return Fenced(message)
    if message.startswith(_GAP_PREFIX):
        return Gap(message)
    return exc


# Every function this monitor-es calls; a deployment's library may predate some of them.
REQUIRED = frozenset({COMMIT, FAIL, LEASE_ACQUIRE, LEASE_RENEW, LEASE_RELEASE, AGGREGATOR_WRITE,
                      HEARTBEAT})  # fmt: skip


class LibraryOutdated(Exception):
    """The deployment's Functions library lacks functions this monitor-es calls."""


def require_functions(client: Client) -> None:
    """Raises LibraryOutdated unless every node holds every function this version calls."""
    if isinstance(client, RedisCluster):
        primaries = client.get_primaries()  # type: ignore[no-untyped-call]
        nodes = [client.get_redis_connection(node) for node in primaries]
    else:
        nodes = [client]
    for node in nodes:
        missing = REQUIRED - loaded_functions(node)
        if missing:
            raise LibraryOutdated(
                f"the deployment's Redis Functions lack {', '.join(sorted(missing))}: "
                "run `monitor-es init` again after upgrading (it reloads them)"
            )


def loaded_functions(node: Redis) -> set[str]:
    """Return the names of this library's functions loaded on one node (empty if none)."""
    names: set[str] = set()
    for library in node.function_list(library=LIBRARY_NAME):
        # RESP2 replies are flat [key, value, ...] lists, at both levels.
        fields = dict(zip(library[::2], library[1::2], strict=True))
        if fields.get(b"library_name") != LIBRARY_NAME.encode():
            continue
        for function in fields.get(b"functions", []):
            info = dict(zip(function[::2], function[1::2], strict=True))
            names.add(as_text(info[b"name"]))
    return names
