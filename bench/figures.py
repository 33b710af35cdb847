"""One measured figure, and how the harness prints figures: a table, then JSON lines."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass

CORES = os.cpu_count() or 1


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str

    def json(self) -> str:
        value = round(self.value, 4) if isinstance(self.value, float) else self.value
        return json.dumps({"figure": self.name, "value": value, "unit": self.unit, "cores": CORES})


def log(text: str) -> None:
    """Progress on stderr, so stdout holds only the table and the JSON lines."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "unit")]
    rows += [(f.name, f"{f.value:.4g}", f.unit) for f in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for row in rows:
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [c.rjust(w) if i == 1 else c.ljust(w) for i, (c, w) in pairs]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def report(figures: list[Figure]) -> None:
    """The table, then one JSON line per figure, on stdout."""
    print(table(figures))
    for fig in figures:
        print(fig.json())
