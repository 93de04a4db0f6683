"""Transient failures: retried with exponential back-off (tenacity), then one clear error.

What counts as transient is decided in one place per kind of failure: `transient_io` for reading landing
files (a file that vanished between listing and reading, a permission or network error of the storage,
an object store asking to slow down) and `transient_mlflow` for the tracking server and registry (a
refused or timed-out connection, HTTP 429/5xx, a locked sqlite store). Anything else (a file Spark cannot
parse, a wrong model name) is not retried: it fails, or is quarantined, at once.

Settings: `retries.attempts`, `retries.initial_backoff_s`, `retries.max_backoff_s` in conf/base.yml.
"""
from __future__ import annotations

import re
import sys
import time
from typing import Callable, TypeVar

from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from promolake.common.config import RetryConf

T = TypeVar("T")


class TransientFailure(RuntimeError):
    """An operation still failed with a transient error after every retry."""


# Java exception classes (anywhere in the cause chain) and message fragments of storage errors that
# are worth another try: the file may be back, the permission fixed, the store less busy.
_IO_CLASSES = ("java.io.FileNotFoundException", "java.nio.file.AccessDeniedException",
               "java.nio.file.NoSuchFileException", "java.net.SocketTimeoutException", "java.net.ConnectException",
               "java.net.SocketException", "java.io.InterruptedIOException",
               "org.apache.hadoop.fs.PathIOException")
# an HTTP status of a busy or unavailable service, as storage clients and MLflow's REST client word it
_HTTP_BUSY = r"(?:status code|error code|Status Code:|HTTP)\s*:?\s*(?:429|502|503|504)\b"
_IO_TEXT = re.compile("|".join([r"\[PATH_NOT_FOUND\]", "Path does not exist", "Permission denied", "AccessDenied",
                                "Connection reset", "Connection refused", "timed out", "SlowDown", "ServerBusy",
                                "OperationTimedOut", "Too Many Requests", "ThrottlingException", _HTTP_BUSY]))
_MLFLOW_TEXT = re.compile("|".join(["Connection refused", "Max retries exceeded", "timed out", "Read timeout",
                                    "TEMPORARILY_UNAVAILABLE", "Too Many Requests", "database is locked",
                                    "RemoteDisconnected", "Connection aborted", "Name or service not known",
                                    _HTTP_BUSY]))


def _java_chain(err: BaseException) -> list[str]:
    """Class names and messages of a Py4J error's Java exception and its causes (empty for Python errors)."""
    out, java, seen = [], getattr(err, "java_exception", None), 0
    while java is not None and seen < 20:
        out.append(f"{java.getClass().getName()}: {java.getMessage()}")
        cause = java.getCause()
        java = None if cause is None or cause.equals(java) else cause
        seen += 1
    return out


def transient_io(err: BaseException) -> bool:
    """Whether a landing-file read failed for a reason that may go away (see _IO_CLASSES / _IO_TEXT)."""
    if isinstance(err, (FileNotFoundError, PermissionError, TimeoutError, ConnectionError)):
        return True
    chain = _java_chain(err)
    if any(line.startswith(_IO_CLASSES) for line in chain):
        return True
    text = " ".join(chain) or str(err)
    return _IO_TEXT.search(text) is not None


def transient_mlflow(err: BaseException) -> bool:
    """Whether a tracking / registry call failed because the server or store was unavailable."""
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    text = f"{type(err).__name__}: {err}"
    return _MLFLOW_TEXT.search(text) is not None


def call(fn: Callable[[], T], what: str, conf: RetryConf, is_transient: Callable[[BaseException], bool],
         hint: str = "", log: Callable[[str], None] | None = None) -> T:
    """fn() retried on transient errors with exponential back-off (initial_backoff_s doubling up to
    max_backoff_s, at most `attempts` tries). A non-transient error is raised at once, unchanged;
    when the attempts run out, TransientFailure names `what`, the attempts, the time spent and `hint`."""
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    started = time.monotonic()

    def before_sleep(state) -> None:
        err = state.outcome.exception()
        log(f"{what}: attempt {state.attempt_number}/{conf.attempts} failed ({_one_line(err)}); "
            f"retrying in {state.next_action.sleep:.1f}s")

    retrying = Retrying(stop=stop_after_attempt(conf.attempts),
                        wait=wait_exponential(multiplier=conf.initial_backoff_s, max=conf.max_backoff_s),
                        retry=retry_if_exception(is_transient), before_sleep=before_sleep, reraise=False)
    try:
        return retrying(fn)
    except RetryError as exc:
        last = exc.last_attempt.exception()
        tries = (f"after {conf.attempts} attempts over {time.monotonic() - started:.1f}s with back-off"
                 if conf.attempts > 1 else "")
        raise TransientFailure(" ".join(x for x in (f"{what} failed", tries) if x) + f": {_one_line(last)}"
                               + (f". {hint}" if hint else "")) from last


def _one_line(err: BaseException | None) -> str:
    chain = _java_chain(err) if err is not None else []
    text = chain[-1] if chain else f"{type(err).__name__}: {err}"
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip() and not ln.strip().startswith("at ")]
    return (lines[0] if lines else type(err).__name__)[:300]
