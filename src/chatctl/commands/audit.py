"""chatctl audit: The audit trail: list events, revert an operation."""

from __future__ import annotations

import typer

app = typer.Typer(help="The audit trail: list events, revert an operation.", no_args_is_help=True)
