"""Fault injection for the reliability tests: named points where a test makes the process "die".

Every Delta write of promolake goes through promolake.common.lake.Lake, which passes the points
`before_commit:<table>` and `after_commit:<table>`; the registry passes `after_register:<model>` (a new
version exists, no alias moved yet) and `before_alias:<model>:<alias>`. Nothing happens unless the
environment variable PROMOLAKE_FAULT names a point (a glob, optionally `@n` for the n-th time it is
passed), e.g. PROMOLAKE_FAULT="after_commit:promo.offer_scores" or "before_commit:silver.*@3".
PROMOLAKE_FAULT_MODE=exit ends the process at once (os._exit(137), as a kill would: no finally blocks,
no cleanup); the default raises SimulatedKill, a BaseException that no `except Exception` handler
swallows, so a test can kill a stage and re-run it in the same process.
"""
from __future__ import annotations

import fnmatch
import os
from collections import Counter

ENV, MODE_ENV = "PROMOLAKE_FAULT", "PROMOLAKE_FAULT_MODE"
_passed: Counter = Counter()


class SimulatedKill(BaseException):
    """The process was 'killed' at a fault point (tests only)."""


def point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    pattern, _, nth = spec.partition("@")
    if not fnmatch.fnmatchcase(name, pattern):
        return
    _passed[spec] += 1
    if _passed[spec] != int(nth or 1):
        return
    if os.environ.get(MODE_ENV) == "exit":
        os._exit(137)
    raise SimulatedKill(f"killed at {name}")


def reset() -> None:
    """Forget how often each point was passed (between test cases)."""
    _passed.clear()
