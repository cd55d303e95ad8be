"""The ``vitrieve`` command line: one typer app; each command group lives in retrieval/commands/.

This module (with retrieval/commands/ and ui/) is the only place that reads argv, prints,
or exits. Its one error boundary (``ErrorBoundary``) decides what an exception means: a
user error (``VitrieveError``, a file-system error) is one ``error: ...`` line and exit 1, a
device or usage error exit 2, and anything else is a bug, said so ("internal error"), with
the traceback behind ``--debug``.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Any

import typer
from typer.core import TyperGroup

try:  # a typer that vendors click: its usage errors derive from this public base
    from typer import TyperException as ClickException
except ImportError:  # older typer raises click's own
    from click import ClickException

from encoders.errors import VitrieveError
from encoders.runtime.device import DeviceError
from retrieval.commands import data as data_commands
from retrieval.commands import demo as demo_commands
from retrieval.commands import evaluate as evaluate_commands
from retrieval.commands import explain as explain_commands
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

DEBUG_FLAG = "--debug"
USER_ERRORS: tuple[type[BaseException], ...] = (VitrieveError, OSError)  # exit 1
USAGE_ERRORS: tuple[type[BaseException], ...] = (DeviceError,)  # exit 2, like click's own
EXIT_INTERRUPTED = 130


def exit_code_for(error: BaseException, debug: bool = False) -> int:
    """Say what went wrong on stderr, in one line (plus the traceback with ``--debug``), and
    return the exit code: 2 for usage and device errors, 1 for user errors and bugs."""
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    message = one_line(str(error)) or type(error).__name__
    if isinstance(error, USAGE_ERRORS):
        typer.echo(f"error: {message}", err=True)
        return 2
    if isinstance(error, USER_ERRORS):
        typer.echo(f"error: {message}", err=True)
        return 1
    hint = "" if debug else f"; run with {DEBUG_FLAG} for the traceback"
    typer.echo(f"internal error: {type(error).__name__}: {message}{hint}", err=True)
    return 1


class ErrorBoundary(TyperGroup):
    """The root group: every command (and every option callback, such as ``--device``'s)
    runs inside its ``invoke``, so this is the one place exceptions become exit codes."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ClickException, typer.Exit, typer.Abort):  # usage errors, exits: click's own
            raise
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as error:
            raise typer.Exit(exit_code_for(error, ctx.meta.get(DEBUG_FLAG, False))) from None


app = typer.Typer(
    name="vitrieve",
    help="Train CLIP-style models, index photo libraries and search them in words.",
    cls=ErrorBoundary,
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
    explain_commands,
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
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details."),
    debug: bool = typer.Option(False, DEBUG_FLAG, help="Show the traceback of any error."),
) -> None:
    ctx.meta[DEBUG_FLAG] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _debug_first(args: list[str]) -> list[str]:
    """``--debug`` is a root option; users add it anywhere (before a ``--``), so move it."""
    end = args.index("--") if "--" in args else len(args)
    if DEBUG_FLAG not in args[:end]:
        return args
    return [DEBUG_FLAG, *(a for n, a in enumerate(args) if n >= end or a != DEBUG_FLAG)]


def main() -> None:
    """Entry point: run the app (its ``ErrorBoundary`` turns errors into exit codes)."""
    # Hugging Face's "Loading weights" bars are noise for a search command (the UI inherits it).
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    app(args=_debug_first(sys.argv[1:]), prog_name="vitrieve")


if __name__ == "__main__":
    main()
