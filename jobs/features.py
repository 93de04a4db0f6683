"""Entry point for the 'features' stage (Databricks spark_python_task or `python jobs/features.py`).

Parameters are the CLI's: --env, --conf KEY=VALUE, --as-of YYYY-MM-DD (repeatable). All logic is in promolake.pipeline.
"""
import sys

from promolake.cli import main

if __name__ == "__main__":
    sys.exit(main(["features", *sys.argv[1:]]))
