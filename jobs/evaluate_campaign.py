"""Entry point for the 'evaluate-campaign' stage (Databricks spark_python_task or `python jobs/evaluate_campaign.py`).

Parameters are the CLI's: --env, --conf KEY=VALUE, --campaign-id C. All logic is in promolake.promo.campaign_eval.
"""
import sys

from promolake.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate-campaign", *sys.argv[1:]]))
