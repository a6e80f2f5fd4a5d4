"""`monitor-es dead-letters`: the log entries the workers set aside, with why, so an operator
can see what a producer sent wrong or which entry a reducer bug failed on."""

from __future__ import annotations

import argparse
import base64
import sys
from datetime import datetime
from typing import Any

import msgspec

from monitor_es.cli_errors import OK, output
from monitor_es.cli_options import deployment_at, redis_option
from monitor_es.codec import UndecodableEntry, decode_entry
from monitor_es.domain.time import from_ms, iso
from monitor_es.explain import inbound_json
from monitor_es.store.log import DeadLetter, PartitionStore, parse_id


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers `dead-letters`."""
    command = commands.add_parser(
        "dead-letters",
        help="list the log entries set aside as undecodable or failing",
        description="Lists every partition's dead letters, oldest first: the log entry's id "
        "and broker time, how many attempts were made, the reason, and the entry itself (the "
        "event, when it decodes). Exits 0, or 1 if the deployment cannot be read.",
    )
    redis_option(command)
    command.add_argument(
        "--json", action="store_true",
        help="one JSON object a line, with the payload in base64 as the log held it",
    )  # fmt: skip
    command.set_defaults(handler=_dead_letters, command="dead-letters")


def _dead_letters(args: argparse.Namespace) -> int:
    client, deployment = deployment_at(args)
    partitions = deployment.partitions
    found = 0
    for partition in range(partitions):
        for dlq_id, letter in PartitionStore(client, partition).read_dlq():
            found += 1
            row = dead_letter_row(partition, dlq_id, letter)
            with output():
                if args.json:
                    print(msgspec.json.encode(row).decode())
                else:
                    print(_line(row))
    if not args.json:
        print(f"{found} dead letter(s) in {partitions} partition(s)", file=sys.stderr)
    return OK


def dead_letter_row(partition: int, dlq_id: str, letter: DeadLetter) -> dict[str, Any]:
    """One dead letter in its JSON form."""
    try:
        entry = decode_entry(letter.entry_id, letter.payload)
        event: Any = inbound_json(entry.event)
    except UndecodableEntry:
        event = None
    return {
        "partition": partition,
        "id": dlq_id,
        "entry_id": letter.entry_id,
        "entry_time": iso(_entry_time(letter.entry_id)),
        "attempts": letter.attempts,
        "reason": letter.reason,
        "event": event,
        "payload": base64.b64encode(letter.payload).decode(),
    }


def _entry_time(entry_id: str) -> datetime | None:
    """The broker time of an entry id (None for an id beyond what a datetime holds: such an
    entry is dead-lettered for that very reason)."""
    try:
        return from_ms(parse_id(entry_id)[0])
    except (ValueError, OverflowError):
        return None


def _line(row: dict[str, Any]) -> str:
    what = (
        msgspec.json.encode(row["event"]).decode()
        if row["event"] is not None
        else f"{len(base64.b64decode(row['payload']))} bytes that are no event"
    )
    return (
        f"partition {row['partition']}: entry {row['entry_id']} ({row['entry_time']}), "
        f"{row['attempts']} attempt(s): {row['reason']}\n  {what}"
    )
