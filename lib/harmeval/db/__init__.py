"""The one database layer: a psycopg 3 pool, ordered migrations, and typed queries."""

from harmeval.db.connection import open_database, resolve_database_url
from harmeval.db.repository import Repository

__all__ = ["Repository", "open_database", "resolve_database_url"]
