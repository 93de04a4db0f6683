"""File-system helpers over Hadoop's FileSystem, so the same code lists and moves files on a local
disk, DBFS, Unity Catalog volumes and cloud storage."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import SparkSession


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int
    mtime: dt.datetime


def _fs(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    p = jvm.org.apache.hadoop.fs.Path(path)
    return p, p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def _hidden(name: str) -> bool:
    return name.startswith(("_", "."))


def list_files(spark: SparkSession, root: str) -> list[FileInfo]:
    """Data files under root, recursively, skipping hidden names (_SUCCESS, .crc, _tmp folders)."""
    p, fs = _fs(spark, root)
    if not fs.exists(p):
        return []
    out: list[FileInfo] = []
    stack = [p]
    while stack:
        for status in fs.listStatus(stack.pop()):
            name = status.getPath().getName()
            if _hidden(name):
                continue
            if status.isDirectory():
                stack.append(status.getPath())
            else:
                out.append(FileInfo(
                    status.getPath().toString(), int(status.getLen()),
                    dt.datetime.fromtimestamp(status.getModificationTime() / 1000, tz=dt.timezone.utc)
                    .replace(tzinfo=None)))
    return sorted(out, key=lambda f: f.path)


def exists(spark: SparkSession, path: str) -> bool:
    p, fs = _fs(spark, path)
    return bool(fs.exists(p))


def delete(spark: SparkSession, path: str) -> None:
    p, fs = _fs(spark, path)
    if fs.exists(p):
        fs.delete(p, True)


def rename(spark: SparkSession, src: str, dst: str) -> None:
    s, fs = _fs(spark, src)
    d, _ = _fs(spark, dst)
    fs.mkdirs(d.getParent())
    if not fs.rename(s, d):
        raise OSError(f"could not move {src} to {dst}")


def read_text(spark: SparkSession, path: str, max_lines: int | None = None) -> str | None:
    """Content of a small text file (its first max_lines lines if given), or None when it does not exist."""
    p, fs = _fs(spark, path)
    if not fs.exists(p):
        return None
    stream = fs.open(p)
    try:
        reader = spark.sparkContext._jvm.java.io.BufferedReader(
            spark.sparkContext._jvm.java.io.InputStreamReader(stream, "UTF-8"))
        lines = []
        line = reader.readLine()
        while line is not None and (max_lines is None or len(lines) < max_lines):
            lines.append(line)
            line = reader.readLine()
        return "\n".join(lines)
    finally:
        stream.close()


def write_text(spark: SparkSession, path: str, text: str, overwrite: bool = True) -> None:
    """Write a small text file atomically enough for state (temp file + rename)."""
    p, fs = _fs(spark, path)
    fs.mkdirs(p.getParent())
    tmp, _ = _fs(spark, path + ".tmp")
    out = fs.create(tmp, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()
    if overwrite and fs.exists(p):
        fs.delete(p, False)
    fs.rename(tmp, p)
