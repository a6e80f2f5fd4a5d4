"""Redis clients: embedded fakeredis, a standalone Redis, or a Redis Cluster."""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import fakeredis
from redis import Redis
from redis.cluster import RedisCluster
from redis.connection import URL_QUERY_ARGUMENT_PARSERS, Connection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Every store function accepts either client; keys.py keeps each commit in one slot.
Client = Redis | RedisCluster

# Redis is unreachable, restarting (LOADING is a redis ConnectionError) or the connection
# broke with a command in flight (pipe.PipeBroken is a builtin ConnectionError): the command's
# outcome is unknown. Long-running processes reload what they need from Redis and go on.
UNAVAILABLE: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
)
# Any failed Redis call: unavailable, or an error reply.
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, *UNAVAILABLE)

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
URL_FORMS = "redis://[USER:PASSWORD@]HOST:PORT[/DB], rediss://..., unix:///PATH or redis+cluster://HOST:PORT"
# The embedded server speaks Redis 7.0, the oldest version monitor-es supports.
EMBEDDED_VERSION = (7, 0)

# Without timeouts a peer that never answers (a network partition, a frozen VM: no RST)
# hangs a worker in recv() forever; with them the call fails as unavailable and the worker
# reconnects and reloads. The read timeout must exceed the longest blocking read (at most a
# quarter of the lease TTL, 1 s by default) and the slowest commit. Keepalive lets the
# kernel drop a dead idle connection. URL query parameters override these
# (`?socket_timeout=60`): redis-py lets the URL win over keyword arguments.
SOCKET_DEFAULTS: dict[str, Any] = {
    "socket_timeout": 30.0,
    "socket_connect_timeout": 5.0,
    "socket_keepalive": True,
    # No health_check_interval: its PING would read a reply pipelined ahead of it (pipe.py).
}

_embedded_lock = threading.Lock()
_embedded_server: fakeredis.FakeServer | None = None


def embedded_server() -> fakeredis.FakeServer:
    """Return this process's one embedded fakeredis server, created on first use."""
    global _embedded_server  # noqa: PLW0603 - one in-process server, shared like a real one
    with _embedded_lock:
        if _embedded_server is None:
            _embedded_server = fakeredis.FakeServer(version=EMBEDDED_VERSION)
        return _embedded_server


class InvalidRedisURL(ValueError):
    """A Redis URL that redis-py would refuse, or read otherwise than it says."""


def check_url(url: str) -> str:
    """Return ``url`` if a client can be made of it; raise ``InvalidRedisURL`` saying why.

    It connects to nothing. redis-py alone would accept some mistakes silently (a database
    that is not a number selects database 0) or only fail at the first command.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in {"redis", "rediss", "unix", *CLUSTER_SCHEMES}:
        raise InvalidRedisURL(f"not a Redis URL: {safe_url(url)!r} (expected {URL_FORMS})")
    plain = f"{CLUSTER_SCHEMES.get(scheme, scheme)}://{rest}"
    try:
        options: dict[str, Any] = parse_url(plain)  # type: ignore[no-untyped-call]
        parts = urlsplit(plain)
        parts.port  # noqa: B018 - parse_url reads the port only when there is a host
    except ValueError as exc:
        raise InvalidRedisURL(f"bad Redis URL {safe_url(url)!r}: {exc}") from None
    database = parts.path.strip("/")
    if scheme != "unix" and database and not database.isdigit():
        raise InvalidRedisURL(
            f"bad Redis URL {safe_url(url)!r}: the database after the last / must be a number"
        )
    known = _options(options.get("connection_class", Connection))
    if scheme in CLUSTER_SCHEMES:
        known |= _options(RedisCluster)
    unknown = sorted(set(parse_qs(parts.query)) - known)
    if unknown:
        raise InvalidRedisURL(
            f"bad Redis URL {safe_url(url)!r}: unknown parameter {', '.join(unknown)}"
        )
    return url


def _options(client_class: type) -> set[str]:
    """The keyword arguments ``client_class`` (and its bases) accept: URL query parameters."""
    names = set(URL_QUERY_ARGUMENT_PARSERS)
    for cls in client_class.__mro__:
        init = cls.__dict__.get("__init__")
        if init is not None:
            names.update(inspect.signature(init).parameters)
    return names - {"self", "args", "kwargs"}


def connect(
    url: str | None, *, cluster: bool = False, socket: Mapping[str, Any] = SOCKET_DEFAULTS
) -> Client:
    """Return a client for ``url``: None embeds fakeredis, ``redis+cluster://`` is a cluster.

    ``socket`` gives the timeouts (and retries) the URL does not set. A malformed URL
    raises ``InvalidRedisURL``; nothing is connected before the first command.
    """
    # decode_responses stays False everywhere: payloads and state blobs are binary.
    if url is None:
        # No URL: `monitor-es run` works with no server at all. One FakeServer per process, so
        # every part of it sees the same data; other processes cannot see it.
        return fakeredis.FakeRedis(server=embedded_server(), version=EMBEDDED_VERSION)
    check_url(url)
    scheme, _, rest = url.partition("://")
    if scheme in CLUSTER_SCHEMES:
        # A plain redis:// URL cannot say "cluster", and the two clients route differently,
        # so the scheme (or cluster=True) chooses the client class.
        return RedisCluster.from_url(
            f"{CLUSTER_SCHEMES[scheme]}://{rest}", decode_responses=False, **socket
        )
    if cluster:
        return RedisCluster.from_url(url, decode_responses=False, **socket)
    return Redis.from_url(url, decode_responses=False, **socket)


def safe_url(url: str | None) -> str:
    """``url`` with its password masked, for messages and logs."""
    if url is None:
        return "the embedded in-process Redis"
    parts = urlsplit(url)
    # redis-py also takes the password as a query parameter (`?password=...`).
    query = re.sub(r"(^|&)password=[^&]*", r"\1password=***", parts.query)
    if parts.password is None and query == parts.query:
        return url
    parts = parts._replace(query=query)
    if parts.password is not None:
        netloc = parts.netloc.rpartition("@")[2]
        user = f"{parts.username}:***@" if parts.username else ":***@"
        parts = parts._replace(netloc=user + netloc)
    return urlunsplit(parts)


def as_bytes(value: bytes | str | int | float) -> bytes:
    """Return a reply value as bytes (redis-py types replies as ``bytes | str``)."""
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def as_text(value: object) -> str:
    """Return a reply value (an entry id, a member) as text."""
    if value is None:
        raise ValueError("unexpected nil in a Redis reply")
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def bytes_map(mapping: Mapping[Any, Any] | None) -> dict[bytes, bytes]:
    """Return a hash reply as a ``bytes -> bytes`` dict."""
    return {as_bytes(k): as_bytes(v) for k, v in (mapping or {}).items()}
