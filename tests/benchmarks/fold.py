"""The pure fold rate: wire bytes -> decode -> reducer, against a trivial fold of the same bytes.

Both sides decode every entry with `codec.decode_entry` in batches of 500; the reducer side
folds each batch into one Partition, the baseline does one dict update per event. Only
check-ins are counted in the rates (pulses are reported apart). A third side, the skeleton
fold of skeleton.py, shows the least any fold of this design costs here. Each side is warmed
up once, then three alternating runs of each; the best of each side is kept.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor_es.codec import decode_entry, encode_record, environment_field
from monitor_es.domain.events import CheckInReported
from monitor_es.domain.partition import Partition
from monitor_es.domain.reducer import LogEntry, fold
from tests.benchmarks.report import Figure, number, percentile, table
from tests.benchmarks.skeleton import skeleton_once
from tests.benchmarks.workload import QUICK, Workload, WorkloadSpec, build

BATCH = 500
RUNS = 3
FOLD_TARGET = 100_000  # check-ins per second on one core
STATE_TARGET = 1024  # bytes per environment record

Wire = Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class FoldReport:
    """What the fold benchmark measured."""

    check_ins: int
    pulses: int
    derived: int
    fold_seconds: float
    trivial_seconds: float
    skeleton_seconds: float  # a ceiling for the reducer, not a baseline (skeleton.py)
    env_sizes: list[int]  # ascending: encoded record + field name, per environment

    def figures(self) -> list[Figure]:
        """The table rows of this benchmark."""
        fold_rate = self.check_ins / self.fold_seconds
        trivial_rate = self.check_ins / self.trivial_seconds
        average = sum(self.env_sizes) / len(self.env_sizes)
        p99 = percentile(self.env_sizes, 0.99)
        return [
            Figure("fold check-ins/s", fold_rate, FOLD_TARGET, "at_least", "", trivial_rate),
            Figure("env state encoded, avg", average, STATE_TARGET, "at_most", "B"),
            Figure("env state encoded, p99", p99, STATE_TARGET, "at_most", "B"),
        ]


def decoded_batches(wire: Wire) -> Iterator[list[LogEntry]]:
    """The wire entries decoded batch by batch, as a worker reads them."""
    for start in range(0, len(wire), BATCH):
        yield [decode_entry(entry_id, payload) for entry_id, payload in wire[start : start + BATCH]]


def fold_once(wire: Wire) -> tuple[float, Partition, int]:
    """Decodes and folds the whole log into a fresh partition; (seconds, partition, derived)."""
    partition = Partition()
    derived = 0
    started = time.perf_counter()
    for entries in decoded_batches(wire):
        derived += len(fold(partition, entries))
    return time.perf_counter() - started, partition, derived


def trivial_once(wire: Wire) -> float:
    """Decodes the same batches and does one dict update per event; returns seconds."""
    latest: dict[tuple[str, str, object] | None, datetime] = {}
    started = time.perf_counter()
    for entries in decoded_batches(wire):
        for entry in entries:
            event = entry.event
            if isinstance(event, CheckInReported):
                latest[(event.project, event.monitor_slug, event.environment)] = entry.ts
            else:
                latest[None] = entry.ts
    return time.perf_counter() - started


def env_sizes(partition: Partition) -> list[int]:
    """The stored size of every environment: its encoded record plus its state-hash field."""
    return sorted(
        len(encode_record(env)) + len(environment_field(*env.key))
        for env in partition.all_environments()
    )


def measure(workload: Workload, runs: int = RUNS) -> FoldReport:
    """Runs both sides on the workload's wire form (best of `runs` after one warm-up)."""
    _, partition, derived = fold_once(workload.wire)  # the warm-up; its end state gives sizes
    trivial_once(workload.wire)
    skeleton_once(decoded_batches(workload.wire))
    # Alternating, so a slow spell of the machine hits every side rather than one.
    fold_times: list[float] = []
    trivial_times: list[float] = []
    skeleton_times: list[float] = []
    for _ in range(runs):
        fold_times.append(fold_once(workload.wire)[0])
        trivial_times.append(trivial_once(workload.wire))
        skeleton_times.append(skeleton_once(decoded_batches(workload.wire)))
    best_fold, best_trivial = min(fold_times), min(trivial_times)
    return FoldReport(
        check_ins=workload.check_ins,
        pulses=workload.pulses,
        derived=derived,
        fold_seconds=best_fold,
        trivial_seconds=best_trivial,
        skeleton_seconds=min(skeleton_times),
        env_sizes=env_sizes(partition),
    )


def describe(report: FoldReport) -> str:
    """The detail lines printed before the table."""
    fold_rate = report.check_ins / report.fold_seconds
    trivial_rate = report.check_ins / report.trivial_seconds
    skeleton_rate = report.check_ins / report.skeleton_seconds
    sizes = report.env_sizes
    return "\n".join(
        [
            f"fold: {report.check_ins:,} check-ins + {report.pulses:,} pulses (not counted), "
            f"batches of {BATCH}, best of {RUNS} alternating runs after a warm-up",
            f"  reducer fold   {report.fold_seconds:7.2f} s  {number(fold_rate)} check-ins/s  "
            f"({report.derived:,} derived events)",
            f"  trivial fold   {report.trivial_seconds:7.2f} s  {number(trivial_rate)} check-ins/s",
            f"  skeleton fold  {report.skeleton_seconds:7.2f} s  {number(skeleton_rate)} "
            "check-ins/s  (the least work any fold does per check-in: a ceiling for the reducer)",
            f"  ratio {fold_rate / trivial_rate:.2f}; target ≥ {number(FOLD_TARGET)} check-ins/s",
            f"  env state (record + field): {len(sizes):,} environments, "
            f"avg {sum(sizes) / len(sizes):.0f} B, p99 {percentile(sizes, 0.99)} B, "
            f"max {sizes[-1]} B; target ≤ {STATE_TARGET} B",
        ]
    )


def profile(workload: Workload, top: int = 25) -> str:
    """A cProfile of one (warm) reducer fold over the workload, top functions by tottime."""
    fold_once(workload.wire)
    profiler = cProfile.Profile()
    profiler.enable()
    fold_once(workload.wire)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m tests.benchmarks.fold [--quick] [--profile]`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller workload")
    parser.add_argument("--profile", action="store_true", help="print a cProfile top 25")
    args = parser.parse_args(argv)
    workload = build(QUICK if args.quick else WorkloadSpec())
    if args.profile:
        print(profile(workload))
        return
    report = measure(workload)
    print(describe(report))
    print()
    print(table(report.figures()))


if __name__ == "__main__":
    main()
