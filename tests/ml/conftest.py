"""The small trained world lives in tests/conftest.py (shared with the promotion tests); its
settings are re-exported here for the ML tests."""
from tests.conftest import AS_OF, WORLD

__all__ = ["AS_OF", "WORLD"]
