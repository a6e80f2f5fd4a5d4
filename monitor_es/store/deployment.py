"""Deployment initialisation: partition count, streams, consumer groups and Functions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from redis.exceptions import ResponseError

from monitor_es.domain.partition import Limits
from monitor_es.store import keys
from monitor_es.store.connection import Client, as_text, bytes_map
from monitor_es.store.functions import load_functions

SCHEMA_VERSION = 1

_PARTITIONS = "partitions"
_SCHEMA = "schema_version"
_CREATED = "created"
# Limits are part of the fold (a rate limit decides which check-ins are accepted), so every
# worker and every replay of a deployment must use the same ones: they are stored with it.
_LIMIT_PREFIX = "limit:"
LIMIT_NAMES = tuple(f.name for f in fields(Limits))
# A throwaway group whose MKSTREAM creates an empty out stream; it is destroyed at once.
_INIT_GROUP = "mes-init"


class NotInitialised(Exception):
    """The deployment (or the partition written to) has not been initialised."""


class DeploymentMismatch(Exception):
    """The deployment was initialised with settings that this call would contradict."""


class ForeignData(Exception):
    """A key monitor-es uses holds something monitor-es did not write there."""


def _foreign(key: str, what: str) -> ForeignData:
    return ForeignData(
        f"key {key} holds {what}, not monitor-es data: this database is used by something "
        "else; point --redis-url at another database (redis://host:port/N) or delete the key"
    )


def _wrong_type(exc: Exception) -> bool:
    return isinstance(exc, ResponseError) and str(exc).startswith("WRONGTYPE")


def _number(stored: dict[bytes, bytes], field: str) -> int:
    value = stored[field.encode()]
    try:
        return int(value)
    except ValueError:
        raise _foreign(keys.DEPLOYMENT, f"{field} = {value!r}") from None


@dataclass(frozen=True, slots=True)
class Deployment:
    """The fixed settings of a deployment."""

    partitions: int
    schema_version: int
    limits: Limits


def init_deployment(
    client: Client, partitions: int, limits: Mapping[str, int] | None = None
) -> Deployment:
    """Initialise the deployment, or check an existing one against what this call asks.

    ``limits`` names the `Limits` fields the caller asks for; the first init stores them
    (the defaults for the others) and later calls must agree with what is stored.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    asked = dict(limits or {})
    wanted = replace(Limits(), **asked)  # TypeError on an unknown name: a caller's bug
    # HSETNX: the first init decides; a concurrent init with another N then fails the check.
    _read(client)  # a key of another kind here: ForeignData before anything is written
    client.hsetnx(keys.DEPLOYMENT, _PARTITIONS, partitions)
    client.hsetnx(keys.DEPLOYMENT, _SCHEMA, SCHEMA_VERSION)
    # A deployment initialised before limits were stored gets them from its next init.
    for name in LIMIT_NAMES:
        client.hsetnx(keys.DEPLOYMENT, _LIMIT_PREFIX + name, getattr(wanted, name))
    stored = _read(client)
    _check(stored, partitions)
    stored_limits = _limits(stored)
    _check_limits(stored_limits, asked)
    load_functions(client)
    _create_streams(client, partitions)
    # Set last, so load_deployment never reports a half-created deployment; a rerun finishes it.
    client.hsetnx(keys.DEPLOYMENT, _CREATED, 1)
    return Deployment(partitions=partitions, schema_version=SCHEMA_VERSION, limits=stored_limits)


def ensure_deployment(
    client: Client,
    partitions: int | None,
    limits: Mapping[str, int] | None = None,
    *,
    default_partitions: int,
) -> Deployment:
    """init_deployment where an existing deployment keeps its partition count unless asked.

    It runs init even when the deployment exists: that also checks the limits asked for
    and reloads this version's Functions.
    """
    existing = load_deployment(client)
    fallback = default_partitions if existing is None else existing.partitions
    return init_deployment(client, partitions or fallback, limits)


def load_deployment(client: Client) -> Deployment | None:
    """Return the deployment's settings, or None if it has not been (fully) initialised."""
    stored = _read(client)
    if stored.get(_CREATED.encode()) is None:
        return None
    if _PARTITIONS.encode() not in stored or _SCHEMA.encode() not in stored:
        raise _foreign(keys.DEPLOYMENT, "a hash without partitions or schema_version")
    return Deployment(
        partitions=_number(stored, _PARTITIONS),
        schema_version=_number(stored, _SCHEMA),
        limits=_limits(stored),
    )


def _check_limits(stored: Limits, asked: Mapping[str, int]) -> None:
    differing = [
        f"{name} is {getattr(stored, name)}, not {value}"
        for name, value in asked.items()
        if getattr(stored, name) != value
    ]
    if differing:
        raise DeploymentMismatch(
            f"deployment folds with other limits ({'; '.join(differing)}); refusing to change "
            "them: every worker and every replay of a log must fold with the same limits "
            "(changing them is a replay migration)"
        )


def _limits(stored: dict[bytes, bytes]) -> Limits:
    # Missing fields (a deployment not initialised again since limits were stored): defaults.
    found = {
        name: _number(stored, _LIMIT_PREFIX + name)
        for name in LIMIT_NAMES
        if (_LIMIT_PREFIX + name).encode() in stored
    }
    return replace(Limits(), **found)


def require_deployment(client: Client) -> Deployment:
    """Return the deployment's settings, raising ``NotInitialised`` if there are none."""
    deployment = load_deployment(client)
    if deployment is None:
        raise NotInitialised("the deployment is not initialised: run `monitor-es init` first")
    return deployment


def _read(client: Client) -> dict[bytes, bytes]:
    try:
        return bytes_map(client.hgetall(keys.DEPLOYMENT))
    except ResponseError as exc:
        if not _wrong_type(exc):
            raise
        kind = as_text(client.type(keys.DEPLOYMENT))
        raise _foreign(keys.DEPLOYMENT, f"a {kind}") from None


def check_request(
    deployment: Deployment, partitions: int | None, limits: Mapping[str, int]
) -> None:
    """Raises DeploymentMismatch, as init would, if the settings asked contradict the
    deployment's; it writes nothing (init also reloads the Functions)."""
    if partitions is not None:
        _check_partitions(deployment.partitions, partitions)
    _check_limits(deployment.limits, limits)


def _check_partitions(existing: int, partitions: int) -> None:
    if existing != partitions:
        raise DeploymentMismatch(
            f"deployment is initialised with {existing} partitions; refusing to change to "
            f"{partitions} (re-partitioning is a replay migration)"
        )


def _check(stored: dict[bytes, bytes], partitions: int) -> None:
    _check_partitions(_number(stored, _PARTITIONS), partitions)
    schema = _number(stored, _SCHEMA)
    if schema != SCHEMA_VERSION:
        raise DeploymentMismatch(
            f"deployment has schema version {schema}; this monitor-es writes {SCHEMA_VERSION}"
        )


def _create_streams(client: Client, partitions: int) -> None:
    # One non-transactional pipeline: the client splits it per node on a cluster.
    pipe = client.pipeline(transaction=False)
    stream_keys: list[str] = []
    for p in range(partitions):
        pk = keys.partition_keys(p)
        pipe.xgroup_create(pk.log, keys.REDUCER_GROUP, id="0", mkstream=True)
        pipe.xgroup_create(pk.out, _INIT_GROUP, id="$", mkstream=True)
        pipe.xgroup_destroy(pk.out, _INIT_GROUP)
        stream_keys += [pk.log, pk.out, pk.out]
    for key, result in zip(stream_keys, pipe.execute(raise_on_error=False), strict=True):
        if _wrong_type(result):
            raise _foreign(key, f"a {as_text(client.type(key))}")
        # BUSYGROUP means an earlier init created the group already: that is the idempotent path.
        if isinstance(result, ResponseError) and not str(result).startswith("BUSYGROUP"):
            raise result
        if isinstance(result, Exception) and not isinstance(result, ResponseError):
            raise result
