"""harmeval runner service: study runs as long-running operations, worked off a Postgres queue."""
