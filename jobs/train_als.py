"""Entry point for the 'train-als' stage (Databricks spark_python_task or `python jobs/train_als.py`).

Parameters are the CLI's: --env, --conf KEY=VALUE, --as-of YYYY-MM-DD. All logic is in promolake.ml.train_als.
"""
import sys

from promolake.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-als", *sys.argv[1:]]))
