"""The one database layer every service uses: a psycopg 3 pool and the migrations runner.

Each service owns a PostgreSQL schema of its own (its tables, its migrations, its store
module); it reads another service's data only through the views that service publishes.
"""

from harmeval.db.connection import (
    PublishedViewMissing,
    Schema,
    count_rows,
    missing_views,
    open_database,
    resolve_database_url,
    returned_ids,
)
from harmeval.db.probe import DatabaseProbe

__all__ = [
    "DatabaseProbe",
    "PublishedViewMissing",
    "Schema",
    "count_rows",
    "missing_views",
    "open_database",
    "resolve_database_url",
    "returned_ids",
]
