"""Storage: engine, models and the Alembic revisions that create them."""
