"""Alembic migrations of the store's schema; `cutloop db upgrade|downgrade|current`."""
