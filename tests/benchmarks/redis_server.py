"""A throwaway redis-server on a free local port, without persistence, for one benchmark run."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

_START_TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """Starts redis-server on entry (`--save "" --appendonly no`) and kills it on exit."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH; the worker benchmark needs it")
        self.binary = binary
        self.port = _free_port()
        self._directory = tempfile.TemporaryDirectory(prefix="monitor-es-bench-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The redis:// URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> RedisServer:
        directory = Path(self._directory.name)
        args = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port)]
        args += ["--save", "", "--appendonly", "no", "--dir", str(directory)]
        args += ["--logfile", str(directory / "redis.log")]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_for_ping(directory)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None
        self._directory.cleanup()

    def _wait_for_ping(self, directory: Path) -> None:
        assert self._process is not None
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = (directory / "redis.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server exited early:\n{log[-2000:]}")
            probe = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=0.5)
            try:
                if probe.ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                time.sleep(0.02)
            finally:
                probe.close()
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING")
