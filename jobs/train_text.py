"""Entry point for the 'train-text' stage (Databricks spark_python_task or `python jobs/train_text.py`).

Parameters are the CLI's: --env, --conf KEY=VALUE, --as-of YYYY-MM-DD. All logic is in promolake.ml.train_text.
"""
import sys

from promolake.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-text", *sys.argv[1:]]))
