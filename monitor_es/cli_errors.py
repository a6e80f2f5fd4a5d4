"""How a `monitor-es` command ends: exit codes, one-line messages instead of tracebacks,
and stopping on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from redis.exceptions import (
    AuthenticationError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
)

from monitor_es.client import InvalidCheckIn
from monitor_es.store.connection import UNAVAILABLE, InvalidRedisURL, safe_url
from monitor_es.store.deployment import DeploymentMismatch, ForeignData, NotInitialised
from monitor_es.store.functions import LibraryOutdated

log = logging.getLogger("monitor_es.cli")

# Exit codes. A usage error exits 2 too (argparse).
OK = 0
FAILED = 1  # a bug; for init, run, worker and pulse also any reason they cannot go on
UNREADABLE = 2  # simulate: the file, the output or Redis cannot be used
INTERRUPTED = 130  # 128 + SIGINT, as shells report it
# Set to see the traceback of an unexpected error (a bug) rather than its one-line summary.
TRACEBACK_ENV = "MONITOR_ES_TRACEBACK"


def failure(exc: Exception, args: argparse.Namespace) -> tuple[str, int]:
    """The one-line message and exit code for an exception that ends a command."""
    unusable: int = args.unusable_code
    if isinstance(exc, OutputFailed):
        return f"cannot write the output: {exc}", unusable
    if isinstance(exc, NotInitialised):
        return f"Redis at {safe_url(args.redis_url)}: {exc}", unusable
    if isinstance(exc, (DeploymentMismatch, ForeignData, LibraryOutdated, InvalidRedisURL)):
        return str(exc), unusable
    if isinstance(exc, NoRedis):
        return str(exc), 2  # a usage error
    if isinstance(exc, InvalidCheckIn):
        return f"check-in refused: {exc}", 2  # what was asked for is wrong, as a usage error
    if isinstance(exc, InUse):
        return f"Redis at {safe_url(args.redis_url)}: {exc}", unusable
    if isinstance(exc, (RedisError, RedisClusterException, *UNAVAILABLE)):
        return redis_problem(exc, args.redis_url), unusable
    if isinstance(exc, OSError):
        return str(exc), unusable
    where = f"; {TRACEBACK_ENV}=1 shows where" if not os.environ.get(TRACEBACK_ENV) else ""
    return f"unexpected {type(exc).__name__}: {exc} (a bug in monitor-es{where})", FAILED


def redis_problem(exc: Exception, url: str | None) -> str:
    """What went wrong with Redis, and what to do about it, in one line."""
    at = f"Redis at {safe_url(url)}"
    if isinstance(exc, AuthenticationError):
        if url is not None and "@" not in url and "password=" not in url:
            return f"{at} requires a password; put it in the URL: redis://[USER]:PASSWORD@HOST:PORT"
        return f"{at} refused the user name or password in the URL ({exc})"
    if isinstance(exc, NoPermissionError):
        return (
            f"{at}: the ACL user may not do what monitor-es needs ({exc}); grant it every "
            "command on the keys mes:* (ACL SETUSER USER ~mes:* +@all)"
        )
    if isinstance(exc, OutOfMemoryError):
        return (
            f"{at} is out of memory and refuses writes ({exc}); free memory or raise "
            "maxmemory, then try again"
        )
    if isinstance(exc, ReadOnlyError):
        return f"{at} is a read-only replica; point --redis-url at the primary"
    if isinstance(exc, ResponseError) and str(exc).startswith("MOVED"):
        return f"{at} is a cluster node; use a redis+cluster:// URL"
    if not_a_cluster(exc):
        return f"{at} is not a cluster; use a redis:// URL"
    if isinstance(exc, (RedisClusterException, *UNAVAILABLE)):
        return f"cannot reach {at}: {exc}"
    return f"{at}: {exc}"


def not_a_cluster(exc: Exception) -> bool:
    return isinstance(exc, RedisClusterException) and "not enabled" in str(exc)


class OutputFailed(Exception):
    """Standard output cannot be written (a full disk, a closed descriptor)."""


@contextmanager
def output() -> Iterator[None]:
    """Reports a failed write to standard output as OutputFailed (a left reader is not one)."""
    try:
        if sys.stdout is None:
            raise OutputFailed("standard output is closed")
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputFailed(exc.strerror or str(exc)) from None


def flush_stdout() -> None:
    with output():
        pass


def drop_stdout() -> None:
    """Points standard output at /dev/null so the exit-time flush does not fail again."""
    if sys.stdout is not None:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class NoRedis(Exception):
    """A command that needs a shared Redis was given none."""


class InUse(Exception):
    """simulate --redis-url was pointed at a deployment that holds entries or runs workers."""


def stop_on_signals() -> threading.Event:
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
