"""chatctl tickets: Tickets: list, close, reopen, archive, assign, bulk cleanup."""

from __future__ import annotations

import typer

app = typer.Typer(help="Tickets: list, close, reopen, archive, assign, bulk cleanup.", no_args_is_help=True)
