"""Importer for the UCI Online Retail data set (real invoice lines, Dec 2010 - Dec 2011) into the
landing contract: users, items and purchase events.

The mapping keeps the data's real mess for ingestion to judge: lines without CustomerID keep a
null user_id, cancellations (invoice numbers starting with C) keep their negative quantity, and
negative prices stay negative, so silver quarantines them under the contract's rules. Items are
categorised from their free-text descriptions by keyword (the data set has no categories).
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from promolake.common.config import Config
from promolake.common.reporting import StageReport
from promolake.landing.landing_files import write_files

DEFAULT_PATH = "../shared/data/online_retail/online_retail.parquet"

# First matching pattern wins; order from specific to general.
CATEGORY_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("non_product", r"^(POSTAGE|DOTCOM POSTAGE|CARRIAGE|MANUAL|BANK CHARGES|AMAZON FEE|ADJUST BAD DEBT|DISCOUNT|CRUK COMMISSION|SAMPLES)$"),
    ("christmas", r"CHRISTMAS|XMAS|ADVENT|SANTA|REINDEER|SNOWFLAKE"),
    ("candles_lighting", r"CANDLE|T-LIGHT|TEALIGHT|LANTERN|LIGHT|LAMP"),
    ("bags", r"\bBAG\b|BAGS|TOTE|PURSE|SHOPPER"),
    ("kitchen_dining", r"MUG|CUP|TEA|PLATE|BOWL|JAR|BOTTLE|CAKE|LUNCH|SPOON|NAPKIN|TRAY|TIN|KITCHEN|BAKING"),
    ("stationery_gifts", r"CARD|WRAP|PAPER|NOTEBOOK|PEN\b|PENCIL|STICKER|GIFT|RIBBON|TAPE"),
    ("toys_games", r"TOY|GAME|DOLL|SPACEBOY|PLAYHOUSE|JIGSAW|CHILDREN|KIDS|RETROSPOT PARTY"),
    ("garden", r"GARDEN|PLANT|FLOWER|WATERING|BIRD"),
    ("jewellery", r"NECKLACE|BRACELET|EARRING|\bRING\b|BROOCH|JEWEL"),
    ("home_decor", r"HEART|FRAME|SIGN|CLOCK|MIRROR|CUSHION|DECORATION|ORNAMENT|HOOK|HANGING|DOORMAT|VINTAGE"),
)


def categorise(description: Column) -> Column:
    """Category from an item description by the first matching keyword pattern, else 'other'."""
    text = F.upper(F.trim(description))
    expr = F.lit("other")
    for name, pattern in reversed(CATEGORY_KEYWORDS):
        expr = F.when(text.rlike(pattern), F.lit(name)).otherwise(expr)
    return expr


def _customer(col: Column) -> Column:
    return F.when(col.isNotNull(), F.concat(F.lit("C"), col.cast("long").cast("string")))


def _mode(df: DataFrame, key: str, value: Column, name: str) -> DataFrame:
    """Most frequent non-null value per key (ties broken by the value itself)."""
    counted = df.where(value.isNotNull()).groupBy(key, value.alias(name)).count()
    w = Window.partitionBy(key).orderBy(F.col("count").desc(), F.col(name))
    return counted.withColumn("_r", F.row_number().over(w)).where("_r = 1").select(key, name)


def map_online_retail(raw: DataFrame) -> dict[str, DataFrame]:
    """Online Retail invoice lines -> {"users", "items", "events"} in the landing contract (as text-able types).

    events: one purchase event per invoice line, event_id = InvoiceNo-<line number within invoice>.
    users: one row per CustomerID (user_id C<id>), region = most frequent Country, signup_ts = first invoice.
    items: one row per StockCode; title = most frequent description, list_price = most frequent
    positive unit price (null when the item never had one), created_ts = first sale.
    """
    lines = raw.select(
        F.trim(F.col("InvoiceNo").cast("string")).alias("invoice"),
        F.upper(F.trim(F.col("StockCode").cast("string"))).alias("item_id"),
        F.trim(F.col("Description")).alias("description"),
        F.col("Quantity").cast("long").alias("quantity"),
        F.col("InvoiceDate").cast("timestamp").alias("ts"),
        F.col("UnitPrice").cast("double").alias("unit_price"),
        _customer(F.col("CustomerID")).alias("user_id"),
        F.trim(F.col("Country")).alias("country"),
    )
    line_no = F.row_number().over(Window.partitionBy("invoice").orderBy(
        "item_id", "quantity", "unit_price", "description", "user_id"))
    events = lines.select(
        F.concat_ws("-", "invoice", line_no.cast("string")).alias("event_id"), "user_id", "item_id",
        F.lit("purchase").alias("event_type"), F.col("ts").alias("event_ts"), "quantity", "unit_price",
        F.lit(None).cast("double").alias("discount_amount"), F.col("invoice").alias("order_id"),
        F.lit(None).cast("string").alias("query_text"))
    known = lines.where(F.col("user_id").isNotNull())
    users = (known.groupBy("user_id").agg(F.min("ts").alias("signup_ts"))
             .join(_mode(known, "user_id", F.col("country"), "region"), "user_id", "left")
             .select("user_id", "signup_ts", "region", F.lit(None).cast("string").alias("age_band"),
                     F.lit(None).cast("string").alias("gender"), F.lit(None).cast("string").alias("email")))
    titles = _mode(lines, "item_id", F.col("description"), "title")
    prices = _mode(lines.where(F.col("unit_price") > 0), "item_id", F.col("unit_price"), "list_price")
    items = (lines.groupBy("item_id").agg(F.min("ts").alias("created_ts"))
             .join(titles, "item_id", "left").join(prices, "item_id", "left")
             .select("item_id", "title", F.lit(None).cast("string").alias("description"),
                     categorise(F.coalesce(F.col("title"), F.col("item_id"))).alias("category"),
                     F.lit(None).cast("string").alias("subcategory"), F.lit(None).cast("string").alias("brand"),
                     "list_price", F.lit(None).cast("double").alias("unit_cost"), "created_ts"))
    return {"users": users, "items": items, "events": events}


def run_import(spark: SparkSession, cfg: Config, path: str | None = None,
               report: StageReport | None = None) -> StageReport:
    """Read the Online Retail Parquet file and write users, items and events into the landing folder."""
    report = report or StageReport("import-online-retail")
    path = path or DEFAULT_PATH
    with report:
        raw = spark.read.parquet(path)
        report.log(f"read {path}")
        for source, df in map_online_retail(raw).items():
            written = write_files(spark, df.coalesce(1), cfg.landing.root.rstrip("/"), source, "parquet",
                                  prefix="online_retail")
            report.record(source=source, files=len(written), rows=df.count())
    return report
