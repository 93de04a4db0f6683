"""Stage reports: a progress line per step while a stage works, and a short summary at the end
(rows in/out/quarantined, tables written, elapsed time)."""
from __future__ import annotations

import re
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
    sections: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
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

    def record_write(self, table: str, result: Any) -> None:
        """One summary row for a table write (a promolake.common.lake.WriteResult)."""
        self.record(table=table, inserted=result.inserted, updated=result.updated, deleted=result.deleted,
                    elapsed_s=round(self.elapsed, 1))

    def section(self, title: str, rows: list[dict[str, Any]]) -> None:
        """A titled table printed in the summary after the per-table rows (segments, top trends...)."""
        self.sections.append((title, rows))

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.log(message)

    def print_summary(self) -> None:
        status = "FAILED" if self.failed else "done"
        lines = [f"== {self.stage}: {status} in {self.elapsed:.1f}s =="]
        lines += format_table(self.rows)
        for title, rows in self.sections:
            lines.append(f"  -- {title}")
            lines += format_table(rows, indent="    ")
        lines += [f"  note: {n}" for n in self.notes]
        print("\n".join(lines), file=self.out, flush=True)


_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+%?$")


def format_table(rows: list[dict[str, Any]], indent: str = "  ") -> list[str]:
    """Rows as aligned text lines (numbers right-aligned), columns in first-seen order."""
    if not rows:
        return []
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    table = [cols] + [[_fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    return [indent + "  ".join(v.rjust(w) if n and _NUMBER.match(v) else v.ljust(w)
                               for v, w in zip(row, widths)).rstrip()
            for n, row in enumerate(table)]


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)
