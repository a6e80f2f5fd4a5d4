"""Figures with their baselines and targets, and the table `make bench` ends with."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Goal = Literal["at_least", "at_most"]


@dataclass(frozen=True)
class Figure:
    """One measured figure, what it is compared with, and the target it must meet."""

    name: str
    value: float
    target: float
    goal: Goal
    unit: str = ""
    baseline: float | None = None

    @property
    def ratio(self) -> float | None:
        """value / baseline, when there is a baseline."""
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def passed(self) -> bool:
        """Whether the value meets its target."""
        if self.goal == "at_least":
            return self.value >= self.target
        return self.value <= self.target


def number(value: float, unit: str = "") -> str:
    """A figure as text: whole numbers with thousands separators, two decimals below 10."""
    text = f"{value:,.0f}" if abs(value) >= 10 else f"{value:,.2f}"
    return f"{text} {unit}".rstrip()


def _row(figure: Figure) -> list[str]:
    sign = "≥" if figure.goal == "at_least" else "≤"
    ratio = figure.ratio
    return [
        figure.name,
        number(figure.value, figure.unit),
        "-" if figure.baseline is None else number(figure.baseline, figure.unit),
        "-" if ratio is None else f"{ratio:.2f}",
        f"{sign} {number(figure.target, figure.unit)}",
        "PASS" if figure.passed else "MISS",
    ]


def table(figures: list[Figure]) -> str:
    """The figures as an aligned text table."""
    rows = [["figure", "value", "baseline", "ratio", "target", "result"]]
    rows += [_row(figure) for figure in figures]
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.ljust(width) if col == 0 else cell.rjust(width)
            for col, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def percentile(sorted_values: list[int], fraction: float) -> int:
    """The nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]
