"""`monitor-es explain PROJECT/MONITOR[/ENV]`: why an environment is in its status, as the
chain of log entries and derived events that led there (explain.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

import msgspec

from monitor_es.cli_errors import OK, output
from monitor_es.cli_options import deployment_at, redis_option
from monitor_es.domain.events import CheckInCreated, CheckInUpdated, DerivedEvent, event_json
from monitor_es.domain.state import Environment
from monitor_es.domain.time import iso
from monitor_es.explain import EnvKey, Step, explain, inbound_json
from monitor_es.store.history import committed_snapshot, folded_history
from monitor_es.store.keys import partition_for
from monitor_es.workers.tail import describe


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Registers `explain`."""
    command = commands.add_parser(
        "explain",
        help="show the entries and events that put an environment in its status",
        description="Replays the environment's partition (its archive under --archive, then "
        "its log, up to what the workers committed) and prints, oldest first, the last "
        "--last log entries that concerned the environment (its check-ins, its monitor's "
        "changes, and entries that moved the clock past one of its deadlines), each with "
        "the derived events it caused for it; then the environment's status. Exits 0, or 1 "
        "if the deployment or its history cannot be read.",
    )
    redis_option(command)
    command.add_argument(
        "environment", type=_env_key, metavar="PROJECT/MONITOR[/ENV]",
        help="the environment (production when ENV is left out)",
    )  # fmt: skip
    command.add_argument(
        "--last", type=int, default=20, metavar="N", help="entries to show (default 20)"
    )
    command.add_argument(
        "--archive", type=Path, metavar="DIR",
        help="the directory `trim --archive` wrote (needed once logs were trimmed)",
    )  # fmt: skip
    command.add_argument(
        "--json", action="store_true",
        help="one JSON object a line: the entry, its broker time, whether it is about the "
        "monitor (own) or only moved the clock, and its derived events",
    )  # fmt: skip
    command.set_defaults(handler=_explain, command="explain")


def _env_key(text: str) -> EnvKey:
    try:
        return EnvKey.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _explain(args: argparse.Namespace) -> int:
    client, deployment = deployment_at(args)
    key: EnvKey = args.environment
    partition = partition_for(key.project, key.monitor_slug, deployment.partitions)
    snapshot = committed_snapshot(client, partition)
    steps: list[Step] = []
    status = "nothing committed yet"
    if snapshot.mark is not None:
        history = folded_history(client, partition, snapshot.mark, args.archive)
        steps, state = explain(history, snapshot.dead_ids, deployment.limits, key)
        env = state.environment((key.project, key.monitor_slug, key.environment))
        status = "no such environment" if env is None else _status(env)
    shown = steps[-args.last :] if args.last > 0 else []
    with output():
        for step in shown:
            print(_json(step) if args.json else _text(step))
        if not args.json:
            where = f"{key.project}/{key.monitor_slug}/{key.environment}"
            print(f"{where}: {status} ({len(steps)} entries concerned it, {len(shown)} shown)")
    return OK


def _status(env: Environment) -> str:
    incident = env.incident
    if incident is None:
        return env.status.value
    return f"{env.status.value}, incident {incident.id} open since {iso(incident.started_at)}"


def _text(step: Step) -> str:
    data = inbound_json(step.event)
    if step.own:
        what = " ".join(str(data[k]) for k in ("type", "status", "check_in_id") if k in data)
    else:
        what = f"clock moved by {data['type']}"
    lines = [f"{iso(step.ts)}  {step.entry_id}  {what}"]
    lines += [f"    {describe(event)}{_check_in(event)}" for event in step.derived]
    return "\n".join(lines)


def _check_in(event: DerivedEvent) -> str:
    """The status and id of a check-in record (describe leaves them out)."""
    if not isinstance(event, CheckInCreated | CheckInUpdated):
        return ""
    return f" {event.status} {event.check_in_id}"


def _json(step: Step) -> str:
    row = {
        "entry_id": step.entry_id,
        "ts": iso(step.ts),
        "own": step.own,  # about this monitor; otherwise the entry only moved the clock
        "entry": inbound_json(step.event),
        "events": [event_json(event) for event in step.derived],
    }
    return msgspec.json.encode(row).decode()
