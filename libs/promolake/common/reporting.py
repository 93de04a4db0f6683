"""Stage reports: a progress line per step while a stage works, and a short summary at the end
(rows in/out/quarantined, tables written, elapsed time)."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class StageReport:
    """Collects what one stage did; use as a context manager so the summary prints even on failure.

    Rows are kept as ordered dicts (one per table or source) so callers and tests can read them.
    """

    stage: str
    out: TextIO = field(default_factory=lambda: sys.stdout)
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    failed: bool = False

    def __enter__(self) -> "StageReport":
        self.started = time.perf_counter()
        self.log("started")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.failed = exc_type is not None
        self.print_summary()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def log(self, message: str) -> None:
        print(f"[{self.stage} {self.elapsed:6.1f}s] {message}", file=self.out, flush=True)

    def progress(self, done: int, total: int, what: str) -> None:
        """One progress line: `what` done/total with a percentage."""
        pct = 100.0 * done / total if total else 100.0
        self.log(f"{what}: {done}/{total} ({pct:.0f}%)")

    def record(self, **values: Any) -> None:
        self.rows.append(values)

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.log(message)

    def print_summary(self) -> None:
        status = "FAILED" if self.failed else "done"
        lines = [f"== {self.stage}: {status} in {self.elapsed:.1f}s =="]
        if self.rows:
            cols: list[str] = []
            for r in self.rows:
                cols += [c for c in r if c not in cols]
            table = [cols] + [[_fmt(r.get(c, "")) for c in cols] for r in self.rows]
            widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
            for n, row in enumerate(table):
                lines.append("  " + "  ".join(v.rjust(w) if n and v[:1].isdigit() else v.ljust(w)
                                              for v, w in zip(row, widths)).rstrip())
        lines += [f"  note: {n}" for n in self.notes]
        print("\n".join(lines), file=self.out, flush=True)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)
