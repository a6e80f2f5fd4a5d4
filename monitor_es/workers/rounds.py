"""Long-running loops that ride out Redis outages: rounds retried with exponential backoff."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

# Backoff between attempts while Redis is unavailable.
RETRY_MIN_S = 0.05
RETRY_MAX_S = 1.0


def backoff(previous_s: float | None, cap_s: float = RETRY_MAX_S) -> float:
    """The next wait of an exponential backoff from RETRY_MIN_S up to ``cap_s``."""
    return min(RETRY_MIN_S if previous_s is None else previous_s * 2, cap_s)


def run_rounds(
    name: str,
    one_round: Callable[[], object],
    every_s: float,
    stop: threading.Event,
    retry_on: tuple[type[Exception], ...],
) -> None:
    """Runs `one_round` every `every_s` until `stop` is set.

    A round that raises one of `retry_on` (Redis unavailable) is retried with backoff up to
    `every_s`, so a process outlives a Redis restart instead of crash-looping.
    """
    wait: float | None = None
    while not stop.is_set():
        try:
            one_round()
        except retry_on as exc:
            wait = backoff(wait, every_s)
            log.warning("%s: round failed (%s); retrying in %.2fs", name, exc, wait)
            stop.wait(wait)
            continue
        if wait is not None:
            log.info("%s: Redis is back", name)
            wait = None
        stop.wait(every_s)
