"""The store: one schema on SQLite and PostgreSQL, one module per aggregate."""
