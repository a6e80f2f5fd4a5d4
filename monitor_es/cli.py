"""The `monitor-es` command: the only place that wires the parts together."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from tempfile import TemporaryFile
from types import FrameType
from typing import cast

from redis.exceptions import RedisError

from monitor_es.domain.partition import Limits, Partition
from monitor_es.domain.state import Environment
from monitor_es.producer import Producer
from monitor_es.redis_simulate import simulate_on_redis
from monitor_es.replay import ReducerFailed, fold_scenario
from monitor_es.scenario import InvalidLine, line_of
from monitor_es.store.connection import UNAVAILABLE, Client, connect, safe_url
from monitor_es.store.deployment import (
    Deployment,
    DeploymentMismatch,
    ensure_deployment,
    load_deployment,
)
from monitor_es.store.functions import LibraryOutdated, require_functions
from monitor_es.workers.demo import run_demo
from monitor_es.workers.pulser import Pulser
from monitor_es.workers.rounds import backoff
from monitor_es.workers.runner import WorkerProcess
from monitor_es.workers.tail import follow
from projections.report import EventSpool, Report
from projections.summary import print_summary

log = logging.getLogger("monitor_es.cli")
# While Redis is unreachable at start, `worker` and `pulse` try again at most this often.
CONNECT_RETRY_MAX_S = 5.0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    result: int = handler(args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor-es", description="Cron-job monitoring on Redis Streams."
    )
    commands = parser.add_subparsers(title="commands")
    sim = commands.add_parser("simulate", help="fold a JSON Lines scenario with the pure reducer")
    sim.add_argument("file", type=Path, help="scenario file (JSON Lines, see domain.md)")
    sim.add_argument("--json", action="store_true", help="print the full JSON document")
    sim.add_argument(
        "--redis-url",
        help="push the scenario through the real pipeline on this Redis and read it back",
    )
    sim.add_argument(
        "--partitions",
        type=positive,
        metavar="N",
        help="partitions for an empty database (default 1); an "
        "initialised one keeps its own, which this must not contradict",
    )
    _limit_options(sim)
    sim.set_defaults(handler=_simulate)

    init = commands.add_parser("init", help="initialise a deployment (idempotent)")
    _redis_option(init)
    init.add_argument(
        "--partitions", type=positive, metavar="N",
        help="partitions of a new deployment (default 16); an existing one keeps its own",
    )  # fmt: skip
    _limit_options(init)
    init.set_defaults(handler=_init)

    worker = commands.add_parser("worker", help="run reducer workers on leased partitions")
    _redis_option(worker)
    worker.add_argument("--lease-ttl-ms", type=int, default=10_000)
    worker.add_argument("--batch", type=int, default=500)
    worker.set_defaults(handler=_worker)

    pulse = commands.add_parser("pulse", help="run the clock pulser (one active at a time)")
    _redis_option(pulse)
    pulse.add_argument("--interval", type=float, default=5.0, help="seconds between pulses")
    pulse.add_argument(
        "--system-incidents", action="store_true", help="run the system-incident aggregator"
    )
    pulse.set_defaults(handler=_pulse)

    run = commands.add_parser("run", help="everything in one process (embedded Redis by default)")
    _redis_option(run)
    _limit_options(run)
    run.add_argument(
        "--partitions", type=positive, metavar="N",
        help="partitions of a new deployment (default 16); an existing one keeps its own",
    )  # fmt: skip
    run.add_argument("--interval", type=float, default=5.0, help="seconds between pulses")
    run.add_argument(
        "--demo",
        action="store_true",
        help="feed a demo job that runs every minute, then stops (watch it go missed)",
    )
    run.set_defaults(handler=_run)
    return parser


def _redis_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("MONITOR_ES_REDIS_URL"),
        help="redis://host:port or redis+cluster://host:port (default: $MONITOR_ES_REDIS_URL,"
        " else an embedded in-process Redis)",
    )


# Option -> Limits field. Unset options are None, so an existing deployment's stored limits
# are only contradicted by what the user actually asked for.
_LIMIT_OPTIONS = {
    "max_monitors": "max_monitors_per_project",
    "max_environments": "max_environments_per_monitor",
    "rate_limit": "checkins_per_minute",
}


def _limit_options(parser: argparse.ArgumentParser) -> None:
    defaults = Limits()
    parser.add_argument(
        "--max-monitors", type=positive, metavar="N",
        help=f"monitors per project (default {defaults.max_monitors_per_project})",
    )  # fmt: skip
    parser.add_argument(
        "--max-environments", type=positive, metavar="N",
        help=f"environments per monitor (default {defaults.max_environments_per_monitor})",
    )  # fmt: skip
    parser.add_argument(
        "--rate-limit", type=positive, metavar="N",
        help=f"check-ins per environment and minute (default {defaults.checkins_per_minute})",
    )  # fmt: skip


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def requested_limits(args: argparse.Namespace) -> dict[str, int]:
    """The limits the command line names (by Limits field); the others are not asked for."""
    return {
        field: value
        for option, field in _LIMIT_OPTIONS.items()
        if (value := getattr(args, option)) is not None
    }


def limits_from(args: argparse.Namespace) -> Limits:
    """The limits the command line asks for, defaults for the rest (the pure simulate)."""
    return replace(Limits(), **requested_limits(args))


def _simulate(args: argparse.Namespace) -> int:
    try:
        source = sys.stdin.buffer if str(args.file) == "-" else args.file.open("rb")
    except OSError as exc:
        print(f"monitor-es: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    with source, ExitStack() as stack:
        spool = EventSpool(stack.enter_context(TemporaryFile())) if args.json else None
        report = Report(line_of, spool)
        try:
            environments = _fold_scenario(args, source, report)
        except OSError as exc:  # the file went away or failed while it was read
            print(f"monitor-es: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        except ReducerFailed as exc:
            print(f"monitor-es: {args.file}: {exc} (a bug in monitor-es)", file=sys.stderr)
            return 1
        except RedisError as exc:
            print(f"monitor-es: Redis at {args.redis_url}: {exc}", file=sys.stderr)
            return 2
        except DeploymentMismatch as exc:
            print(f"monitor-es: Redis at {safe_url(args.redis_url)}: {exc}", file=sys.stderr)
            return 2
        try:
            if args.json:
                report.write_json(sys.stdout.buffer, environments)
                sys.stdout.buffer.flush()
            else:
                print_summary(report, environments)
                sys.stdout.flush()
        except BrokenPipeError:  # `monitor-es simulate ... | head`: the reader left
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    # Rejected lines are results (the document lists them), not a failure of the command.
    return 0


def _fold_scenario(
    args: argparse.Namespace, source: Iterable[bytes], report: Report
) -> list[Environment]:
    """Folds the scenario into the report, streaming it unless it goes through Redis."""
    if args.redis_url:
        # It hands the lines to split_scenario, which reads bytes lines too (its Iterable[str]
        # annotation predates that).
        lines = cast("Iterable[str]", source)
        client = connect(args.redis_url)
        run = simulate_on_redis(client, lines, args.partitions, requested_limits(args))
        for bad in run.invalid:
            report.add_invalid(bad.line, bad.message)
        for event in run.events:
            report.add_event(event)
        return run.environments
    partition = Partition(limits_from(args))
    for item in fold_scenario(partition, source):
        if isinstance(item, InvalidLine):
            report.add_invalid(item.line, item.message)
        else:
            report.add_event(item)
    return partition.all_environments()


def _init(args: argparse.Namespace) -> int:
    deployment = _initialised(connect(args.redis_url), args)
    if deployment is None:
        return 1
    limits = deployment.limits
    print(
        f"deployment ready: {deployment.partitions} partitions; limits: "
        f"{limits.max_monitors_per_project} monitors per project, "
        f"{limits.max_environments_per_monitor} environments per monitor, "
        f"{limits.checkins_per_minute} check-ins per environment and minute"
    )
    return 0


def _initialised(client: Client, args: argparse.Namespace) -> Deployment | None:
    """Initialises the deployment (or checks and refreshes it) as the command line asks.

    Without --partitions an existing deployment keeps its count. Prints why and returns
    None if the settings contradict the deployment's or Redis cannot be reached.
    """
    try:
        return ensure_deployment(
            client, args.partitions, requested_limits(args), default_partitions=16
        )
    except DeploymentMismatch as exc:
        print(f"monitor-es: {exc}", file=sys.stderr)
    except UNAVAILABLE as exc:
        print(
            f"monitor-es: cannot reach Redis at {safe_url(args.redis_url)}: {exc}", file=sys.stderr
        )
    return None


def _stop_on_signals() -> threading.Event:
    """SIGTERM or SIGINT asks for a clean stop; a second one stops at once."""
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("%s: stopping (send it again to stop at once)", signal.Signals(signum).name)
        stop.set()
        for again in (signal.SIGTERM, signal.SIGINT):
            signal.signal(again, signal.SIG_DFL)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)
    return stop


def _deployment(client: Client, url: str | None, stop: threading.Event) -> Deployment | None:
    """The deployment's settings, once Redis answers; None if not initialised or stopped first.

    A long-running process started before Redis (or while it restarts) waits for it rather
    than crash-looping under its supervisor.
    """
    wait: float | None = None
    while not stop.is_set():
        try:
            deployment = load_deployment(client)
            if deployment is not None:
                require_functions(client)
        except LibraryOutdated as exc:
            print(f"monitor-es: {exc}", file=sys.stderr)
            return None
        except UNAVAILABLE as exc:
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
        return deployment
    return None


def _worker(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = _stop_on_signals()
    client = connect(args.redis_url)
    deployment = _deployment(client, args.redis_url, stop)
    if deployment is None:
        return 0 if stop.is_set() else 1
    process = WorkerProcess(
        client,
        deployment.partitions,
        limits=deployment.limits,  # the deployment's: every worker folds alike
        lease_ttl_ms=args.lease_ttl_ms,
        batch=args.batch,
    )
    process.run(stop)
    return 0


def _pulse(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = _stop_on_signals()
    client = connect(args.redis_url)
    deployment = _deployment(client, args.redis_url, stop)
    if deployment is None:
        return 0 if stop.is_set() else 1
    pulser = Pulser(
        client,
        deployment.partitions,
        interval_s=args.interval,
        system_incidents=args.system_incidents,
    )
    pulser.run(stop)
    return 0


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    client = connect(args.redis_url)
    where = args.redis_url or "an embedded in-process Redis"
    deployment = _initialised(client, args)
    if deployment is None:
        return 1
    partitions = deployment.partitions
    stop = _stop_on_signals()
    pulser = Pulser(client, partitions, interval_s=args.interval)
    threading.Thread(target=pulser.run, args=(stop,), name="pulser", daemon=True).start()
    threading.Thread(
        target=follow, args=(client, partitions, stop), name="tail", daemon=True
    ).start()
    if args.demo:
        threading.Thread(
            target=run_demo, args=(Producer(client, partitions), stop), name="demo", daemon=True
        ).start()
    print(f"monitor-es running on {where} with {partitions} partitions; Ctrl-C stops it")
    WorkerProcess(client, partitions, limits=deployment.limits).run(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
