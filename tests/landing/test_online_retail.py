"""The UCI Online Retail importer: mapping rules on hand-made invoice lines, and the real file
imported and ingested with every record accounted for."""
from __future__ import annotations

from pathlib import Path

import pytest

from promolake.common.lake import Lake
from promolake.common.reporting import StageReport
from promolake.landing.online_retail import map_online_retail, run_import
from promolake.silver import ingest

pytestmark = pytest.mark.spark
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "online_retail" / "online_retail.parquet"
COLUMNS = "InvoiceNo string, StockCode string, Description string, Quantity long, InvoiceDate string, " \
          "UnitPrice double, CustomerID double, Country string"


def test_mapping_rules(spark):
    raw = spark.createDataFrame([
        ("536365", "85123a", "WHITE HANGING HEART T-LIGHT HOLDER", 6, "2010-12-01 08:26:00", 2.55, 17850.0, "United Kingdom"),
        ("536366", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 2, "2010-12-02 09:00:00", 2.95, 17850.0, "France"),
        ("536367", "85123A", "HEART HOLDER", 1, "2010-12-03 09:00:00", 2.55, 17851.0, "United Kingdom"),
        ("C536368", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", -1, "2010-12-04 09:00:00", 2.55, 17850.0, "United Kingdom"),
        ("536369", "POST", "POSTAGE", 1, "2010-12-05 09:00:00", 18.0, None, "Germany"),
        ("536369", "22633", "HAND WARMER UNION JACK", 3, "2010-12-05 09:00:00", 0.0, None, "Germany"),
        ("536369", "22633", "HAND WARMER UNION JACK", 3, "2010-12-05 09:00:00", 0.0, None, "Germany"),
    ], COLUMNS)
    out = map_online_retail(raw)
    users = {r.user_id: (r.region, str(r.signup_ts)) for r in out["users"].collect()}
    assert users == {"C17850": ("United Kingdom", "2010-12-01 08:26:00"), "C17851": ("United Kingdom", "2010-12-03 09:00:00")}
    items = {r.item_id: r for r in out["items"].collect()}
    assert set(items) == {"85123A", "POST", "22633"}
    assert items["85123A"].title == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert items["85123A"].list_price == 2.55  # most frequent positive price
    assert items["85123A"].category == "candles_lighting"
    assert items["POST"].category == "non_product"
    assert items["22633"].list_price is None  # never sold at a positive price: ingestion quarantines it
    events = {r.event_id: r for r in out["events"].collect()}
    assert set(events) == {"536365-1", "536366-1", "536367-1", "C536368-1", "536369-1", "536369-2", "536369-3"}
    assert events["C536368-1"].quantity == -1 and events["C536368-1"].user_id == "C17850"
    assert events["536369-1"].user_id is None and events["536369-1"].order_id == "536369"
    assert {e.event_type for e in events.values()} == {"purchase"}


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.skipif(not REAL.exists(), reason=f"real data not present at {REAL} (only in the project's shared folder)")
def test_real_file_imports_and_every_line_is_accounted_for(spark, make_config):
    import pandas as pd

    cfg = make_config("ingest.sources=[users, items, events]", "spark.show_progress=false")
    run_import(spark, cfg, str(REAL), StageReport("import"))
    report = ingest.run_ingest(spark, cfg, StageReport("ingest-real"))
    got = {r["source"]: r for r in report.rows}

    # Expected outcome computed independently from the raw file with pandas.
    df = pd.read_parquet(REAL)
    df["item"] = df.StockCode.astype(str).str.strip().str.upper()
    # list price = most frequent positive price (ties: the lowest), as money in cents
    counts = df[df.UnitPrice > 0].groupby(["item", "UnitPrice"]).size().reset_index(name="n")
    mode = counts.sort_values(["item", "n", "UnitPrice"], ascending=[True, False, True]).drop_duplicates("item")
    priced = set(mode[mode.UnitPrice >= 0.005].item)
    described = set(df[df.Description.notna() & (df.Description.str.strip() != "")].item)
    bad_items = set(df.item) - (priced & described)
    no_user = df.CustomerID.isna()
    non_positive = ~no_user & (df.Quantity <= 0)
    orphan = ~no_user & ~non_positive & df.item.isin(bad_items)
    assert got["users"]["read"] == got["users"]["accepted"] == df.CustomerID.nunique()
    assert got["items"]["read"] == df.item.nunique()
    assert got["items"]["quarantined"] == len(bad_items)
    assert got["events"]["read"] == len(df) == 541_909
    lake = Lake(spark, cfg.lake)
    rules = {r.rule: r["count"] for r in lake.read("silver.quarantine").where("source = 'events'")
             .groupBy("rule").count().collect()}
    assert rules == {"missing_user_id": int(no_user.sum()), "non_positive_quantity": int(non_positive.sum()),
                     "orphan_item_id": int(orphan.sum())}
    assert got["events"]["accepted"] == len(df) - int(no_user.sum() + non_positive.sum() + orphan.sum())
    assert lake.read("silver.events").count() == got["events"]["accepted"]
