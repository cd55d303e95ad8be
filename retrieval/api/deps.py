"""What every route needs: its library (by the URL's name or the default) and the caller's key.

Keys belong to a library: a request for ``/v1/libraries/NAME/...`` needs a key of NAME's
database, ``/v1/...`` one of the first library's. Once any served library has a key (or the
server listens beyond loopback), every request but ``/healthz`` and the schema needs one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from indexer.store.keys import ApiKey
from retrieval.api.errors import ApiError
from retrieval.api.libraries import Libraries, ServedLibrary
from retrieval.library.handle import Library
from retrieval.service.uploads import MAX_UPLOAD_BYTES

KEYS_TTL_S = 1.0  # how long "is any key configured?" is remembered (keys are checked each time)
bearer = HTTPBearer(auto_error=False, description="An API key from `vitrieve keys create`.")


@dataclass
class ServerState:
    """What the app holds: its libraries, whether keys are required, the upload limit."""

    libraries: Libraries
    require_auth: bool = False
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    _keys_seen: tuple[float, bool] = field(default=(0.0, False))

    def auth_required(self) -> bool:
        if self.require_auth:
            return True
        checked_at, any_keys = self._keys_seen
        if time.monotonic() - checked_at > KEYS_TTL_S:
            any_keys = self.libraries.any_keys()
            self._keys_seen = (time.monotonic(), any_keys)
        return any_keys


def server(request: Request) -> ServerState:
    return request.app.state.vitrieve


def library_name(name: str = Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")) -> str:
    """The ``{name}`` of ``/v1/libraries/{name}/...`` (declared so the schema shows it)."""
    return name


def handle(request: Request) -> ServedLibrary:
    """The library the URL names (404 for an unknown name), else the default one."""
    name = request.path_params.get("name")
    try:
        return server(request).libraries.get(name)
    except KeyError:
        raise ApiError(404, f"unknown library {str(name)[:64]!r}") from None


def _authorize(request: Request, credentials: HTTPAuthorizationCredentials | None,
               write: bool) -> ApiKey | None:  # fmt: skip
    state = server(request)
    if not state.auth_required():
        return None
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "an API key is required: Authorization: Bearer KEY", None, challenge)
    key = handle(request).keys.check(credentials.credentials.strip())
    if key is None:
        raise ApiError(401, "invalid or revoked API key", None, challenge)
    if write and key.read_only:
        raise ApiError(403, "this API key is read-only")
    return key


def reader(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Library:
    """The request's library, once its key (if keys are on) may read."""
    _authorize(request, credentials, write=False)
    return handle(request).current()


def writer(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Library:
    """The request's library, once its key (if keys are on) may also label and start jobs."""
    _authorize(request, credentials, write=True)
    return handle(request).current()


def any_reader(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> None:
    """For server-wide pages (metrics): a read key of any served library."""
    state = server(request)
    if not state.auth_required():
        return
    token = credentials.credentials.strip() if credentials is not None else ""
    for item in state.libraries.by_name.values():
        if token and item.keys.check(token) is not None:
            return
    raise ApiError(401, "an API key is required: Authorization: Bearer KEY", None,
                   {"WWW-Authenticate": "Bearer"})  # fmt: skip


def base_url(request: Request) -> str:
    """``/v1`` or ``/v1/libraries/NAME``: where this library's other resources are."""
    name = request.path_params.get("name")
    return f"/v1/libraries/{name}" if name else "/v1"
