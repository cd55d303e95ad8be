"""The ``vitrieve`` command line: one typer app; each command group lives in retrieval/commands/.

This module (with retrieval/commands/ and ui/) is the only place that reads argv, prints,
or exits. Errors from the library arrive as exceptions and leave as one clear line.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from encoders.errors import VitrieveError
from retrieval.commands import data as data_commands
from retrieval.commands import demo as demo_commands
from retrieval.commands import evaluate as evaluate_commands
from retrieval.commands import index as index_commands
from retrieval.commands import keys as key_commands
from retrieval.commands import labels as label_commands
from retrieval.commands import library_tools as library_tool_commands
from retrieval.commands import model as model_commands
from retrieval.commands import search as search_commands
from retrieval.commands import serve as serve_commands
from retrieval.commands import train as train_commands
from retrieval.commands import ui as ui_commands
from retrieval.commands.common import one_line

app = typer.Typer(
    name="vitrieve",
    help="Train CLIP-style models, index photo libraries and search them in words.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (
    model_commands,
    data_commands,
    evaluate_commands,
    ui_commands,
    demo_commands,
    search_commands,
    label_commands,
    library_tool_commands,
    index_commands,
    train_commands,
    serve_commands,
    key_commands,
):
    module.register(app)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details."),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    """Entry point: run the app; library errors become one line on stderr and exit code 1."""
    # Hugging Face's "Loading weights" bars are noise for a search command (the UI inherits it).
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        app(standalone_mode=True)
    except (VitrieveError, FileNotFoundError, PermissionError, ValueError) as exc:
        typer.echo(f"error: {one_line(str(exc))}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
