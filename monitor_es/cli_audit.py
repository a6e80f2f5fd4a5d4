"""`monitor-es audit`: replay every partition's history and compare it with the committed
state (audit.py); exits 1 when a partition differs or cannot be replayed whole."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from monitor_es.audit import AuditResult, audit_partition
from monitor_es.cli_errors import FAILED, OK, output
from monitor_es.cli_options import deployment_at, redis_option
from monitor_es.store.history import IncompleteHistory


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers `audit`."""
    audit = commands.add_parser(
        "audit",
        help="replay every partition and compare with the committed state",
        description="Folds each partition's history (its archive segments under --archive, "
        "then its log) up to the committed high-water mark with the pure reducer, and "
        "compares every monitor and environment record with what the workers committed. "
        "Exits 0 when every partition matches; 1 when one differs (a bug: the records are "
        "named) or its history has a hole (trimmed without the archive).",
    )
    redis_option(audit)
    audit.add_argument(
        "--archive", type=Path, metavar="DIR",
        help="the directory `trim --archive` wrote (needed once logs were trimmed)",
    )  # fmt: skip
    audit.set_defaults(handler=_audit, command="audit")


def _audit(args: argparse.Namespace) -> int:
    client, deployment = deployment_at(args)
    failed = 0
    for partition in range(deployment.partitions):
        try:
            result = audit_partition(client, partition, deployment.limits, args.archive)
        except IncompleteHistory as exc:
            failed += 1
            print(f"partition {partition}: cannot audit: {exc}", file=sys.stderr)
            continue
        failed += bool(result.differences)
        with output():
            print(_line(result))
    if failed:
        print(f"monitor-es: {failed} partition(s) failed the audit", file=sys.stderr)
        return FAILED
    return OK


def _line(result: AuditResult) -> str:
    if result.mark is None:
        return f"partition {result.partition}: nothing committed yet"
    head = (
        f"partition {result.partition}: {result.entries} entries replayed up to {result.mark}, "
        f"{result.records} records"
    )
    if not result.differences:
        return f"{head}: the committed state matches"
    listed = "; ".join(result.differences[:10])
    more = f" and {len(result.differences) - 10} more" if len(result.differences) > 10 else ""
    return f"{head}: DIFFERS in {len(result.differences)}: {listed}{more}"
