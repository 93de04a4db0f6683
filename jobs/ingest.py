"""Entry point for the 'ingest' stage (Databricks spark_python_task or `python jobs/ingest.py`).

Parameters are the CLI's: --env, --conf KEY=VALUE. All logic is in promolake.pipeline.
"""
import sys

from promolake.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
