"""Database access: SQLAlchemy models, the async engine and session, the clock helper."""
