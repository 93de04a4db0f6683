"""Personal data: the salt for hashing direct identifiers, and the hashing expression."""
from __future__ import annotations

import os
import secrets
from typing import Mapping

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


def hash_identifier(col: Column, salt: str) -> Column:
    """Salted SHA-256 (hex) of a trimmed, lower-cased identifier; null stays null."""
    cleaned = F.lower(F.trim(col))
    return F.when(cleaned.isNull() | (cleaned == ""), F.lit(None).cast("string")).otherwise(
        F.sha2(F.concat(F.lit(salt), F.lit("|"), cleaned), 256))
