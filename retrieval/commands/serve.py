"""``vitrieve serve``: the HTTP API (retrieval/api) over one or more libraries, with uvicorn.

Without an API key in any served library the server listens on loopback only: a non-loopback
``--host`` is refused until ``vitrieve keys create`` made one. Listening beyond loopback, every
request but ``/healthz`` and the schema needs a key. See docs/api.md.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import typer

from encoders.errors import VitrieveError
from indexer.layout import locate_library
from indexer.store.keys import KeyStore
from retrieval.commands.common import DEVICE_OPTION
from retrieval.library.handle import Library
from retrieval.service.uploads import MAX_UPLOAD_BYTES

DEFAULT_PORT = 8765
MIB = 2**20  # --max-upload-mb is in MiB, as Streamlit's server.maxUploadSize (vitrieve ui)
WORKER_START_S = 300  # how long a worker process may take to load the model and answer


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``; anything else reaches the network."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def network_refusal(host: str, missing: str, remedy: str) -> VitrieveError:
    """The one refusal of a front end asked to listen beyond loopback unprotected (the API
    without a key, the UI without a login): the same words, whichever refuses."""
    return VitrieveError(f"{missing}: refusing to listen on {host} (not loopback). {remedy}")


def serve(
    libraries: list[str] = typer.Option(
        None, "--library", "-l",
        help="Library to serve, LIB or NAME=LIB; repeat for several (the first is also /v1/…).",
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback unless keys)."),
    port: int = typer.Option(DEFAULT_PORT, help="Port to listen on."),
    device: str = DEVICE_OPTION,
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes (each loads the model)."),
    cors_origins: list[str] = typer.Option(
        None, "--cors-origin", help="Allow browser pages from this origin (repeatable); CORS is "
        "off without it.",
    ),
    max_upload_mb: float = typer.Option(
        MAX_UPLOAD_BYTES / MIB, min=0.01, help="Largest upload (MiB) per request.",
    ),
    compile: bool = typer.Option(
        False, "--compile", help="Compile the model at start (tens of seconds, once): faster "
        "queries; on a GPU, one text query through replayed CUDA graphs.",
    ),
) -> None:  # fmt: skip
    """Serve the HTTP API: search, similar, classify, label, embed, status (docs/api.md)."""
    _serve(libraries, host, port, device, workers, cors_origins, max_upload_mb, compile)


def _serve(libraries, host, port, device, workers, cors_origins, max_upload_mb, compile) -> None:
    import uvicorn

    from retrieval.api import app as api
    from retrieval.api.libraries import parse_spec

    if not 0 < port < 65536:
        raise typer.BadParameter(f"port must be 1-65535, got {port}")
    values = libraries or [str(locate_library(None))]
    specs = [parse_spec(value, n) for n, value in enumerate(values)]
    loopback = is_loopback(host)
    if not loopback and not _any_keys([path for _, path in specs]):
        raise network_refusal(
            host, "no API key is configured", "Create one first: vitrieve keys create --library LIB"
        )
    settings = api.ServeSettings(
        libraries=[(name, str(path)) for name, path in specs], device=device,
        require_auth=not loopback, cors_origins=list(cors_origins or []),
        max_upload_bytes=int(max_upload_mb * MIB), compile=compile,
    )  # fmt: skip
    names = ", ".join(name for name, _ in specs)
    typer.echo(f"vitrieve API on http://{host}:{port}/v1 ({names}); schema at /docs", err=True)
    if workers == 1:
        uvicorn.run(api.open_app(settings), host=host, port=port, log_level="warning")
        return
    api.settings_to_env(settings)
    # a worker loading torch and the model on a busy machine misses uvicorn's 5 s health
    # check and is killed and restarted forever; give it time (the option is uvicorn ≥ 0.31)
    patience = (
        {"timeout_worker_healthcheck": WORKER_START_S}
        if _has_option("timeout_worker_healthcheck")
        else {}
    )
    uvicorn.run("retrieval.api.app:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level="warning", **patience)  # fmt: skip


def _has_option(name: str) -> bool:
    import inspect

    import uvicorn

    return name in inspect.signature(uvicorn.run).parameters


def _any_keys(paths: list[Path]) -> bool:
    """Whether any of the libraries has an active API key (their databases only: no model)."""
    for path in paths:
        with Library.open(path) as library:
            if KeyStore(library.store).has_active():
                return True
    return False
