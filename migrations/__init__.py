"""Alembic migrations: the only way Sealdrop's schema changes."""
