"""The desk's rules: plain functions over a SQLAlchemy connection, no CLI."""
