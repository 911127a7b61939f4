"""The decision ledger: append-only, hash-chained, in SQLite or PostgreSQL."""
