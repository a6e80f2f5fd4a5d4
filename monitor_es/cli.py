"""The `monitor-es` command: the only place that wires the parts together."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from monitor_es.domain.partition import Limits
from monitor_es.redis_simulate import simulate_on_redis
from monitor_es.replay import simulate
from monitor_es.scenario import line_of
from monitor_es.store.connection import connect
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
    return parser


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
