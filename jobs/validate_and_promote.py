"""Entry point for the 'validate-and-promote' stage (Databricks spark_python_task or
`python jobs/validate_and_promote.py`).

Parameters are the CLI's: --env, --conf KEY=VALUE (e.g. validation.mode=dry_run). All logic is in
promolake.ml.validate and promolake.ml.gate.
"""
import sys

from promolake.cli import main

if __name__ == "__main__":
    sys.exit(main(["validate-and-promote", *sys.argv[1:]]))
