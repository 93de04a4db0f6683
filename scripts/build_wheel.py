"""Build the promolake wheel into dist/ with a version unique to this build: 0.1.0+<UTC time>.<git sha>.

The Databricks Asset Bundle (databricks.yml, artifacts.promolake_wheel) runs this before every deploy: a
new version makes job clusters install the new wheel instead of a cached one with the same name.

    python3 scripts/build_wheel.py            # -> dist/promolake-0.1.0+20261124T0120.abc1234-py3-none-any.whl
    python3 scripts/build_wheel.py --dist DIR # into DIR instead (scripts/runtime_check.py)
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

BASE_VERSION = "0.1.0"
REPO = Path(__file__).resolve().parents[1]


def build_version(now: dt.datetime, sha: str | None, base: str = BASE_VERSION) -> str:
    """PEP 440 version with a local label that changes every build: base+<YYYYmmddTHHMMSS>[.<sha>]."""
    label = now.astimezone(dt.timezone.utc).strftime("%Y%m%dt%H%M%S")
    return f"{base}+{label}" + (f".{sha[:10].lower()}" if sha else "")


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=REPO / "dist", help="folder for the wheel (emptied first)")
    dist = parser.parse_args(argv).dist.resolve()
    version = build_version(dt.datetime.now(dt.timezone.utc), git_sha())
    shutil.rmtree(dist, ignore_errors=True)     # one wheel in dist/: the bundle's libraries glob it
    env = {**os.environ, "PROMOLAKE_VERSION": version}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(REPO)], env=env,
                   check=True)
    print(f"built promolake {version} into {dist}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
