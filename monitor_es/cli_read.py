"""Commands that read a deployment's state and derived events: `status` and `tail`."""

from __future__ import annotations

import argparse
import io
import os
import select
import stat
import sys
import threading
from collections.abc import Callable

import msgspec

from monitor_es.cli_errors import OK, output, redis_problem, stop_on_signals
from monitor_es.cli_options import deployment_at, redis_option
from monitor_es.deployment_status import DeploymentStatus, Progress, read_status
from monitor_es.domain.events import DerivedEvent, event_json
from monitor_es.domain.time import iso
from monitor_es.store.connection import safe_url
from monitor_es.workers.tail import (
    IDLE_S,
    OutCursor,
    Unavailable,
    describe,
    follow_events,
    is_notable,
)
from projections.report import environment_row


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers `status` and `tail`."""
    status = _command(
        commands,
        _status,
        "print every environment's committed state",
        "Reads the state the workers committed to Redis and prints one line per "
        "environment (status, muted/disabled, last and next check-in, the open incident), "
        "then how far each partition is folded: its high-water mark, its clock's last tick "
        "and the log entries not folded yet. Exits 0, or 1 if the deployment cannot be read.",
    )
    status.add_argument("--project", metavar="P", help="only this project's environments")
    status.add_argument("--monitor", metavar="SLUG", help="only this monitor's environments")
    status.add_argument(
        "--json",
        action="store_true",
        help="print the environments as simulate --json does; the partitions go to stderr",
    )
    tail = _command(
        commands,
        _tail,
        "follow the derived events as workers commit them",
        "Prints the derived events of every partition as they are committed, from now on, "
        "one line each: by default the notable ones (status changes, misses, incidents, "
        "issue occurrences, rejections). Stops on SIGINT or SIGTERM, or when the reader of "
        "its output goes away, and exits 0.",
    )
    tail.add_argument("--all", action="store_true", help="every derived event, not just notable")
    tail.add_argument(
        "--json",
        action="store_true",
        help="every derived event as one JSON object a line (simulate's `events` form)",
    )
    tail.add_argument(
        "--from-start", action="store_true", help="begin with the oldest committed events"
    )


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    handler: Callable[[argparse.Namespace], int],
    summary: str,
    description: str,
) -> argparse.ArgumentParser:
    """A command named after its handler, reading the Redis of --redis-url."""
    name = handler.__name__.lstrip("_")
    parser = commands.add_parser(name, help=summary, description=description)
    redis_option(parser)
    parser.set_defaults(handler=handler, command=name)
    return parser


# ------------------------------------------------------------------ status


def _status(args: argparse.Namespace) -> int:
    client, deployment = deployment_at(args)
    found = read_status(client, deployment, args.project, args.monitor)
    with output():
        if args.json:
            rows = [environment_row(row.environment) for row in found.environments]
            sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(rows), indent=2))
            sys.stdout.buffer.write(b"\n")
            sys.stdout.flush()
            for progress in found.partitions:
                print(_progress_line(progress), file=sys.stderr)
        else:
            _print_status(found)
    return OK


def _print_status(found: DeploymentStatus) -> None:
    _any_name_prints()
    print(f"{len(found.environments)} environment(s)")
    for row in found.environments:
        env = row.environment
        notes = [env.status.value]
        notes += [flag for flag, on in (("muted", env.muted), ("disabled", row.disabled)) if on]
        notes.append(f"last check-in {iso(env.last_checkin) or 'never'}")
        notes.append(f"next {iso(env.next_checkin) or 'not expected'}")
        notes.append(f"latest {iso(env.next_checkin_latest) or '-'}")
        if env.incident is not None:
            notes.append(f"incident {env.incident.id} open since {iso(env.incident.started_at)}")
        print(f"  {env.project}/{env.monitor_slug}/{env.name}: " + ", ".join(notes))
    print(f"{len(found.partitions)} partition(s)")
    for progress in found.partitions:
        print(f"  {_progress_line(progress)}")
    behind = [p for p in found.partitions if p.unfolded != 0]
    if behind:
        print(
            f"not current: {len(behind)} partition(s) have log entries not folded yet; "
            "is a worker running?"
        )


def _progress_line(p: Progress) -> str:
    """How far one partition is folded, in one line."""
    unfolded = "an unknown number of" if p.unfolded is None else str(p.unfolded)
    behind = f" ({p.lag_ms / 1000:g} s of log behind)" if p.lag_ms else ""
    return (
        f"partition {p.partition}: folded up to {p.committed_id or 'nothing'} "
        f"(entry time {iso(p.stream_time) or '-'}, clock ticked {iso(p.last_tick) or 'never'}); "
        f"{unfolded} log entries not folded{behind}; {p.dead_letters} dead letter(s); "
        f"{'owned by ' + p.owner if p.owner else 'no worker'}; "
        f"holds {p.log_length} log and {p.out_length} out entries"
    )


# ------------------------------------------------------------------ tail


def _tail(args: argparse.Namespace) -> int:
    client, deployment = deployment_at(args)
    stop = stop_on_signals()
    _any_name_prints()
    _stop_when_the_reader_leaves(stop)
    cursor = OutCursor(client, deployment.partitions, from_start=args.from_start)
    since = "the start" if args.from_start else "now"
    print(
        f"monitor-es: following {deployment.partitions} partition(s) from {since}; Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    follow_events(cursor, stop, _printer(args), _report_outage(args.redis_url))
    return OK


def _report_outage(url: str) -> Unavailable:
    """One stderr line when Redis goes away (not one per try), and one when it is back."""
    down = False

    def report(exc: Exception | None, wait: float) -> None:
        nonlocal down
        if exc is None:
            print(f"monitor-es: Redis at {safe_url(url)} answers again", file=sys.stderr)
            down = False
        elif not down:
            print(f"monitor-es: {redis_problem(exc, url)}; following again when it answers",
                  file=sys.stderr)  # fmt: skip
            down = True

    return report


def _printer(args: argparse.Namespace) -> Callable[[DerivedEvent], None]:
    """Writes one event a line, flushed at once: a follower's reader wants it now."""

    def write(event: DerivedEvent) -> None:
        if args.json:
            line = msgspec.json.encode(event_json(event)).decode()
        elif args.all or is_notable(event):
            line = describe(event)
        else:
            return
        with output():
            print(line, flush=True)

    return write


def _any_name_prints() -> None:
    """A project or slug the locale cannot encode prints escaped rather than failing."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")


def _stop_when_the_reader_leaves(stop: threading.Event) -> None:
    """Sets `stop` when standard output is a pipe or socket whose reader has gone away.

    A write would notice too, but a quiet deployment may not write for hours (`| head`).
    """
    try:
        fd = sys.stdout.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, 0)  # no events asked: poll reports only POLLERR and POLLHUP
        while not stop.is_set():
            if poller.poll(int(1000 * IDLE_S)):
                stop.set()

    threading.Thread(target=watch, name="reader-watch", daemon=True).start()
