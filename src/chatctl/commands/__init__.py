"""One thin Typer module per command group: parse, call the domain, render.

These modules import only the standard library, Typer and chatctl's light
modules at top level, so ``chatctl --help`` never loads SQLAlchemy.
"""
