"""chatctl sweep: The scheduled jobs: timeouts, archiving, clean-up."""

from __future__ import annotations

import typer

app = typer.Typer(help="The scheduled jobs: timeouts, archiving, clean-up.", no_args_is_help=True)
