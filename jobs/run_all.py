"""Entry point for the 'run-all' stage (Databricks spark_python_task or `python jobs/run_all.py`).

Parameters are the CLI's: --env, --conf KEY=VALUE. All logic is in promolake.pipeline.
"""
import sys

from promolake.cli import main

if __name__ == "__main__":
    sys.exit(main(["run-all", *sys.argv[1:]]))
