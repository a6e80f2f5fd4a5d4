"""Deployment initialisation: partition count, streams, consumer groups and Functions."""

from __future__ import annotations

from dataclasses import dataclass

from redis.exceptions import ResponseError

from monitor_es.store import keys
from monitor_es.store.connection import Client, bytes_map
from monitor_es.store.functions import load_functions

SCHEMA_VERSION = 1

_PARTITIONS = "partitions"
_SCHEMA = "schema_version"
_CREATED = "created"
# A throwaway group whose MKSTREAM creates an empty out stream; it is destroyed at once.
_INIT_GROUP = "mes-init"


class NotInitialised(Exception):
    """The deployment (or the partition written to) has not been initialised."""


class DeploymentMismatch(Exception):
    """The deployment was initialised with settings that this call would contradict."""


@dataclass(frozen=True, slots=True)
class Deployment:
    """The fixed settings of a deployment."""

    partitions: int
    schema_version: int


def init_deployment(client: Client, partitions: int) -> Deployment:
    """Initialise the deployment with ``partitions`` partitions, or check an existing one."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    # HSETNX: the first init decides; a concurrent init with another N then fails the check.
    client.hsetnx(keys.DEPLOYMENT, _PARTITIONS, partitions)
    client.hsetnx(keys.DEPLOYMENT, _SCHEMA, SCHEMA_VERSION)
    stored = _read(client)
    _check(stored, partitions)
    load_functions(client)
    _create_streams(client, partitions)
    # Set last, so load_deployment never reports a half-created deployment; a rerun finishes it.
    client.hsetnx(keys.DEPLOYMENT, _CREATED, 1)
    return Deployment(partitions=partitions, schema_version=SCHEMA_VERSION)


def load_deployment(client: Client) -> Deployment | None:
    """Return the deployment's settings, or None if it has not been (fully) initialised."""
    stored = _read(client)
    if stored.get(_CREATED.encode()) is None:
        return None
    return Deployment(
        partitions=int(stored[_PARTITIONS.encode()]),
        schema_version=int(stored[_SCHEMA.encode()]),
    )


def require_deployment(client: Client) -> Deployment:
    """Return the deployment's settings, raising ``NotInitialised`` if there are none."""
    deployment = load_deployment(client)
    if deployment is None:
        raise NotInitialised("the deployment is not initialised: run `monitor-es init` first")
    return deployment


def _read(client: Client) -> dict[bytes, bytes]:
    return bytes_map(client.hgetall(keys.DEPLOYMENT))


def _check(stored: dict[bytes, bytes], partitions: int) -> None:
    existing = int(stored[_PARTITIONS.encode()])
    if existing != partitions:
        raise DeploymentMismatch(
            f"deployment is initialised with {existing} partitions; refusing to change to "
            f"{partitions} (re-partitioning is a replay migration)"
        )
    schema = int(stored[_SCHEMA.encode()])
    if schema != SCHEMA_VERSION:
        raise DeploymentMismatch(
            f"deployment has schema version {schema}; this monitor-es writes {SCHEMA_VERSION}"
        )


def _create_streams(client: Client, partitions: int) -> None:
    # One non-transactional pipeline: the client splits it per node on a cluster.
    pipe = client.pipeline(transaction=False)
    for p in range(partitions):
        pk = keys.partition_keys(p)
        pipe.xgroup_create(pk.log, keys.REDUCER_GROUP, id="0", mkstream=True)
        pipe.xgroup_create(pk.out, _INIT_GROUP, id="$", mkstream=True)
        pipe.xgroup_destroy(pk.out, _INIT_GROUP)
    for result in pipe.execute(raise_on_error=False):
        # BUSYGROUP means an earlier init created the group already: that is the idempotent path.
        if isinstance(result, ResponseError) and not str(result).startswith("BUSYGROUP"):
            raise result
        if isinstance(result, Exception) and not isinstance(result, ResponseError):
            raise result
