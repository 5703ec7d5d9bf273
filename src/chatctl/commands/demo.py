"""chatctl demo: Create a realistic demo desk to try chatctl on."""

from __future__ import annotations

import typer

app = typer.Typer(help="Create a realistic demo desk to try chatctl on.", no_args_is_help=True)
