"""SQL storage: SQLAlchemy Core tables, one module per domain, Alembic migrations."""

__all__: list[str] = []
