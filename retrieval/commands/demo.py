"""``vitrieve demo`` (``make demo``): a demo library and the UI over it, in one command.

The first run renders synthetic photos, trains a small model for a few minutes and indexes
the photos (all cached); later runs reuse everything and start in seconds.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer

from retrieval.commands.common import DEVICE_OPTION, JSON_OPTION
from retrieval.commands.ui import check_exposure, serve
from retrieval.service.demo import DemoSettings, build_demo, default_cache

DEFAULTS = {f.name: f.default for f in dataclasses.fields(DemoSettings)}  # the demo's own


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    cache_dir: Path | None = typer.Option(
        None,
        help="Where the demo's photos, model and library live (default ~/.cache/vitrieve/demo).",
    ),
    photos: int = typer.Option(DEFAULTS["photos"], min=1, help="Number of demo photos."),
    train_minutes: float = typer.Option(
        DEFAULTS["train_minutes"], min=0.1, help="Training time of the demo model (minutes)."
    ),
    model: Path | None = typer.Option(
        None, "--model", "-m", help="A checkpoint directory to use instead of training one."
    ),
    host: str = typer.Option(
        "127.0.0.1",
        help="Address the UI listens on. Beyond loopback (e.g. 0.0.0.0) it needs a login "
        "(docs/security.md) or --no-auth-on-network.",
    ),
    port: int = typer.Option(8501, help="Port of the UI."),
    no_auth_on_network: bool = typer.Option(
        False,
        "--no-auth-on-network",
        help="Listen beyond loopback without a login: anyone who reaches the port can see "
        "every photo and start jobs (as vitrieve ui's option).",
    ),
    no_ui: bool = typer.Option(False, "--no-ui", help="Build the demo library, don't serve it."),
    device: str = DEVICE_OPTION,
    as_json: bool = JSON_OPTION,
    xdg_cache_home: str | None = typer.Option(None, envvar="XDG_CACHE_HOME", hidden=True),
) -> None:
    """Build (or reuse) the demo library — synthetic photos, a model trained here — and open it."""
    if not no_ui and not no_auth_on_network:
        check_exposure(host, port, open_on_network=False)  # refuse before minutes of building
    settings = DemoSettings(
        cache=(cache_dir or default_cache(xdg_cache_home)).expanduser().resolve(),
        photos=photos,
        train_minutes=train_minutes,
        use_checkpoint=model,
        device=device,
    )

    def say(message: str) -> None:
        typer.echo(f"demo: {message}", err=as_json)

    library = build_demo(settings, say)
    if no_ui:
        result = {"library": str(library), "photos": str(settings.photo_dir),
                  "model": str(settings.checkpoint)}  # fmt: skip
        typer.echo(json.dumps(result) if as_json else f"demo library: {library}")
        return
    banner = "vitrieve demo: {url}  — try “a red circle” (Ctrl-C to stop)"
    serve(library, host, port, banner, device, open_on_network=no_auth_on_network)
