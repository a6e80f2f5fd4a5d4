"""The `monitor-es` command: the only place that wires the parts together."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from tempfile import TemporaryFile
from typing import cast

from monitor_es import (
    cli_audit,
    cli_dead_letters,
    cli_explain,
    cli_processes,
    cli_read,
    cli_send,
    cli_trim,
)
from monitor_es.cli_errors import (
    FAILED,
    INTERRUPTED,
    OK,
    TRACEBACK_ENV,
    UNREADABLE,
    InUse,
    drop_stdout,
    failure,
    flush_stdout,
    output,
)
from monitor_es.cli_options import (
    limit_options,
    limits_from,
    positive,
    redis_url,
    requested_limits,
)
from monitor_es.domain.partition import Partition
from monitor_es.domain.state import Environment
from monitor_es.redis_simulate import simulate_on_redis
from monitor_es.replay import ReducerFailed, fold_scenario
from monitor_es.scenario import InvalidLine, line_of
from monitor_es.store import keys
from monitor_es.store.connection import Client, connect
from monitor_es.store.deployment import (
    check_request,
    load_deployment,
)
from projections.report import EventSpool, Report
from projections.summary import print_summary

log = logging.getLogger("monitor_es.cli")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = _parser()
    words, command = cli_send.split_command(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(words)
    if command is not None:
        args.argv = command
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        result = handler(args)
        flush_stdout()  # a write error shows here, not as a warning at interpreter exit
    except KeyboardInterrupt:  # Ctrl-C where no handler stops cleanly (simulate, start-up)
        print("monitor-es: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # `monitor-es ... | head`: the reader left; that is not an error
        drop_stdout()
        return OK
    except Exception as exc:
        message, code = failure(exc, args)
        if os.environ.get(TRACEBACK_ENV):
            traceback.print_exc()
        print(f"monitor-es: {message}", file=sys.stderr)
        return code
    return result


def _version() -> str:
    try:
        return version("monitor-es")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor-es",
        description="Cron-job monitoring on Redis Streams.",
        epilog="`monitor-es COMMAND --help` describes a command. Exit codes: 0 ok; 1 a bug, "
        "or any other command cannot go on (the reason is on stderr); 2 a usage error, a "
        "refused check-in, or simulate cannot read its file, write its output or use Redis. "
        "exec exits with its command's status.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.set_defaults(unusable_code=FAILED, redis_url=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    sim = commands.add_parser(
        "simulate",
        help="fold a JSON Lines scenario with the pure reducer",
        description="Folds a scenario (JSON Lines of inbound events, - for standard input) "
        "and prints every environment, check-in, incident, derived event and rejected line. "
        "Exits 0 when the file was folded (rejected lines are results), 1 on a reducer bug, 2 when "
        "the file, the output or Redis cannot be used.",
    )
    sim.add_argument(
        "file", type=Path, help="scenario file (JSON Lines, see domain.md; - for stdin)"
    )
    sim.add_argument("--json", action="store_true", help="print the full JSON document")
    sim.add_argument(
        "--redis-url",
        type=redis_url,
        help="push the scenario through the real pipeline on this Redis and read it back",
    )
    sim.add_argument(
        "--partitions",
        type=positive,
        metavar="N",
        help="partitions for an empty database (default 1); an "
        "initialised one keeps its own, which this must not contradict",
    )
    limit_options(sim)
    sim.set_defaults(handler=_simulate, unusable_code=UNREADABLE)

    cli_processes.add_commands(commands)
    cli_send.add_commands(commands)
    cli_read.add_commands(commands)
    cli_dead_letters.add_commands(commands)
    cli_trim.add_commands(commands)
    cli_audit.add_commands(commands)
    cli_explain.add_commands(commands)
    return parser


def _simulate(args: argparse.Namespace) -> int:
    try:
        source = sys.stdin.buffer if str(args.file) == "-" else args.file.open("rb")
    except OSError as exc:
        print(f"monitor-es: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return UNREADABLE
    with source, ExitStack() as stack:
        spool = EventSpool(stack.enter_context(TemporaryFile())) if args.json else None
        report = Report(line_of, spool)
        try:
            environments = _fold_scenario(args, source, report)
        except (ConnectionError, TimeoutError):  # builtin OSErrors of a Redis connection
            raise
        except OSError as exc:  # the file went away or failed while it was read
            print(f"monitor-es: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
            return UNREADABLE
        except ReducerFailed as exc:
            print(f"monitor-es: {args.file}: {exc} (a bug in monitor-es)", file=sys.stderr)
            return FAILED
        # Redis errors and refusals go to main, which names them (exit 2 for simulate).
        with output():
            if args.json:
                report.write_json(sys.stdout.buffer, environments)
            else:
                print_summary(report, environments)
    # Rejected lines are results (the document lists them), not a failure of the command.
    return OK


def _fold_scenario(
    args: argparse.Namespace, source: Iterable[bytes], report: Report
) -> list[Environment]:
    """Folds the scenario into the report, streaming it unless it goes through Redis."""
    if args.redis_url:
        # It hands the lines to split_scenario, which reads bytes lines too (its Iterable[str]
        # annotation predates that).
        lines = cast("Iterable[str]", source)
        client = connect(args.redis_url)
        _refuse_a_deployment_in_use(client, args)
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


def _refuse_a_deployment_in_use(client: Client, args: argparse.Namespace) -> None:
    """simulate --redis-url appends the scenario and folds it itself: only onto empty logs.

    On a deployment in use it would put test events into real logs (and race its workers).
    Settings that contradict the deployment's are reported first, as init reports them.
    """
    deployment = load_deployment(client)
    if deployment is None:
        return
    check_request(deployment, args.partitions, requested_limits(args))
    pipe = client.pipeline(transaction=False)
    for partition in range(deployment.partitions):
        pk = keys.partition_keys(partition)
        pipe.xlen(pk.log)
        pipe.exists(pk.lease)
    replies = pipe.execute()
    entries, leased = sum(replies[0::2]), sum(replies[1::2])
    if entries or leased or client.exists(keys.PULSER_LEASE):
        raise InUse(
            f"the deployment there is in use ({entries} log entries, {leased} partitions "
            "leased by workers): simulate --redis-url appends the scenario to the logs, so it "
            "needs a database of its own; use an empty one (redis://host:port/N)"
        )


if __name__ == "__main__":
    raise SystemExit(main())
