"""Ending the processes a test started: collect exit codes, and leave none behind."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterable

_EXIT_TIMEOUT_S = 15


def exit_codes(procs: Iterable[subprocess.Popen[bytes]]) -> list[int]:
    """Waits for each process (already asked to stop); one still running is killed."""
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=_EXIT_TIMEOUT_S))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    return codes


def reap(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """Kills every process still alive, a paused (SIGSTOPped) one included."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait()
