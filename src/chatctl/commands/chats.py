"""chatctl chats: The five views and every chat action."""

from __future__ import annotations

import typer

app = typer.Typer(help="The five views and every chat action.", no_args_is_help=True)
