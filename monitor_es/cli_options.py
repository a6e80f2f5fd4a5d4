"""The command line's options and argument types: what a usage error is."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from dataclasses import replace

from monitor_es.cli_errors import NoRedis
from monitor_es.domain.partition import Limits
from monitor_es.store.connection import Client, InvalidRedisURL, check_url, connect
from monitor_es.store.deployment import Deployment, require_deployment

URL_ENV = "MONITOR_ES_REDIS_URL"


def redis_option(parser: argparse.ArgumentParser, *, embedded: bool = False) -> None:
    """--redis-url, defaulting to $MONITOR_ES_REDIS_URL."""
    # argparse checks a string default with `type` too, so a bad $MONITOR_ES_REDIS_URL is
    # reported like a bad option.
    otherwise = ", else an embedded in-process Redis" if embedded else "; required"
    parser.add_argument(
        "--redis-url",
        type=redis_url,
        default=os.environ.get(URL_ENV),
        help=f"redis://host:port or redis+cluster://host:port (default: ${URL_ENV}{otherwise})",
    )


def deployment_at(args: argparse.Namespace) -> tuple[Client, Deployment]:
    """A client of the deployment at --redis-url; NoRedis or NotInitialised otherwise."""
    if args.redis_url is None:
        raise NoRedis(f"{args.command} needs a Redis: give --redis-url or set ${URL_ENV}")
    client = connect(args.redis_url)
    return client, require_deployment(client)


def interval_option(parser: argparse.ArgumentParser) -> None:
    """--interval: seconds between clock pulses."""
    parser.add_argument(
        "--interval", type=seconds, default=5.0, metavar="SECONDS",
        help=f"seconds between pulses (default 5, at least {MIN_INTERVAL_S})",
    )  # fmt: skip


def metrics_options(parser: argparse.ArgumentParser) -> None:
    """--metrics-port and --metrics-host: serve Prometheus figures (off unless a port is given)."""
    parser.add_argument(
        "--metrics-port", type=port_number, metavar="PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (default: not served)",
    )  # fmt: skip
    parser.add_argument(
        "--metrics-host", default="0.0.0.0", metavar="HOST",
        help="the address the metrics port listens on (default 0.0.0.0: every interface)",
    )  # fmt: skip


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 1-65535."""
    value = at_least(1)(text)
    if value > 65_535:
        raise argparse.ArgumentTypeError(f"not a TCP port (1-65535): {value}")
    return value


def redis_url(text: str) -> str:
    """An argparse type: a URL redis-py can use (a bad one is a usage error)."""
    try:
        return check_url(text)
    except InvalidRedisURL as exc:
        source = " (it is $MONITOR_ES_REDIS_URL)" if text == os.environ.get(URL_ENV) else ""
        raise argparse.ArgumentTypeError(f"{exc}{source}") from None


# Option -> Limits field. Unset options are None, so an existing deployment's stored limits
# are only contradicted by what the user actually asked for.
_LIMIT_OPTIONS = {
    "max_monitors": "max_monitors_per_project",
    "max_environments": "max_environments_per_monitor",
    "rate_limit": "checkins_per_minute",
}


def limit_options(parser: argparse.ArgumentParser) -> None:
    """--max-monitors, --max-environments and --rate-limit (unset: not asked for)."""
    defaults = Limits()
    parser.add_argument(
        "--max-monitors", type=positive, metavar="N",
        help=f"monitors per project (default {defaults.max_monitors_per_project})",
    )  # fmt: skip
    parser.add_argument(
        "--max-environments", type=positive, metavar="N",
        help=f"environments per monitor (default {defaults.max_environments_per_monitor})",
    )  # fmt: skip
    parser.add_argument(
        "--rate-limit", type=positive, metavar="N",
        help=f"check-ins per environment and minute (default {defaults.checkins_per_minute})",
    )  # fmt: skip


# Shorter leases or pulse intervals would spend the process on renewing them.
MIN_LEASE_TTL_MS = 100
MIN_INTERVAL_S = 0.1


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than ``minimum``."""

    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return whole_number


positive = at_least(1)


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds, at least MIN_INTERVAL_S."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < MIN_INTERVAL_S:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_INTERVAL_S} s, got {text}")
    return value


def requested_limits(args: argparse.Namespace) -> dict[str, int]:
    """The limits the command line names (by Limits field); the others are not asked for."""
    return {
        field: value
        for option, field in _LIMIT_OPTIONS.items()
        if (value := getattr(args, option)) is not None
    }


def limits_from(args: argparse.Namespace) -> Limits:
    """The limits the command line asks for, defaults for the rest (the pure simulate)."""
    return replace(Limits(), **requested_limits(args))
