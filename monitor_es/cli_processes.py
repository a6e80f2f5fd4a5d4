"""The long-running processes and their set-up: `init`, `worker`, `pulse` and `run`."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from redis.exceptions import AuthenticationError, RedisClusterException

from monitor_es.cli_errors import (
    FAILED,
    OK,
    NoRedis,
    not_a_cluster,
    output,
    stop_on_signals,
)
from monitor_es.cli_options import (
    MIN_LEASE_TTL_MS,
    URL_ENV,
    at_least,
    interval_option,
    limit_options,
    metrics_options,
    positive,
    redis_option,
    requested_limits,
)
from monitor_es.metrics import PulserMetrics, WorkerMetrics, serve
from monitor_es.producer import Producer
from monitor_es.store.connection import REDIS_ERRORS, UNAVAILABLE, Client, connect, safe_url
from monitor_es.store.deployment import (
    Deployment,
    ensure_deployment,
    load_deployment,
)
from monitor_es.store.functions import require_functions
from monitor_es.workers.demo import run_demo
from monitor_es.workers.pulser import Pulser
from monitor_es.workers.rounds import backoff
from monitor_es.workers.runner import WorkerProcess
from monitor_es.workers.tail import OutCursor, follow

log = logging.getLogger("monitor_es.cli")
# What `worker` and `pulse` wait out at start: Redis down, or no cluster node answering yet.
_WAIT_ON: tuple[type[Exception], ...] = (RedisClusterException, *UNAVAILABLE)
# While Redis is unreachable at start, `worker` and `pulse` try again at most this often.
CONNECT_RETRY_MAX_S = 5.0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers `init`, `worker`, `pulse` and `run`."""
    init = _command(
        commands,
        "init",
        "initialise a deployment (idempotent)",
        "Creates the deployment's streams and consumer groups and loads the Redis Functions; "
        "run it once, and again after each upgrade. It never changes the partition count or "
        "the limits of an initialised deployment, and touches only keys named mes:*.",
    )
    redis_option(init)
    init.add_argument(
        "--partitions", type=positive, metavar="N",
        help="partitions of a new deployment (default 16); an existing one keeps its own",
    )  # fmt: skip
    limit_options(init)
    init.set_defaults(handler=_init, command="init")

    worker = _command(
        commands,
        "worker",
        "run reducer workers on leased partitions",
        "Takes a fair share of the partitions through leases and folds their logs until "
        "SIGINT or SIGTERM, then finishes its batch, releases its leases and exits 0. Waits "
        "for a Redis that cannot be reached yet; needs `monitor-es init` first.",
    )
    redis_option(worker)
    worker.add_argument(
        "--lease-ttl-ms", type=at_least(MIN_LEASE_TTL_MS), default=10_000, metavar="MS",
        help="lease time-to-live: a dead worker's partitions move after this long "
        f"(default 10000, at least {MIN_LEASE_TTL_MS})",
    )  # fmt: skip
    worker.add_argument(
        "--batch", type=positive, default=500, metavar="N",
        help="log entries read and committed at once per partition (default 500)",
    )  # fmt: skip
    metrics_options(worker)
    worker.set_defaults(handler=_worker, command="worker")

    pulse = _command(
        commands,
        "pulse",
        "run the clock pulser (one active at a time)",
        "Appends a clock pulse to every partition every --interval seconds so quiet "
        "partitions keep ticking; one pulser is active at a time (lease), others stand by. "
        "Stops on SIGINT or SIGTERM, releasing its lease, and exits 0.",
    )
    redis_option(pulse)
    interval_option(pulse)
    pulse.add_argument(
        "--system-incidents", action="store_true", help="run the system-incident aggregator"
    )
    metrics_options(pulse)
    pulse.set_defaults(handler=_pulse, command="pulse")

    run = _command(
        commands,
        "run",
        "everything in one process (embedded Redis by default)",
        "Initialises the deployment if needed, then runs a worker, the pulser and a console "
        "tail of the derived events in one process until SIGINT or SIGTERM (exit 0). Without "
        "a Redis URL it uses an embedded in-process Redis whose data ends with the process.",
    )
    redis_option(run, embedded=True)
    limit_options(run)
    run.add_argument(
        "--partitions", type=positive, metavar="N",
        help="partitions of a new deployment (default 16); an existing one keeps its own",
    )  # fmt: skip
    interval_option(run)
    run.add_argument(
        "--demo",
        action="store_true",
        help="feed a demo job that runs every minute, then stops (watch it go missed)",
    )
    metrics_options(run)
    run.set_defaults(handler=_run, command="run")


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
) -> argparse.ArgumentParser:
    return commands.add_parser(name, help=summary, description=description)


def _require_url(args: argparse.Namespace) -> None:
    """The embedded Redis ends with its process: init, worker and pulse need a real one."""
    if args.redis_url is None:
        raise NoRedis(
            f"{args.command} needs a Redis: give --redis-url or set ${URL_ENV} (only `run` "
            "can use an embedded in-process Redis, which ends with the process)"
        )


def _init(args: argparse.Namespace) -> int:
    _require_url(args)
    deployment = _initialised(connect(args.redis_url), args)
    limits = deployment.limits
    with output():
        print(
            f"deployment ready: {deployment.partitions} partitions; limits: "
            f"{limits.max_monitors_per_project} monitors per project, "
            f"{limits.max_environments_per_monitor} environments per monitor, "
            f"{limits.checkins_per_minute} check-ins per environment and minute"
        )
    return OK


def _initialised(client: Client, args: argparse.Namespace) -> Deployment:
    """Initialises the deployment (or checks and refreshes it) as the command line asks.

    Without --partitions an existing deployment keeps its count. Raises (for main to report)
    if the settings contradict the deployment's or Redis cannot be used.
    """
    return ensure_deployment(client, args.partitions, requested_limits(args), default_partitions=16)


def _deployment(url: str | None, stop: threading.Event) -> tuple[Client, Deployment] | None:
    """A client and the deployment's settings, once Redis answers; None if not initialised
    or stopped first.

    A long-running process started before Redis (or while it restarts) waits for it rather
    than crash-looping under its supervisor. A cluster client connects as it is made.
    """
    wait: float | None = None
    while not stop.is_set():
        try:
            client = connect(url)
            deployment = load_deployment(client)
            if deployment is not None:
                require_functions(client)
        except AuthenticationError:
            raise  # Redis answers: waiting will not fix the URL's credentials
        except _WAIT_ON as exc:
            if not_a_cluster(exc):
                raise
            wait = backoff(wait, CONNECT_RETRY_MAX_S)
            log.warning(
                "cannot reach Redis at %s (%s); retrying in %.1fs", safe_url(url), exc, wait
            )
            stop.wait(wait)
            continue
        if deployment is None:
            print("monitor-es: not initialised; run `monitor-es init` first", file=sys.stderr)
            return None
        if wait is not None:
            log.info("connected to Redis at %s", safe_url(url))
        return client, deployment
    return None


def _served_metrics(args: argparse.Namespace) -> CollectorRegistry:
    """The process's metrics registry, served from now on if --metrics-port asks for it (so
    a scrape sees the process even while it waits for Redis)."""
    registry = CollectorRegistry()
    if args.metrics_port is not None:
        serve(registry, args.metrics_host, args.metrics_port)
        log.info("metrics at http://%s:%s/metrics", args.metrics_host, args.metrics_port)
    return registry


def _started(
    args: argparse.Namespace,
) -> tuple[CollectorRegistry, threading.Event, tuple[Client, Deployment] | None]:
    """What `worker` and `pulse` do first: logs, metrics, signals, then wait for Redis."""
    _require_url(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    registry = _served_metrics(args)
    stop = stop_on_signals()
    return registry, stop, _deployment(args.redis_url, stop)


def _worker(args: argparse.Namespace) -> int:
    registry, stop, found = _started(args)
    if found is None:
        return OK if stop.is_set() else FAILED
    client, deployment = found
    process = WorkerProcess(
        client,
        deployment.partitions,
        limits=deployment.limits,  # the deployment's: every worker folds alike
        lease_ttl_ms=args.lease_ttl_ms,
        batch=args.batch,
        metrics=WorkerMetrics(registry),
    )
    process.run(stop)
    return OK


def _pulse(args: argparse.Namespace) -> int:
    registry, stop, found = _started(args)
    if found is None:
        return OK if stop.is_set() else FAILED
    client, deployment = found
    pulser = Pulser(
        client,
        deployment.partitions,
        interval_s=args.interval,
        system_incidents=args.system_incidents,
        metrics=PulserMetrics(registry),
    )
    pulser.run(stop)
    return OK


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # The console shows the derived events; one lease line per partition would bury them.
    logging.getLogger("monitor_es.workers.runner").setLevel(logging.WARNING)
    registry = _served_metrics(args)
    client = connect(args.redis_url)
    where = safe_url(args.redis_url) if args.redis_url else "an embedded in-process Redis"
    deployment = _initialised(client, args)
    partitions = deployment.partitions
    stop = stop_on_signals()
    pulser = Pulser(client, partitions, interval_s=args.interval, metrics=PulserMetrics(registry))
    helpers = [threading.Thread(target=pulser.run, args=(stop,), name="pulser", daemon=True)]
    # Placed before the demo appends or the worker commits anything, so the console shows
    # every event from the first one on (a restart after a Redis error goes on from there).
    cursor = OutCursor(client, partitions)
    helpers.append(_retrying("tail", lambda: follow(cursor, stop), stop))
    if args.demo:
        producer = Producer(client, partitions)
        helpers.append(_retrying("demo", lambda: run_demo(producer, stop), stop, again=False))
    for thread in helpers:
        thread.start()
    with output():
        print(f"monitor-es running on {where} with {partitions} partitions; Ctrl-C stops it")
    WorkerProcess(
        client, partitions, limits=deployment.limits, metrics=WorkerMetrics(registry)
    ).run(stop)
    # The pulser releases its lease as it stops; a daemon thread would be cut short at exit.
    helpers[0].join(timeout=5)
    return OK


def _retrying(
    name: str, target: Callable[[], None], stop: threading.Event, *, again: bool = True
) -> threading.Thread:
    """A daemon thread running ``target``, started again (if ``again``) after a Redis error."""

    def loop() -> None:
        wait: float | None = None
        while not stop.is_set():
            try:
                target()
                return
            except REDIS_ERRORS as exc:
                if not again:
                    log.warning("%s: stopped (%s)", name, exc)
                    return
                wait = backoff(wait, CONNECT_RETRY_MAX_S)
                log.warning("%s: Redis failed (%s); again in %.1fs", name, exc, wait)
                stop.wait(wait)

    return threading.Thread(target=loop, name=name, daemon=True)
