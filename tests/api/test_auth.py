"""API keys: stored hashed, required once any exists, read-only keys cannot write, revocation
is immediate; a non-loopback --host is refused without a key; CORS only for --cors-origin."""

from __future__ import annotations

import hashlib
import json

import httpx
from apiserver import free_port
from conftest import CORS_ORIGIN, keys_cli, vitrieve


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_requests_need_a_valid_key(keyed_server) -> None:
    url = keyed_server.url
    for headers in ({}, _bearer("vtr_wrong"), _bearer(keyed_server.read_key + "x"),
                    {"Authorization": keyed_server.read_key}):  # fmt: skip
        for path in ("/v1/search?q=a", "/v1/status", "/v1/images/1/file", "/metrics",
                     "/v1/libraries/keyed/status", "/v1/libraries"):  # fmt: skip
            response = httpx.get(url + path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]
    assert httpx.get(url + "/healthz").status_code == 200
    assert httpx.get(url + "/openapi.json").status_code == 200
    for key in (keyed_server.read_key, keyed_server.write_key):
        ok = httpx.get(url + "/v1/search", params={"q": "a red circle"}, headers=_bearer(key))
        assert ok.status_code == 200 and ok.json()["results"]
        assert httpx.get(url + "/metrics", headers=_bearer(key)).status_code == 200


def test_read_only_key_cannot_write(keyed_server) -> None:
    url, job = keyed_server.url, {"labels": ["red", "blue"], "name": "auth-test"}
    refused = httpx.post(url + "/v1/labels", json=job, headers=_bearer(keyed_server.read_key))
    assert refused.status_code == 403 and "read-only" in refused.json()["error"]
    searched = httpx.post(url + "/v1/search", json={"q": "red"},
                          headers=_bearer(keyed_server.read_key))  # fmt: skip
    assert searched.status_code == 200
    started = httpx.post(url + "/v1/labels", json=job, headers=_bearer(keyed_server.write_key))
    assert started.status_code == 202, started.text
    progress = httpx.get(url + started.json()["url"], headers=_bearer(keyed_server.read_key))
    assert progress.status_code == 200


def test_keys_are_stored_hashed_and_revoked_at_once(keyed_server) -> None:
    made = keys_cli("create", "--library", str(keyed_server.library), "--name", "temp", "--json")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    key = created["key"]
    database = (keyed_server.library / "library.db").read_bytes()
    for extra in ("library.db-wal",):
        path = keyed_server.library / extra
        database += path.read_bytes() if path.exists() else b""
    assert key.encode() not in database
    listing = keys_cli("list", "--library", str(keyed_server.library), "--json")
    assert listing.returncode == 0 and key not in listing.stdout
    names = {k["name"]: k for k in json.loads(listing.stdout)}
    assert names["temp"]["prefix"] == key[:10] and names["test1"]["read_only"]
    status = httpx.get(keyed_server.url + "/v1/status", headers=_bearer(key))
    assert status.status_code == 200
    revoked = keys_cli("revoke", str(created["id"]), "--library", str(keyed_server.library))
    assert revoked.returncode == 0, revoked.stderr
    after = httpx.get(keyed_server.url + "/v1/status", headers=_bearer(key))
    assert after.status_code == 401
    again = keys_cli("revoke", str(created["id"]), "--library", str(keyed_server.library))
    assert again.returncode == 1 and "no active key" in again.stderr
    assert hashlib.sha256(key.encode()).hexdigest() != key


def test_cors_only_for_the_given_origin(keyed_server, open_server) -> None:
    preflight = {"Origin": CORS_ORIGIN, "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}  # fmt: skip
    allowed = httpx.options(keyed_server.url + "/v1/search", headers=preflight)
    assert allowed.headers.get("access-control-allow-origin") == CORS_ORIGIN
    other = httpx.options(
        keyed_server.url + "/v1/search", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers
    closed = httpx.get(open_server + "/v1/status", headers={"Origin": CORS_ORIGIN})
    assert closed.status_code == 200 and "access-control-allow-origin" not in closed.headers


def test_non_loopback_host_refused_without_a_key(api_libraries) -> None:
    done = vitrieve("serve", "--library", str(api_libraries.alt), "--host", "0.0.0.0",
                    "--port", str(free_port()))  # fmt: skip
    assert done.returncode == 1
    assert "no API key" in done.stderr and "Traceback" not in done.stderr
