"""docker-compose.yml and the Dockerfile, checked as files: no Docker engine runs here.

What can be wrong without running them: a command the CLI does not accept, a Redis that
would lose acknowledged data or evict keys, workers that start before init, an image that
misses a package.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor_es.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP_SERVICES = ("init", "worker", "pulse", "trim")


def _parsed(command: list[str]) -> argparse.Namespace:
    try:
        return _parser().parse_args(command)
    except SystemExit as exc:  # argparse's way of refusing
        raise AssertionError(f"monitor-es refuses {command}") from exc


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_monitor_es_service_runs_a_command_the_cli_accepts(name: str) -> None:
    service = SERVICES[name]
    args = _parsed(service["command"])
    assert args.handler.__name__ == f"_{service['command'][0]}"
    assert service["environment"]["MONITOR_ES_REDIS_URL"] == "redis://redis:6379/0"
    assert service["build"] == "."


def test_redis_keeps_what_was_acknowledged_and_never_evicts() -> None:
    # README "Redis settings": AOF fsynced every second, noeviction.
    command = SERVICES["redis"]["command"].split()
    options = dict(zip(command[1::2], command[2::2], strict=False))
    assert command[0] == "redis-server"
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] == "everysec"
    assert options["--maxmemory-policy"] == "noeviction"
    assert SERVICES["redis"]["volumes"] == ["redis-data:/data"]
    assert "redis-data" in COMPOSE["volumes"]
    assert int(SERVICES["redis"]["image"].split(":")[1].split(".")[0]) >= 7  # Functions


def test_workers_and_pulsers_start_only_after_init_succeeded() -> None:
    assert SERVICES["init"]["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert SERVICES["init"]["restart"] == "no"  # a one-shot job
    for name in ("worker", "pulse", "trim"):
        depends = SERVICES[name]["depends_on"]
        assert depends == {"init": {"condition": "service_completed_successfully"}}
        assert SERVICES[name]["restart"] == "unless-stopped"


def test_the_image_holds_every_package_and_runs_the_console_script() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lines = [line.split() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    instructions = [words for words in lines if words and not words[0].startswith("#")]
    base = instructions[0]
    assert base[0] == "FROM" and base[1].startswith("python:3.1")
    copied = {words[1] for words in instructions if words[0] == "COPY"}
    copied |= {name for words in instructions if words[0] == "COPY" for name in words[1:-1]}
    for package in project["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert package.rstrip("*") in copied, package
    assert "pyproject.toml" in copied
    runs = [words[1:] for words in instructions if words[0] == "RUN"]
    assert any(run[:3] == ["pip", "install", "."] for run in runs)  # the project itself
    # ... with the exact versions CI passed with, as make installs them.
    assert "constraints.txt" in copied
    assert any(run[:5] == ["pip", "install", ".", "-c", "constraints.txt"] for run in runs)
    (script,) = project["project"]["scripts"]
    assert ["ENTRYPOINT", f'["{script}"]'] in instructions
    assert any(words[0] == "USER" for words in instructions)  # not root


def test_trim_archives_to_a_volume_the_image_lets_it_write() -> None:
    args = _parsed(SERVICES["trim"]["command"])
    assert args.archive is not None and args.every is not None  # never drops history silently
    volume, mount = SERVICES["trim"]["volumes"][0].split(":")
    assert str(args.archive) == mount and volume in COMPOSE["volumes"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"install -d -o monitor-es {mount}" in dockerfile
