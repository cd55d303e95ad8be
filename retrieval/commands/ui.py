"""``vitrieve ui``: serve the Streamlit app in ui/ over one library.

Streamlit runs as a child process (``python -m streamlit run ui/app.py -- --library LIB``) so
the CLI stays a thin launcher: headless, XSRF protection and CORS checks on, no static file
serving, uploads capped at the same limit ``retrieval.service.uploads`` enforces, telemetry off, and
on loopback unless ``--host`` says otherwise (then tracebacks stay in the server's log). Beyond
loopback it refuses to start, as ``vitrieve serve`` does without an API key, unless a login is
configured (an ``[auth]`` section in Streamlit's secrets) or ``--no-auth-on-network`` says to.
See docs/security.md.

SIGTERM, SIGHUP or Ctrl-C to the launcher stops the server and everything it started
(``supervise``): no process outlives ``vitrieve ui`` holding its port or its memory.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import typer

from encoders.errors import VitrieveError
from encoders.runtime.device import DEFAULT_DEVICE
from retrieval.commands.common import DEVICE_OPTION, library_option
from retrieval.commands.serve import is_loopback, network_refusal
from retrieval.commands.supervise import (
    Terminated,
    ignore_stop_signals,
    start_group,
    stop_group,
    stop_signals,
)
from retrieval.service.uploads import MAX_UPLOAD_BYTES

MAX_UPLOAD_MB = MAX_UPLOAD_BYTES // 2**20  # Streamlit's server.maxUploadSize is in MiB
READY_TIMEOUT_S = 120.0
NO_LOGIN = "no login is configured"
LOGIN_REMEDY = (
    "Add an [auth] section to .streamlit/secrets.toml first (docs/security.md), or pass "
    "--no-auth-on-network to open every photo and job to whoever reaches the port"
)


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)


def ui(
    library: Path | None = library_option("none: pick or create one in the UI"),
    host: str = typer.Option(
        "127.0.0.1",
        help="Address to listen on. Beyond loopback (e.g. 0.0.0.0) the UI needs a login "
        "(docs/security.md) or --no-auth-on-network.",
    ),
    port: int = typer.Option(8501, help="Port to listen on."),
    device: str = DEVICE_OPTION,
    no_auth_on_network: bool = typer.Option(
        False,
        "--no-auth-on-network",
        help="Listen beyond loopback without a login: anyone who reaches the port can see "
        "every photo and start jobs.",
    ),
) -> None:
    """Open the search, classify and library pages in the browser."""
    if not 0 < port < 65536:
        raise typer.BadParameter(f"port must be 1-65535, got {port}")
    serve(library, host, port, "vitrieve UI: {url}  (Ctrl-C to stop)", device,
          open_on_network=no_auth_on_network)  # fmt: skip


def serve(
    library: Path | None, host: str, port: int, banner: str, device: str = DEFAULT_DEVICE,
    open_on_network: bool = False,
) -> None:  # fmt: skip
    """Run the UI until it exits, Ctrl-C (exit 130) or SIGTERM/SIGHUP (exit 0); print
    ``banner`` (with ``{url}``) once it answers. ``open_on_network``: listen beyond loopback
    without a login (else refused)."""
    check_exposure(host, port, open_on_network)
    with stop_signals():
        process = start_ui(library, host, port, device)
        try:
            wait_until_ready(process, host, port)
            typer.echo(banner.format(url=ui_url(host, port)))
            code = process.wait()
        except Terminated:
            code = 0
        finally:
            ignore_stop_signals()  # a second Ctrl-C must not cut the clean-up short
            stop_group(process)
    if code:
        raise typer.Exit(code)


def check_exposure(host: str, port: int, open_on_network: bool) -> None:
    """Refuse a non-loopback ``host`` unless a login is configured or ``open_on_network``
    (then say on stderr that the UI is open)."""
    if is_loopback(host) or login_configured():
        return
    if not open_on_network:
        raise network_refusal(host, NO_LOGIN, LOGIN_REMEDY)
    typer.echo(
        f"warning: listening on {host} without a login: anyone who reaches port {port} can "
        "search and view your photos; put the UI behind a login (docs/security.md)",
        err=True,
    )


def login_configured() -> bool:
    """Whether the UI will ask for a login: Streamlit's secrets (the files its server reads,
    in this folder's and the user's ``.streamlit/``) have an ``[auth]`` section, the test
    ``ui/auth.py`` applies on every page. An unreadable secrets file counts as none."""
    import streamlit as st
    from streamlit.errors import StreamlitSecretNotFoundError

    try:
        return "auth" in st.secrets
    except (StreamlitSecretNotFoundError, OSError, ValueError):
        return False


def app_script() -> Path:
    """ui/app.py, found without importing ui (imports flow ui → retrieval, never back).

    ``ui`` is installed next to ``retrieval``; the import system is asked only as a fallback."""
    candidates = [Path(__file__).resolve().parents[2] / "ui"]
    spec = importlib.util.find_spec("ui")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) for p in spec.submodule_search_locations]
    for folder in candidates:
        if (folder / "app.py").is_file() and (folder / "__init__.py").is_file():
            return folder / "app.py"
    raise VitrieveError("the UI entry point ui/app.py is not installed next to retrieval")


def streamlit_command(
    library: Path | None, host: str, port: int, device: str = DEFAULT_DEVICE
) -> list[str]:
    """The ``streamlit run`` command line for one library; the app's own arguments (after
    ``--``) are the device its models run on and the library."""
    command = [
        sys.executable, "-m", "streamlit", "run", str(app_script()),
        "--server.headless", "true",
        "--server.address", host,
        "--server.port", str(port),
        "--server.enableXsrfProtection", "true",
        "--server.enableCORS", "true",
        "--server.enableStaticServing", "false",
        "--server.maxUploadSize", str(MAX_UPLOAD_MB),
        "--client.showErrorDetails", "full" if is_loopback(host) else "none",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",
        "--global.developmentMode", "false",
    ]  # fmt: skip
    command += ["--", "--device", device]
    if library is not None:
        command += ["--library", str(Path(library).expanduser().resolve())]
    return command


def start_ui(
    library: Path | None, host: str, port: int, device: str = DEFAULT_DEVICE
) -> subprocess.Popen:
    """Start the Streamlit server in the background, in a process group of its own; the
    caller waits for it or stops it (``supervise.stop_group``)."""
    return start_group(streamlit_command(library, host, port, device))


def ui_url(host: str, port: int) -> str:
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}"


def wait_until_ready(
    process: subprocess.Popen, host: str, port: int, timeout: float = READY_TIMEOUT_S
) -> None:
    """Block until Streamlit answers its health check, or fail with its exit code."""
    probe = "127.0.0.1" if host in ("0.0.0.0", "") else host
    health = f"http://{probe}:{port}/_stcore/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise VitrieveError(f"the UI server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(health, timeout=2) as response:
                if response.status == 200 and process.poll() is None:
                    return
        except OSError:
            time.sleep(0.3)
    raise VitrieveError(f"the UI server did not answer on {health} within {timeout:.0f}s")
