"""redis-server child processes on free local ports, for the tests and the benchmarks."""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

_START_TIMEOUT_S = 10.0


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_cluster_port() -> int:
    # A cluster node also listens on its bus port, port + 10000, so both must be free.
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 30000)
        if port_is_free(port) and port_is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisProcess:
    """A redis-server child process on 127.0.0.1 with its own directory."""

    def __init__(self, binary: str, port: int, directory: Path, config: dict[str, str]) -> None:
        self.binary = binary
        self.port = port
        self.directory = directory
        self.config = {
            "bind": "127.0.0.1",
            "port": str(port),
            "dir": str(directory),
            "logfile": str(directory / "redis.log"),
            "daemonize": "no",
            "save": "",
            **config,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The redis:// URL of the server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [self.binary]
        for name, value in self.config.items():
            args += [f"--{name}", value]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_for_ping()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop the server with ``sig`` and reap it (SIGKILL if it does not exit)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=_START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, *, crash: bool = False) -> None:
        """Stop the server (SIGKILL if ``crash``, else SIGTERM) and start it again in place."""
        self.stop(signal.SIGKILL if crash else signal.SIGTERM)
        self.start()

    def _wait_for_ping(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")
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
