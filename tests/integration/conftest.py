"""Integration tests use the fixtures of tests/conftest.py (`catalog` among them)."""

from tests.conftest import Catalog

__all__ = ["Catalog"]
