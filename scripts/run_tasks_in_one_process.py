"""Run console-script commands one after another in this Python process: one Spark driver (one JVM, started and
warmed once) for all of them, as the tasks of a job that share a job cluster share its driver.

Used by scripts/runtime_check.py --one-process (the fast check of `make test`); run with the Python of the
environment that holds the commands:

    python scripts/run_tasks_in_one_process.py TASKS.json

TASKS.json: [{"name": ..., "entry_point": "promolake", "argv": ["ingest", "--env", "dev"]}, ...]. Each command's
entry point is loaded from the installed distributions' console_scripts and called as its console script
would be (sys.argv set, the return value or SystemExit taken as the exit status). Before and after each
command a marker line (MARK) goes to stdout; the first command that fails ends the run (later ones depend on
it). Exit status: 0 when every command exited 0, else 1.
"""
from __future__ import annotations

import json
import sys
import time
import traceback
from importlib.metadata import entry_points

MARK = "@@promolake-task"


def console_script(name: str):
    found = [e for e in entry_points(group="console_scripts") if e.name == name]
    if not found:
        raise LookupError(f"no console script {name!r} is installed in this environment")
    return found[0].load()


def run_one(entry_point: str, argv: list[str]) -> int:
    """The exit status of `entry_point argv...` run here, as its console script wrapper runs it."""
    sys.argv = [entry_point, *argv]
    try:
        result = console_script(entry_point)()
    except SystemExit as done:
        result = done.code
    except BaseException:  # noqa: BLE001 - a task's crash is its failure; the traceback goes to the log
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    if result is None:
        return 0
    if isinstance(result, int):
        return result
    print(result, file=sys.stderr)      # sys.exit("message") prints the message and exits 1
    return 1


def main(path: str) -> int:
    tasks = json.loads(open(path).read())
    for task in tasks:
        print(f"{MARK} start {task['name']}", flush=True)
        started = time.monotonic()
        code = run_one(task["entry_point"], list(task["argv"]))
        print(f"{MARK} end {task['name']} exit={code} seconds={time.monotonic() - started:.1f}", flush=True)
        if code != 0:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
