"""The tiny silver tables builder of the gold tests, shared with the promotion tests."""
from tests.gold.conftest import silver, ts

__all__ = ["silver", "ts"]
