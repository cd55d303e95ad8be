"""``vitrieve keys create|list|revoke``: the HTTP API's keys, kept hashed in a library's
database (the key itself is shown once, at creation)."""

from __future__ import annotations

from pathlib import Path

import typer

from indexer.store.keys import ApiKey, KeyStore
from retrieval.commands.common import (
    JSON_OPTION,
    LIBRARY_OPTION,
    emit_json,
    open_library,
)

keys_app = typer.Typer(help="API keys of the HTTP API (vitrieve serve).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


def _as_dict(key: ApiKey) -> dict:
    return {"id": key.id, "name": key.name, "prefix": key.prefix, "read_only": key.read_only,
            "created_at": key.created_at.isoformat(timespec="seconds"),
            "revoked_at": key.revoked_at.isoformat(timespec="seconds") if key.revoked_at
            else None}  # fmt: skip


@keys_app.command("create")
def create(
    library: Path | None = LIBRARY_OPTION,
    read_only: bool = typer.Option(False, "--read-only", help="Search only: no labels, no jobs."),
    name: str = typer.Option("", "--name", help="What the key is for (shown by keys list)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a key; it is printed once and only its hash is kept."""
    with open_library(library) as lib:
        key, record = KeyStore(lib.store).create(name, read_only)
    if as_json:
        emit_json({"key": key, **_as_dict(record)})
        return
    access = "read-only" if record.read_only else "read-write"
    typer.echo(key)
    typer.echo(f"created {access} key {record.id} ({record.name}); it is not shown again: "
               "send it as 'Authorization: Bearer KEY'", err=True)  # fmt: skip


@keys_app.command("list")
def list_keys(library: Path | None = LIBRARY_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Every key of the library (never the keys themselves)."""
    with open_library(library) as lib:
        keys = KeyStore(lib.store).list()
    if as_json:
        emit_json([_as_dict(k) for k in keys])
        return
    if not keys:
        typer.echo("no API keys (vitrieve keys create)")
    for key in keys:
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        access = "read-only" if key.read_only else "read-write"
        typer.echo(f"{key.id:>4}  {key.prefix}…  {access:<10}  {state:<18}  {key.name}")


@keys_app.command("revoke")
def revoke(
    key: str = typer.Argument(..., help="The key's id, name or shown prefix."),
    library: Path | None = LIBRARY_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Revoke a key: requests carrying it get 401 from then on."""
    with open_library(library) as lib:
        record = KeyStore(lib.store).revoke(key)
    if as_json:
        emit_json(_as_dict(record))
    else:
        typer.echo(f"revoked key {record.id} ({record.name})")
