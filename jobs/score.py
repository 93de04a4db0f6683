"""Entry point for the 'score' stage (Databricks spark_python_task or `python jobs/score.py`).

Parameters are the CLI's: --env, --conf KEY=VALUE, --campaign-id C --as-of YYYY-MM-DD. All logic is in promolake.promo.scoring.
"""
import sys

from promolake.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
