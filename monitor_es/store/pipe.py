"""One Redis connection whose commands are sent now and whose replies are read later.

A worker on one Redis node sends a batch's commit and the read of a later batch without
waiting, so Redis executes them while Python folds. Replies come back in the order the
commands went out; `Reply.result()` reads every earlier reply first and keeps it for its
own handle, so callers may collect their replies in any order.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from redis.exceptions import ResponseError


class PipeBroken(ConnectionError):
    """The connection failed with replies outstanding: their outcome is unknown."""


class Reply:
    """The reply to one command sent on a Pipe."""

    __slots__ = ("_done", "_error", "_pipe", "_value")

    def __init__(self, pipe: Pipe) -> None:
        self._pipe = pipe
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None

    def result(self) -> Any:
        """Waits for the reply; raises the command's ResponseError, or PipeBroken."""
        if not self._done:
            self._pipe.read_through(self)
        if self._error is not None:
            raise self._error
        return self._value


class Pipe:
    """Sends commands on a dedicated connection and reads their replies in order."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self._waiting: deque[Reply] = deque()

    @property
    def idle(self) -> bool:
        """True when no reply is outstanding (the connection may be handed back)."""
        return not self._waiting

    def send(self, *args: Any) -> Reply:
        """Sends one command; its reply is read when asked for."""
        try:
            self.connection.send_command(*args)
        except Exception:
            self._break()
            raise
        reply = Reply(self)
        self._waiting.append(reply)
        return reply

    def read_through(self, target: Reply) -> None:
        """Reads replies in order until the target's has been read."""
        while not target._done:
            head = self._waiting[0]
            try:
                # Raw RESP: no redis-py response callbacks, the caller parses.
                head._value = self.connection.read_response()
            except ResponseError as exc:
                head._error = exc
            except Exception as exc:
                self._break()
                raise PipeBroken(f"connection lost with replies outstanding: {exc}") from exc
            head._done = True
            self._waiting.popleft()

    def drain(self) -> None:
        """Reads every outstanding reply (their values are dropped with their handles)."""
        if self._waiting:
            self.read_through(self._waiting[-1])

    def _break(self) -> None:
        # The connection's state is unknown: fail every outstanding reply, never reuse it.
        self.connection.disconnect()
        broken = PipeBroken("connection lost before the reply was read")
        for reply in self._waiting:
            reply._done, reply._error = True, broken
        self._waiting.clear()
