"""PostgreSQL access: the pool, tenant-scoped transactions, named SQL, migrations."""

from consent.db.database import Database, DatabaseUnavailable
from consent.db.sql import SqlFile

__all__ = ["Database", "DatabaseUnavailable", "SqlFile"]
