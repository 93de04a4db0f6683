"""Entry point for the 'report' stage (Databricks spark_python_task or `python jobs/report.py`).

Parameters are the CLI's: --env, --conf KEY=VALUE, --campaign-id C --as-of YYYY-MM-DD. All logic is in promolake.report.demo.
"""
import sys

from promolake.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
