"""Hashing personal identifiers: the digest, and the salt kept out of query plans."""
from __future__ import annotations

import hashlib

import pytest
from pyspark.sql import functions as F

from promolake.bronze.raw_records import to_raw_records
from promolake.common.pii import hash_identifier
from promolake.landing.contract import SOURCES

pytestmark = pytest.mark.spark

SALT = "s3cr3t-salt-7f1e0c9d"


def _plans(df) -> str:
    """The parsed, analyzed, optimized and physical plans of df as the JVM holds them."""
    return df._jdf.queryExecution().toString()


def test_digest_is_salted_sha256_of_the_cleaned_identifier_and_blank_is_null(spark):
    df = spark.createDataFrame([(" Alice@Example.COM ",), ("",), ("   ",), (None,), ("bob",)], "email string")
    got = [r.h for r in df.select(hash_identifier(F.col("email"), SALT).alias("h")).collect()]
    expected = hashlib.sha256(f"{SALT}|alice@example.com".encode()).hexdigest()
    assert got == [expected, None, None, None, hashlib.sha256(f"{SALT}|bob".encode()).hexdigest()]
    # the digest Spark's sha2(concat(salt, '|', x)) gives, so hashes written before the change still match
    sha2 = df.select(F.sha2(F.concat(F.lit(SALT), F.lit("|"), F.lower(F.trim("email"))), 256).alias("h")).first().h
    assert got[0] == sha2


def test_the_salt_appears_in_no_plan(spark, capsys):
    df = spark.createDataFrame([("alice@example.com",)], "email string") \
        .select(hash_identifier(F.col("email"), SALT).alias("email_hash"))
    for mode in ("simple", "extended", "codegen", "cost", "formatted"):
        df.explain(mode=mode)
    printed = capsys.readouterr().out
    assert "email_hash" in printed                       # the plans were printed
    assert SALT not in printed and SALT not in _plans(df)


def test_bronze_mapping_of_landing_rows_keeps_the_salt_out_of_its_plan(spark, capsys):
    source = SOURCES["users"]
    pii = [f.name for f in source.fields if f.pii]
    assert pii, "the users contract declares personal fields"
    landing = spark.createDataFrame([{c: "someone@example.com" for c in source.columns}]) \
        .withColumn("_file_path", F.lit("f.csv")).withColumn("_file_mtime", F.current_timestamp())
    raw = to_raw_records(landing, source, SALT)
    raw.explain(mode="extended")
    assert SALT not in capsys.readouterr().out and SALT not in _plans(raw)
    row = raw.first()
    assert row[f"{pii[0]}_hash"] == hashlib.sha256(f"{SALT}|someone@example.com".encode()).hexdigest()
