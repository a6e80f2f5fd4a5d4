"""A throwaway redis-server on a free local port, without persistence, for one benchmark run."""

from __future__ import annotations

import shutil
import signal
import tempfile
from pathlib import Path
from types import TracebackType

from tests.redis_process import RedisProcess, free_port


class RedisServer:
    """Starts redis-server on entry (`--save "" --appendonly no`) and kills it on exit."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH; the worker benchmark needs it")
        self._directory = tempfile.TemporaryDirectory(prefix="monitor-es-bench-")
        self._server = RedisProcess(
            binary, free_port(), Path(self._directory.name), {"appendonly": "no"}
        )
        self.port = self._server.port

    @property
    def url(self) -> str:
        """The redis:// URL of database 0."""
        return self._server.url

    def __enter__(self) -> RedisServer:
        self._server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.stop(signal.SIGKILL)
        self._directory.cleanup()
