"""The ledger tests use the `catalog` fixture of tests/integration/conftest.py."""

from tests.integration.conftest import Catalog

__all__ = ["Catalog"]
