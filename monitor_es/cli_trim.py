"""`monitor-es trim`: bounded Redis memory, by archiving and trimming folded log entries and
trimming old derived events (store/retention.py says what is safe to remove)."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from monitor_es.cli_errors import OK, output, stop_on_signals
from monitor_es.cli_options import deployment_at, redis_option
from monitor_es.store.connection import REDIS_ERRORS, Client
from monitor_es.store.deployment import NotInitialised
from monitor_es.store.retention import Trimmed, trim_partition
from monitor_es.workers.rounds import run_rounds

log = logging.getLogger(__name__)

_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"(\d+)([smhd])")


def duration_ms(text: str) -> int:
    """An argparse type: a whole number of s, m, h or d (`7d`, `36h`), in milliseconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration like 30m, 12h or 7d: {text!r}")
    return int(match[1]) * _UNITS_MS[match[2]]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers `trim`."""
    trim = commands.add_parser(
        "trim",
        help="archive and trim old log entries and derived events",
        description="Bounds Redis memory. For every partition: log entries older (in broker "
        "time) than --keep-log before the newest entry the workers committed are written "
        "to an archive segment under --archive (pNN/<first id>.jsonl.gz: id and payload), "
        "then removed; out-stream entries older than --keep-out before the newest one are "
        "removed. Nothing a worker has not folded is ever removed, and results do not "
        "change. Runs once, or every --every until SIGINT or SIGTERM (exit 0).",
    )
    redis_option(trim)
    trim.add_argument(
        "--keep-log", type=duration_ms, metavar="DURATION",
        help="folded log entries to keep, by broker time (e.g. 7d); default: trim no log",
    )  # fmt: skip
    trim.add_argument(
        "--keep-out", type=duration_ms, metavar="DURATION",
        help="derived events to keep (e.g. 3d); default: trim no out stream",
    )  # fmt: skip
    where = trim.add_mutually_exclusive_group()
    where.add_argument(
        "--archive", type=Path, metavar="DIR",
        help="write trimmed log entries here first (needed with --keep-log)",
    )  # fmt: skip
    where.add_argument(
        "--no-archive", action="store_true",
        help="drop trimmed log entries for good: they can never be replayed",
    )  # fmt: skip
    trim.add_argument(
        "--every", type=duration_ms, metavar="DURATION",
        help="run again after this long, until stopped (e.g. 1h); default: run once",
    )  # fmt: skip
    trim.set_defaults(handler=_trim, command="trim", parser=trim)


def _trim(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    if args.keep_log is None and args.keep_out is None:
        parser.error("give --keep-log, --keep-out or both")
    if args.keep_log is not None and args.archive is None and not args.no_archive:
        parser.error("--keep-log needs --archive DIR, or --no-archive to drop the entries")
    client, deployment = deployment_at(args)
    partitions = deployment.partitions
    if args.every is None:
        trimmed = _one_pass(client, partitions, args)
        with output():
            for row in trimmed:
                print(_line(row))
        return OK
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = stop_on_signals()
    # A pass that meets an unavailable Redis is retried; what it trimmed stays trimmed.
    retry_on = (*REDIS_ERRORS, NotInitialised)
    every_s = args.every / 1000
    run_rounds("trim", lambda: _log(_one_pass(client, partitions, args)), every_s, stop, retry_on)
    return OK


def _one_pass(client: Client, partitions: int, args: argparse.Namespace) -> list[Trimmed]:
    return [
        trim_partition(
            client, p, keep_log_ms=args.keep_log, keep_out_ms=args.keep_out, archive=args.archive
        )
        for p in range(partitions)
    ]


def _log(trimmed: list[Trimmed]) -> None:
    for row in trimmed:
        if row.log_entries or row.out_entries:
            log.info("%s", _line(row))


def _line(row: Trimmed) -> str:
    archived = f" (archived to {row.segment})" if row.segment is not None else ""
    return (
        f"partition {row.partition}: {row.log_entries} log entries{archived}, "
        f"{row.out_entries} derived-event entries removed"
    )
