"""The demo report: one self-contained HTML page of what a run produced."""
