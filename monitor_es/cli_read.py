"""Commands that read a deployment's state and derived events."""

from __future__ import annotations

import argparse


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers this module's commands (none yet)."""
