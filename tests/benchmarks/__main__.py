"""`make bench`: the pure fold, then the worker on a real redis-server, then one table.

`python -m tests.benchmarks [--quick]`; `python -m tests.benchmarks.fold --profile` prints
where the reducer spends its time.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Sequence

from tests.benchmarks import fold, worker
from tests.benchmarks.report import table
from tests.benchmarks.workload import QUICK, WorkloadSpec, build


def main(argv: Sequence[str] | None = None) -> None:
    """Builds the workload once and runs every benchmark on it."""
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller workload")
    args = parser.parse_args(argv)
    spec = QUICK if args.quick else WorkloadSpec()
    started = time.perf_counter()
    workload = build(spec)
    print(
        f"workload: {spec.monitors:,} monitors x 2 environments, {spec.minutes} min of broker "
        f"time, seed {spec.seed}: {len(workload.entries):,} entries "
        f"({workload.check_ins:,} check-ins, {workload.pulses:,} pulses), "
        f"built in {time.perf_counter() - started:.1f} s"
    )
    print(f"python {platform.python_version()} on {platform.machine()}, {sys.platform}")
    print()
    fold_report = fold.measure(workload)
    print(fold.describe(fold_report), flush=True)
    print()
    worker_report = worker.measure(workload)
    print(worker.describe(worker_report))
    same = "the same" if worker_report.derived == fold_report.derived else "NOT the same"
    print(f"  the worker derived {same} number of events as the pure fold")
    print()
    print(table(fold_report.figures() + worker_report.figures()))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
