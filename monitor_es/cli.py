"""The `monitor-es` command: the only place that wires the parts together."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from monitor_es.domain.partition import Limits
from monitor_es.producer import Producer
from monitor_es.redis_simulate import simulate_on_redis
from monitor_es.replay import simulate
from monitor_es.scenario import line_of
from monitor_es.store.connection import Client, connect
from monitor_es.store.deployment import DeploymentMismatch, init_deployment, load_deployment
from monitor_es.workers.demo import run_demo
from monitor_es.workers.pulser import Pulser
from monitor_es.workers.runner import WorkerProcess
from monitor_es.workers.tail import follow
from projections.report import build_report


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
        "--partitions", type=int, default=1, help="partitions for an empty database (default 1)"
    )
    _limit_options(sim)
    sim.set_defaults(handler=_simulate)

    init = commands.add_parser("init", help="initialise a deployment (idempotent)")
    _redis_option(init)
    init.add_argument("--partitions", type=int, default=16, help="partitions (default 16)")
    init.set_defaults(handler=_init)

    worker = commands.add_parser("worker", help="run reducer workers on leased partitions")
    _redis_option(worker)
    _limit_options(worker)
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
    run.add_argument("--partitions", type=int, default=16)
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


def _limit_options(parser: argparse.ArgumentParser) -> None:
    defaults = Limits()
    parser.add_argument(
        "--max-monitors", type=int, default=defaults.max_monitors_per_project,
        help="monitors per project (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--max-environments", type=int, default=defaults.max_environments_per_monitor,
        help="environments per monitor (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--rate-limit", type=int, default=defaults.checkins_per_minute,
        help="check-ins per environment and minute (default %(default)s)",
    )  # fmt: skip


def limits_from(args: argparse.Namespace) -> Limits:
    """The limits the command line asks for."""
    return Limits(
        max_monitors_per_project=args.max_monitors,
        max_environments_per_monitor=args.max_environments,
        checkins_per_minute=args.rate_limit,
    )


def _simulate(args: argparse.Namespace) -> int:
    try:
        text = args.file.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"monitor-es: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    lines, limits = text.splitlines(), limits_from(args)
    if args.redis_url:
        run = simulate_on_redis(connect(args.redis_url), lines, args.partitions, limits)
        environments, events, invalid = run.environments, run.events, run.invalid
    else:
        result = simulate(lines, limits)
        environments = result.partition.all_environments()
        events, invalid = result.events, result.invalid
    report = build_report(
        environments, events, [(bad.line, bad.message) for bad in invalid], line_of
    )
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(report)).decode() + "\n")
    else:
        print_summary(report)
    return 0


def _init(args: argparse.Namespace) -> int:
    try:
        deployment = init_deployment(connect(args.redis_url), args.partitions)
    except DeploymentMismatch as exc:
        print(f"monitor-es: {exc}", file=sys.stderr)
        return 1
    print(f"deployment ready: {deployment.partitions} partitions")
    return 0


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _deployment(client: Client) -> int | None:
    deployment = load_deployment(client)
    if deployment is None:
        print("monitor-es: not initialised; run `monitor-es init` first", file=sys.stderr)
        return None
    return deployment.partitions


def _worker(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    client = connect(args.redis_url)
    partitions = _deployment(client)
    if partitions is None:
        return 1
    process = WorkerProcess(
        client,
        partitions,
        limits=limits_from(args),
        lease_ttl_ms=args.lease_ttl_ms,
        batch=args.batch,
    )
    process.run(_stop_on_signals())
    return 0


def _pulse(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    client = connect(args.redis_url)
    partitions = _deployment(client)
    if partitions is None:
        return 1
    pulser = Pulser(
        client, partitions, interval_s=args.interval, system_incidents=args.system_incidents
    )
    pulser.run(_stop_on_signals())
    return 0


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    client = connect(args.redis_url)
    where = args.redis_url or "an embedded in-process Redis"
    partitions = init_deployment(client, args.partitions).partitions
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
    WorkerProcess(client, partitions, limits=limits_from(args)).run(stop)
    return 0


def print_summary(report: dict[str, Any]) -> None:
    """A readable summary of a simulate document."""
    print(f"{len(report['environments'])} environment(s)")
    for env in report["environments"]:
        name = f"{env['project']}/{env['monitor_slug']}/{env['environment']}"
        incident = " INCIDENT OPEN" if env["incident"] else ""
        muted = " (muted)" if env["muted"] else ""
        print(f"  {name}: {env['status']}{incident}{muted}, next {env['next_checkin']}")
    statuses = Counter(row["status"] for row in report["check_ins"])
    counted = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    print(f"{len(report['check_ins'])} check-in(s): {counted or 'none'}")
    print(f"{len(report['incidents'])} incident(s)")
    for incident in report["incidents"]:
        state = f"resolved {incident['resolved_at']}" if incident["resolved_at"] else "open"
        print(f"  {incident['fingerprint']}: started {incident['started_at']}, {state}")
    kinds = Counter(event["type"] for event in report["events"])
    print(f"{len(report['events'])} derived event(s): " + ", ".join(
        f"{n} {kind}" for kind, n in sorted(kinds.items())
    ))  # fmt: skip
    for row in report["rejected"]:
        types = ", ".join(str(e["type"]) for e in row["errors"])
        print(f"  line {row['line']} rejected: {types}")


if __name__ == "__main__":
    raise SystemExit(main())
