"""chatctl notifications: The bell: tag notifications per agent."""

from __future__ import annotations

import typer

app = typer.Typer(help="The bell: tag notifications per agent.", no_args_is_help=True)
