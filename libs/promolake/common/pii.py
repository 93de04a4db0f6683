"""Personal data: the salt for hashing direct identifiers, and the hashing expression."""
from __future__ import annotations

import os
import secrets
from typing import Mapping

import pandas as pd

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from promolake.common import files
from promolake.common.config import PiiConf
from promolake.common.spark import on_databricks


class MissingSecretError(RuntimeError):
    """No salt could be found for hashing personal data."""


def resolve_salt(spark: SparkSession, conf: PiiConf, environ: Mapping[str, str] | None = None) -> str:
    """The PII salt: environment variable, else Databricks secret scope, else (local only) a random
    salt created once and kept in the lake's local_salt_file so hashes stay stable between runs."""
    environ = os.environ if environ is None else environ
    if environ.get(conf.salt_env_var):
        return environ[conf.salt_env_var]
    if on_databricks() and conf.secret_scope and conf.secret_key:
        from pyspark.dbutils import DBUtils  # type: ignore[import-not-found]

        return DBUtils(spark).secrets.get(scope=conf.secret_scope, key=conf.secret_key)
    if conf.local_salt_file:
        salt = files.read_text(spark, conf.local_salt_file)
        if salt:
            return salt.strip()
        salt = secrets.token_hex(32)
        files.write_text(spark, conf.local_salt_file, salt)
        return salt
    raise MissingSecretError(
        f"no PII salt: set the environment variable {conf.salt_env_var}"
        + (f" or the secret {conf.secret_scope}/{conf.secret_key}" if conf.secret_scope else "")
    )


def salted_sha256(salt: str):
    """A pandas UDF: hex SHA-256 of salt + "|" + value per string (None stays None). The salt lives only in
    the function's closure, which Spark ships to executors pickled: it never appears in a query plan,
    so explain(), the Spark UI and event logs do not show it (a literal would)."""
    import hashlib

    from pyspark.sql.functions import pandas_udf

    prefix = (salt + "|").encode("utf-8")

    def digest(value: str | None) -> str | None:
        return None if value is None else hashlib.sha256(prefix + value.encode("utf-8")).hexdigest()

    @pandas_udf("string")
    def salted_sha256(values: pd.Series) -> pd.Series:
        return pd.Series([digest(v) for v in values], index=values.index, dtype=object)

    return salted_sha256


def hash_identifier(col: Column, salt: str) -> Column:
    """Salted SHA-256 (hex) of a trimmed, lower-cased identifier; null and blank give null. The same digest
    as sha2(concat(salt, '|', cleaned), 256), computed without the salt in the plan (salted_sha256)."""
    cleaned = F.lower(F.trim(col))
    return F.when(cleaned.isNull() | (cleaned == ""), F.lit(None).cast("string")).otherwise(
        salted_sha256(salt)(cleaned))
