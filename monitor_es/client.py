"""The Python client: a job reports its runs from its own code.

    crons = CronsClient("redis://localhost:6379", project="acme")

    @crons.monitor("nightly-backup", monitor_config={"schedule": "0 3 * * *"})
    def backup() -> None: ...

    with crons.monitor("hourly-sync"):
        sync()

A check-in is checked here for everything the reducer judges from the check-in alone
(GUID, status, duration, environment name, slug, `monitor_config`), so a mistake raises
`InvalidCheckIn` at the call instead of turning up later as an `event_rejected` event. What
depends on the monitor's state (rate limit, a disabled monitor, a run already finished)
can only be judged by the reducer: such a rejection is an `event_rejected` derived event
(`monitor-es tail` shows it).

Every check-in names its run (a random UUID unless given), so appending one twice (a retry
after a lost reply) is harmless: a second `in_progress` is a heartbeat and a second close
is refused as `checkin_finished`, changing nothing.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Final, Literal, ParamSpec, TypeVar, cast

from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from monitor_es.domain.config import validate_config, validate_environment_name
from monitor_es.domain.errors import ErrorType, Rejected, error
from monitor_es.domain.events import CheckInReported
from monitor_es.domain.monitors import checked_slug
from monitor_es.domain.payload import validate_payload
from monitor_es.producer import Producer
from monitor_es.store.connection import REDIS_ERRORS, Client, connect
from monitor_es.store.deployment import NotInitialised

log = logging.getLogger("monitor_es.client")

Status = Literal["in_progress", "ok", "error"]
STATUSES: Final[tuple[Status, ...]] = ("in_progress", "ok", "error")

# A job waits for its check-ins: a Redis that does not answer may delay it by seconds, not
# by the minutes a worker's defaults allow (30 s reads, three retries). URL parameters
# (`?socket_timeout=...`) still win.
SEND_SOCKET: Final[Mapping[str, Any]] = {
    "socket_timeout": 5.0,
    "socket_connect_timeout": 2.0,
    "socket_keepalive": True,
    "retry": Retry(ExponentialBackoff(cap=0.5, base=0.1), 1),
}

# What `Monitored` logs instead of failing the job it reports on.
_NOT_SENT: Final[tuple[type[Exception], ...]] = (
    *REDIS_ERRORS,
    RedisClusterException,
    NotInitialised,
)

# Called with the status and the error when a run's check-in could not be appended.
Unsent = Callable[[Status, Exception], None]

_P = ParamSpec("_P")
_R = TypeVar("_R")


class InvalidCheckIn(ValueError):
    """A check-in the reducer would reject whatever the monitor's state; nothing was sent.

    `errors` are the typed errors in the JSON form of `event_rejected` (domain.md).
    """

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(_describe(e) for e in errors))
        self.errors = errors


def _describe(item: Mapping[str, Any]) -> str:
    details = {k: v for k, v in item.items() if k != "type"}
    return f"{item['type']} {details}" if details else str(item["type"])


def check_in_event(
    project: str,
    monitor_slug: str,
    status: str,
    *,
    check_in_id: str,
    environment: str | None = None,
    duration: float | None = None,
    monitor_config: Mapping[str, Any] | None = None,
    trace_id: str | None = None,
) -> CheckInReported:
    """The check-in event, checked as the reducer checks it; raises InvalidCheckIn."""
    try:
        checked_slug(monitor_slug)
        validate_payload(check_in_id, status, duration, environment, trace_id)
    except Rejected as rejected:
        raise InvalidCheckIn(rejected.errors) from None
    reason = None if environment is None else validate_environment_name(environment)
    if reason is not None:
        raise InvalidCheckIn([error(ErrorType.MONITOR_INVALID_ENVIRONMENT, reason=reason)])
    config = dict(monitor_config) if monitor_config else None
    if config is not None:
        # clamp=True: the reducer validates an upserted config so (spec §2.4).
        problems = validate_config(config, clamp=True)
        if isinstance(problems, dict):
            raise InvalidCheckIn([error(ErrorType.MONITOR_INVALID_CONFIG, errors=problems)])
    return CheckInReported(
        project=project,
        monitor_slug=monitor_slug,
        check_in_id=check_in_id,
        status=status,
        environment=environment,
        duration=duration,
        monitor_config=config,
        trace_id=trace_id,
    )


class CronsClient:
    """Appends a project's check-ins to a monitor-es deployment.

    `redis` is a URL (`redis://`, `redis+cluster://`) or a client; the deployment must be
    initialised (`monitor-es init`). Connecting waits for the first check-in.
    """

    def __init__(
        self, redis: str | Client, project: str, *, environment: str | None = None
    ) -> None:
        self._redis = redis
        self.project = project
        self.environment = environment
        self._producer: Producer | None = None

    def _append(self, event: CheckInReported) -> None:
        if self._producer is None:
            given = self._redis
            client = connect(given, socket=SEND_SOCKET) if isinstance(given, str) else given
            self._producer = Producer(client)  # reads the partition count once
        self._producer.append(event)

    def check_in(
        self,
        monitor_slug: str,
        status: Status,
        *,
        check_in_id: str | None = None,
        environment: str | None = None,
        duration: float | None = None,
        monitor_config: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
    ) -> str:
        """Appends one check-in and returns its id (a new random UUID unless given).

        `duration` is in seconds; without it a closing check-in's duration is the time
        since its `in_progress`, measured on broker time. Raises InvalidCheckIn before
        sending anything, NotInitialised, or a Redis error if it could not be appended.
        """
        run_id = check_in_id or str(uuid.uuid4())
        event = check_in_event(
            self.project,
            monitor_slug,
            status,
            check_in_id=run_id,
            environment=environment if environment is not None else self.environment,
            duration=duration,
            monitor_config=monitor_config,
            trace_id=trace_id,
        )
        self._append(event)
        return run_id

    def monitor(
        self,
        monitor_slug: str,
        *,
        environment: str | None = None,
        monitor_config: Mapping[str, Any] | None = None,
        on_unsent: Unsent | None = None,
    ) -> Monitored:
        """A context manager and decorator reporting each run: `in_progress` as it
        starts, then `ok`, or `error` if it raises (the exception goes on).

        Its arguments are checked now (InvalidCheckIn). Sending never fails the job: if
        Redis cannot take a check-in, `on_unsent(status, error)` is called (by default a
        warning is logged) and the run goes on.
        """
        env = environment if environment is not None else self.environment
        check_in_event(  # any valid id will do: each run gets its own
            self.project,
            monitor_slug,
            "in_progress",
            check_in_id=str(uuid.UUID(int=1)),
            environment=env,
            monitor_config=monitor_config,
        )
        return Monitored(self, monitor_slug, env, monitor_config, on_unsent)


class Monitored:
    """Reports runs of one monitor; made by `CronsClient.monitor`."""

    def __init__(
        self,
        client: CronsClient,
        monitor_slug: str,
        environment: str | None,
        monitor_config: Mapping[str, Any] | None,
        on_unsent: Unsent | None,
    ) -> None:
        self._client = client
        self._on_unsent = on_unsent
        self._slug = monitor_slug
        self._environment = environment
        self._config = monitor_config
        self._runs: list[Run] = []  # a stack: the same object can be entered again inside

    def start(self) -> Run:
        """Begins a run and reports it (`in_progress`); `finish` reports its end."""
        run = self.begin()
        self.report_start(run)
        return run

    def begin(self) -> Run:
        """A new run (its id, and its start for the duration), not reported yet."""
        return Run(str(uuid.uuid4()), time.monotonic())

    def report_start(self, run: Run) -> None:
        """Reports a run's start (`in_progress`)."""
        self._send(run, "in_progress", None)

    def beat(self, run: Run) -> None:
        """Reports that the run goes on (`in_progress` again), pushing its timeout out."""
        self._send(run, "in_progress", None)

    def finish(self, run: Run, *, failed: bool) -> None:
        """Reports the end of a run, with its duration measured here."""
        self._send(run, "error" if failed else "ok", time.monotonic() - run.started)

    def _send(self, run: Run, status: Status, duration: float | None) -> None:
        try:
            self._client.check_in(
                self._slug,
                status,
                check_in_id=run.check_in_id,
                environment=self._environment,
                duration=duration,
                # With every check-in: a close whose opening was lost still creates the monitor.
                monitor_config=self._config,
            )
        except _NOT_SENT as exc:
            if self._on_unsent is None:
                log.warning("monitor-es: %s check-in of %s not sent: %s", status, self._slug, exc)
            else:
                self._on_unsent(status, exc)

    def __enter__(self) -> str:
        run = self.start()
        self._runs.append(run)
        return run.check_in_id

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.finish(self._runs.pop(), failed=exc_type is not None)

    def __call__(self, func: Callable[_P, _R]) -> Callable[_P, _R]:
        """Decorates a function (or a coroutine function): each call is one run."""
        if inspect.iscoroutinefunction(func):
            coroutine = cast("Callable[_P, Awaitable[Any]]", func)

            @functools.wraps(func)
            async def run_async(*args: _P.args, **kwargs: _P.kwargs) -> Any:
                # In a thread: a slow Redis must not stall the event loop's other tasks.
                run = await asyncio.to_thread(self.start)
                try:
                    result = await coroutine(*args, **kwargs)
                except BaseException:
                    await asyncio.to_thread(self.finish, run, failed=True)
                    raise
                await asyncio.to_thread(self.finish, run, failed=False)
                return result

            return cast("Callable[_P, _R]", run_async)

        @functools.wraps(func)
        def run_sync(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            run = self.start()
            try:
                result = func(*args, **kwargs)
            except BaseException:
                self.finish(run, failed=True)
                raise
            self.finish(run, failed=False)
            return result

        return run_sync


class Run:
    """One run being reported: its check-in id and when it started (monotonic seconds)."""

    __slots__ = ("check_in_id", "started")

    def __init__(self, check_in_id: str, started: float) -> None:
        self.check_in_id = check_in_id
        self.started = started
