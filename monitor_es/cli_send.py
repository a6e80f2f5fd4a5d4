"""Commands that append check-ins to a deployment: `checkin` and `exec`.

`exec` wraps a job the way cron runs it: it reports the start, runs the command, reports
how it ended and exits as the command did. Monitoring never stands between cron and the
job: if Redis cannot take a check-in the job runs all the same (a warning says so).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from monitor_es.cli_errors import OK, NoRedis, output, redis_problem
from monitor_es.cli_options import URL_ENV, at_least, redis_option
from monitor_es.client import (
    STATUSES,
    CronsClient,
    Monitored,
    Run,
    Status,
    Unsent,
)
from monitor_es.domain.config import DEFAULT_MARGIN_MINUTES, DEFAULT_MAX_RUNTIME_MINUTES
from monitor_es.store.deployment import NotInitialised

PROJECT_ENV = "MONITOR_ES_PROJECT"
ENVIRONMENT_ENV = "MONITOR_ES_ENVIRONMENT"
# Heartbeats count against the rate limit (6 check-ins per environment and minute).
MIN_HEARTBEAT_S = 60
# Shell conventions for a command that could not be started, and for a signal's death.
NOT_EXECUTABLE, NOT_FOUND, SIGNAL_BASE = 126, 127, 128
# Supervisors stop a job by signalling the wrapper: the job must hear it. SIGINT and SIGQUIT
# from a terminal reach the whole foreground group, the job included, so the wrapper only
# ignores them (as time(1) does) rather than deliver them twice.
_FORWARDED = (signal.SIGTERM, signal.SIGHUP)
_IGNORED = (signal.SIGINT, signal.SIGQUIT)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers `checkin` and `exec`."""
    checkin = commands.add_parser(
        "checkin",
        help="append one check-in",
        description="Appends one check-in and prints its id. A script can open a run with "
        "`id=$(monitor-es checkin JOB in_progress)` and close it with `monitor-es checkin "
        "JOB ok --id $id`. A check-in that is wrong in itself is refused here (exit 2); one "
        "the monitor's state refuses (rate limit, disabled monitor) becomes an "
        "event_rejected event (`monitor-es tail` shows it).",
    )
    _common_options(checkin)
    checkin.add_argument("status", choices=STATUSES, help="what the run reports")
    checkin.add_argument("--id", help="the run's check-in id (default: a new random UUID)")
    checkin.add_argument(
        "--duration", type=float, metavar="SECONDS",
        help="the run's duration (default: measured from its in_progress on broker time)",
    )  # fmt: skip
    checkin.add_argument("--trace-id", help="a trace id (UUID) linking errors to the run")
    checkin.set_defaults(handler=_checkin, command="checkin")

    run = commands.add_parser(
        "exec",
        usage="monitor-es exec [options] MONITOR -- COMMAND [ARG ...]",
        help="run a command and report it as a check-in",
        description="Reports in_progress, runs COMMAND, reports ok (exit status 0) or error "
        "with the measured duration, and exits with COMMAND's status (126/127 if it cannot "
        "be started, 128+N if signal N ended it). SIGTERM and SIGHUP are passed on to it. "
        "If Redis cannot take a check-in, COMMAND runs all the same and a warning says so.",
    )
    _common_options(run)
    run.add_argument(
        "--heartbeat", type=at_least(MIN_HEARTBEAT_S), metavar="SECONDS",
        help="report in_progress again this often while COMMAND runs, pushing its "
        f"max_runtime timeout out (at least {MIN_HEARTBEAT_S}; default: never)",
    )  # fmt: skip
    # The words after `--` never reach argparse (split_command): an option of the job's own
    # must not be read as ours, and argparse cannot take options between two positionals.
    run.set_defaults(handler=_exec, command="exec", argv=[])


def split_command(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """`exec`'s own arguments, and the job's command after the first `--` (None: no `--`)."""
    words = list(argv)
    # The top-level parser takes only flags, so its first other word names the command.
    first = next((word for word in words if not word.startswith("-")), None)
    if first == "exec" and "--" in words:
        at = words.index("--")
        return words[:at], words[at + 1 :]
    return words, None


def _common_options(parser: argparse.ArgumentParser) -> None:
    redis_option(parser)
    parser.add_argument(
        "--project", default=os.environ.get(PROJECT_ENV),
        help=f"the project (default: ${PROJECT_ENV}; required)",
    )  # fmt: skip
    parser.add_argument("monitor", metavar="MONITOR", help="the monitor's slug")
    parser.add_argument(
        "--env", default=os.environ.get(ENVIRONMENT_ENV) or None,
        help=f"the environment (default: ${ENVIRONMENT_ENV}, else production)",
    )  # fmt: skip
    config = parser.add_argument_group(
        "monitor config", "create or update the monitor with the check-in (upsert)"
    )
    kind = config.add_mutually_exclusive_group()
    kind.add_argument("--schedule", metavar="CRONTAB", help='a crontab, e.g. "0 3 * * *"')
    kind.add_argument(
        "--interval", metavar="N UNIT", help='an interval, e.g. "10 minute" (minute ... year)'
    )
    config.add_argument("--timezone", help="the schedule's time zone (default UTC)")
    config.add_argument(
        "--checkin-margin", type=int, metavar="MINUTES",
        help=f"how late a check-in may be before it is missed (default {DEFAULT_MARGIN_MINUTES})",
    )  # fmt: skip
    config.add_argument(
        "--max-runtime", type=int, metavar="MINUTES",
        help="how long a run may stay in progress before it times out "
        f"(default {DEFAULT_MAX_RUNTIME_MINUTES})",
    )  # fmt: skip
    config.add_argument(
        "--failure-threshold", type=int, metavar="N",
        help="consecutive failures that open an incident (default 1)",
    )  # fmt: skip
    config.add_argument(
        "--recovery-threshold", type=int, metavar="N",
        help="consecutive ok check-ins that resolve it (default 1)",
    )  # fmt: skip


def monitor_config(args: argparse.Namespace) -> dict[str, Any] | None:
    """The upsert config the options ask for (None without any); validated by the client."""
    config: dict[str, Any] = {}
    if args.schedule is not None:
        config.update(schedule_type="crontab", schedule=args.schedule)
    if args.interval is not None:
        value, _, unit = args.interval.strip().partition(" ")
        number: int | str = int(value) if value.isdigit() else value
        config.update(schedule_type="interval", schedule=[number, unit.strip()])
    optional = {
        "timezone": args.timezone,
        "checkin_margin": args.checkin_margin,
        "max_runtime": args.max_runtime,
        "failure_issue_threshold": args.failure_threshold,
        "recovery_threshold": args.recovery_threshold,
    }
    config.update({key: value for key, value in optional.items() if value is not None})
    return config or None


def _client(args: argparse.Namespace) -> CronsClient:
    if args.redis_url is None:
        raise NoRedis(f"{args.command} needs a Redis: give --redis-url or set ${URL_ENV}")
    if not args.project:
        raise NoRedis(f"{args.command} needs a project: give --project or set ${PROJECT_ENV}")
    return CronsClient(args.redis_url, args.project, environment=args.env)


def _checkin(args: argparse.Namespace) -> int:
    # A refused check-in, an uninitialised deployment or a Redis error ends in main.
    run_id = _client(args).check_in(
        args.monitor,
        args.status,
        check_in_id=args.id,
        duration=args.duration,
        monitor_config=monitor_config(args),
        trace_id=args.trace_id,
    )
    with output():
        print(run_id)
    return OK


def _exec(args: argparse.Namespace) -> int:
    argv: list[str] = args.argv
    if not argv:
        print("monitor-es exec: no command given (monitor-es exec JOB -- COMMAND)", file=sys.stderr)
        return 2
    # A mistake in the options (InvalidCheckIn) ends in main as a usage error, before the
    # job runs.
    job = _client(args).monitor(
        args.monitor, monitor_config=monitor_config(args), on_unsent=_warning(args)
    )
    run = job.begin()
    # The job starts at once: a slow Redis delays its in_progress, never the job itself.
    opening = threading.Thread(target=job.report_start, args=(run,), name="in_progress")
    opening.start()
    with _signals_for_the_job() as forward, _heartbeats(job, run, args.heartbeat):
        try:
            child = subprocess.Popen(argv)
        except OSError as exc:
            print(f"monitor-es: cannot run {argv[0]}: {exc.strerror or exc}", file=sys.stderr)
            code = NOT_FOUND if isinstance(exc, FileNotFoundError) else NOT_EXECUTABLE
        else:
            forward.adopt(child)
            code = child.wait()
            code = code if code >= 0 else SIGNAL_BASE - code
    opening.join()  # the close must follow the opening in the log
    job.finish(run, failed=code != 0)
    return code


def _warning(args: argparse.Namespace) -> Unsent:
    """Says on stderr that a check-in was not sent, and why, in one line."""

    def warn(status: Status, exc: Exception) -> None:
        why = str(exc) if isinstance(exc, NotInitialised) else redis_problem(exc, args.redis_url)
        print(f"monitor-es: the {status} check-in was not sent: {why}", file=sys.stderr)

    return warn


class _Forwarder:
    """Passes signals on to the job, holding those that arrive before it has started."""

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.held: list[int] = []

    def __call__(self, signum: int, frame: object) -> None:
        if self.child is None:
            self.held.append(signum)
        else:
            self.child.send_signal(signum)

    def adopt(self, child: subprocess.Popen[bytes]) -> None:
        self.child = child
        for signum in self.held:
            child.send_signal(signum)


def _ignore(signum: int, frame: object) -> None:
    pass


@contextmanager
def _signals_for_the_job() -> Iterator[_Forwarder]:
    """Passes SIGTERM and SIGHUP on to the job; ignores SIGINT and SIGQUIT meanwhile."""
    forward = _Forwarder()
    previous = {s: signal.signal(s, forward) for s in _FORWARDED}
    # A handler that does nothing, not SIG_IGN: an ignored signal stays ignored across exec,
    # and the job must still stop on Ctrl-C.
    previous.update({s: signal.signal(s, _ignore) for s in _IGNORED})
    try:
        yield forward
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def _heartbeats(job: Monitored, run: Run, every: float | None) -> Iterator[None]:
    """Reports the run as going on every `every` seconds, until the block ends."""
    if every is None:
        yield
        return
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every):
            job.beat(run)

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
