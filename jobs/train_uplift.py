"""Entry point for the 'train-uplift' stage (Databricks spark_python_task or `python jobs/train_uplift.py`).

Parameters are the CLI's: --env, --conf KEY=VALUE, --as-of YYYY-MM-DD. All logic is in promolake.promo.train_uplift.
"""
import sys

from promolake.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-uplift", *sys.argv[1:]]))
