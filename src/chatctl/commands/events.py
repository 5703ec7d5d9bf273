"""chatctl events: Apply inbound chat events (JSON Lines) as the desk would."""

from __future__ import annotations

import typer

app = typer.Typer(help="Apply inbound chat events (JSON Lines) as the desk would.", no_args_is_help=True)
