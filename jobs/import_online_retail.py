"""Entry point for the 'import-online-retail' stage (Databricks spark_python_task or `python jobs/import_online_retail.py`).

Parameters are the CLI's: --env, --conf KEY=VALUE. All logic is in promolake.pipeline.
"""
import sys

from promolake.cli import main

if __name__ == "__main__":
    sys.exit(main(["import-online-retail", *sys.argv[1:]]))
