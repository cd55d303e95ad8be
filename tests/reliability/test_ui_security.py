"""UI security: nothing outside the library can be read or served, whatever id, row, symlink,
URL or request the UI is given; the server keeps XSRF on and listens on loopback by default.

Three levels: ``retrieval.library.handle.Library`` (the one gate every file read goes through),
the Streamlit app under ``AppTest`` (pages fed tampered rows and URLs), and a running
``vitrieve ui`` server over HTTP (its static, media, component and upload endpoints).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from encoders.errors import VitrieveError
from retrieval.library.handle import Library

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "ui" / "app.py")
XSRF = "_streamlit_xsrf"  # Streamlit's XSRF cookie name (streamlit.web.server)
SECRET = "vitrieve-secret-marker-7f3a"  # the content of every file that must stay unreachable
BAD_IDS = [-1, 2**31, 2**63, 2**80, -(2**70), "1; DROP TABLE files", "../../etc/passwd",
           "", " ", "1.5e3", "nan", float("inf"), float("nan"), None, b"1", [1],
           {"id": 1}]  # fmt: skip


# --- a private copy of the demo library that each test may tamper with ----------------------


@pytest.fixture
def library_copy(demo_library: Path, tmp_path: Path) -> Path:
    """A copy of the demo photos + library (its root rewritten), and a secret file beside it."""
    with Library.open(demo_library) as original:
        root, library_dir = original.root, original.path
    photos = tmp_path / "photos"
    shutil.copytree(root, photos, symlinks=True, ignore=shutil.ignore_patterns(".vitrieve"))
    target = photos / ".vitrieve"
    shutil.copytree(library_dir, target)
    manifest = (target / "library.json").read_text().replace(str(root), str(photos))
    (target / "library.json").write_text(manifest)
    (tmp_path / "secret.txt").write_text(SECRET)
    _secret_image(tmp_path / "secret.jpg")
    return target


def _secret_image(path: Path) -> None:
    """A valid JPEG outside the library: decodable, so only the path checks can refuse it."""
    Image.new("RGB", (64, 64), (1, 2, 3)).save(path, format="JPEG")


def _rows(library_dir: Path) -> list[tuple[int, str, str | None]]:
    with sqlite3.connect(library_dir / "library.db") as db:
        return db.execute(
            "SELECT id, path, thumb FROM files WHERE status = 'indexed' ORDER BY id"
        ).fetchall()


def _tamper(library_dir: Path, file_id: int, column: str, value: str) -> None:
    """Rewrite one row's path or thumbnail directly in library.db (as an attacker with the db)."""
    assert column in ("path", "thumb")
    with sqlite3.connect(library_dir / "library.db") as db:
        db.execute(f"UPDATE files SET {column} = ? WHERE id = ?", (value, file_id))


# --- library level ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_crafted_ids_are_refused_with_a_clear_error(library_copy: Path, bad) -> None:
    with Library.open(library_copy) as library:
        for access in (library.record, library.file_path, library.thumbnail_path):
            with pytest.raises(VitrieveError):
                access(bad)


def _unsafe_paths(tmp_path: Path, library_dir: Path) -> list[str]:
    photos = library_dir.parent
    depth = len(photos.parts) + 3
    return [
        "../secret.jpg",
        "../secret.txt",
        "album/../../secret.jpg",
        str(tmp_path / "secret.jpg"),  # absolute
        "/" + "/".join([".."] * depth) + str(tmp_path / "secret.jpg"),
        "//" + str(tmp_path / "secret.jpg").lstrip("/"),
        "./../secret.jpg",
        "..\\secret.jpg",  # a Windows separator: a plain (missing) file name on POSIX
        "~/secret.jpg",
        "missing.jpg",
        "",
        ".",
        "album",  # a directory, not a file
        "secret.jpg\x00.jpg",
    ]


def test_tampered_rows_never_leave_the_library(library_copy: Path, tmp_path: Path) -> None:
    (library_copy.parent / "album").mkdir(exist_ok=True)
    victim = _rows(library_copy)[0][0]
    for unsafe in _unsafe_paths(tmp_path, library_copy):
        _tamper(library_copy, victim, "path", unsafe)
        with Library.open(library_copy) as library, pytest.raises(VitrieveError):
            library.file_path(victim)
        _tamper(library_copy, victim, "thumb", unsafe)
        with Library.open(library_copy) as library:
            assert library.thumbnail_path(victim) is None, unsafe


def test_tampered_thumbnail_cannot_name_another_library_file(library_copy: Path) -> None:
    """A thumbnail path is served as raw bytes: it must be a .webp under thumbs/, not the
    database, the manifest or the vectors (which are inside the library directory too)."""
    victim, _, thumb = _rows(library_copy)[0]
    with Library.open(library_copy) as library:
        assert library.thumbnail_path(victim) == (library_copy / thumb).resolve()
    (library_copy / "thumbs" / "notes.txt").write_text(SECRET)
    for other in ("library.db", "library.json", "vectors.faiss", "thumbs/notes.txt",
                  "thumbs/../library.db", "./library.db"):  # fmt: skip
        _tamper(library_copy, victim, "thumb", other)
        with Library.open(library_copy) as library:
            assert library.thumbnail_path(victim) is None, other


def test_symlinks_out_of_the_library_are_refused(library_copy: Path, tmp_path: Path) -> None:
    photos = library_copy.parent
    (photos / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    (photos / "linked-dir").symlink_to(tmp_path, target_is_directory=True)
    (library_copy / "thumbs" / "link.webp").symlink_to(tmp_path / "secret.jpg")
    victim = _rows(library_copy)[0][0]
    for unsafe in ("link.jpg", "linked-dir/secret.jpg"):
        _tamper(library_copy, victim, "path", unsafe)
        with Library.open(library_copy) as library, pytest.raises(VitrieveError, match="out"):
            library.file_path(victim)
    _tamper(library_copy, victim, "thumb", "thumbs/link.webp")
    with Library.open(library_copy) as library:
        assert library.thumbnail_path(victim) is None


def test_symlink_inside_the_library_still_works(library_copy: Path) -> None:
    """The checks refuse what leaves the library, not symlinks as such."""
    victim, path, _ = _rows(library_copy)[0]
    photos = library_copy.parent
    (photos / "alias.jpg").symlink_to(photos / path)
    _tamper(library_copy, victim, "path", "alias.jpg")
    with Library.open(library_copy) as library:
        assert library.file_path(victim) == (photos / path).resolve()


def test_ui_readers_return_nothing_for_tampered_rows(library_copy: Path, tmp_path: Path) -> None:
    """ui.media (the only code that turns files into bytes for the browser) serves nothing."""
    from ui import media

    victim = _rows(library_copy)[0][0]
    _tamper(library_copy, victim, "path", str(tmp_path / "secret.jpg"))
    _tamper(library_copy, victim, "thumb", "../../secret.jpg")
    with Library.open(library_copy) as library:
        assert media.thumbnail_bytes(library, victim) is None
        assert media.large_bytes(library, victim) is None
        for bad in BAD_IDS:
            assert media.thumbnail_bytes(library, bad) is None, bad
            assert media.large_bytes(library, bad) is None, bad


# --- the app, under AppTest ------------------------------------------------------------------


def _app(library: Path | str | None, query_params: dict[str, str] | None = None) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=120)
    if library is not None:
        app.session_state["library_path"] = str(library)
    for key, value in (query_params or {}).items():
        app.query_params[key] = value
    return app


def _shown_text(app: AppTest) -> str:
    kinds = ("title", "markdown", "caption", "info", "warning", "error", "success", "code")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(app, kind))


def test_search_page_over_tampered_rows_shows_no_foreign_file(
    library_copy: Path, tmp_path: Path
) -> None:
    """Every indexed row points outside the library: the grid shows "missing", never the file."""
    for n, (file_id, _, _) in enumerate(_rows(library_copy)):
        _tamper(library_copy, file_id, "path", f"{'./' * n}../secret.jpg")  # paths are unique
        _tamper(library_copy, file_id, "thumb", str(tmp_path / "secret.jpg"))
    app = _app(library_copy).run()
    app.text_input(key="query").set_value("a red circle")
    app.button(key="run-search").click().run()
    assert not app.exception, app.exception
    assert not app.get("image"), "no picture of a file outside the library"
    assert app.warning and all("missing" in str(w.value) for w in app.warning)
    next(b for b in app.button if b.label == "Open").click().run()
    assert not app.exception, app.exception
    assert "cannot be shown" in _shown_text(app)
    assert not app.get("image")


@pytest.mark.parametrize("selected", [-1, 2**63, "../../etc/passwd"])
def test_crafted_selection_in_session_is_a_message(library_copy: Path, selected) -> None:
    """A forged "open this photo" id (session state is the only channel) ends in a message."""
    app = _app(library_copy).run()
    app.text_input(key="query").set_value("a red circle")
    app.button(key="run-search").click().run()
    app.session_state["selected_id"] = selected
    app.run()
    assert not app.exception, app.exception


@pytest.mark.parametrize(
    "value",
    [
        "/etc",
        "/",
        "../../..",
        "~root",
        "~no-such-user/x",
        "/nonexistent\x00/x",
        "x" * 5000,
        "/".join(["y" * 300] * 3),
        "/proc/self",
    ],
)
def test_library_query_param_cannot_break_or_expose(value: str) -> None:
    """The only query parameter the UI reads (``?library=``) opens only real libraries."""
    app = _app(None, {"library": value}).run()
    assert not app.exception, app.exception
    assert not app.get("image")
    assert "root:x:0" not in _shown_text(app) and SECRET not in _shown_text(app)


AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "s" * 32,
    "client_id": "vitrieve",
    "client_secret": "x",
    "server_metadata_url": "https://id.example.org/.well-known/openid-configuration",
}


def test_without_auth_settings_the_app_needs_no_login(library_copy: Path) -> None:
    app = _app(library_copy)
    app.user["is_logged_in"] = False
    app.run()
    assert not app.exception, app.exception
    assert "Search" in [str(t.value) for t in app.title]


def test_with_auth_settings_nothing_shows_before_login(library_copy: Path) -> None:
    app = _app(library_copy)
    app.secrets["auth"] = AUTH
    app.user["is_logged_in"] = False
    app.run()
    assert not app.exception, app.exception
    assert [b.label for b in app.button] == ["Log in"]
    assert not app.text_input and not app.get("image") and "Search" not in _shown_text(app)


def test_with_auth_settings_only_allowed_accounts_get_in(library_copy: Path) -> None:
    for email, allowed in (("eve@example.com", False), ("Me@Example.org", True)):
        app = _app(library_copy)
        app.secrets["auth"] = AUTH
        app.secrets["vitrieve"] = {"allowed_emails": ["me@example.org"]}
        app.user.update({"is_logged_in": True, "email": email})
        app.run()
        assert not app.exception, app.exception
        titles = [str(t.value) for t in app.title]
        assert ("Search" in titles) == allowed, (email, titles, _shown_text(app))
        assert any(b.label == "Log out" for b in app.button)
