"""Bad input, queries: hostile query strings and filter values through ``Searcher`` and the CLI.

Unicode, control characters, NUL bytes, SQL metacharacters, ``%``/``_``, megabyte strings,
empty and whitespace queries, lone ``-``, many negative terms, impossible dates, negative and
huge k/offset: always a result or a clear error (``VitrieveError``; on the CLI one ``error:``
line and exit 1, or a usage error and exit 2), never a traceback, never a changed database.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cli_run import assert_clean_outcome, run_main
from fuzz_budget import fuzz_for
from hypothesis import strategies as st

from encoders.errors import VitrieveError
from retrieval.library.handle import Library
from retrieval.search.query import Filters, Query
from retrieval.search.results import SearchResponse

SPECIALS = [
    "'; DROP TABLE files; --", '" OR 1=1 --', "1; DELETE FROM labels", "%", "_", "%%", "\\", "*",
    "-", "--", " - - -", "-\"\"", '-"unterminated', "", "   ", "\t\n\r", "\x00", "a\x00b",
    "\x1b[2J\x07", "\ud800", "\udcff", "\u202e\u200b", "𝕦𝕟𝕚𝕔𝕠𝕕𝕖 😀", "NULL", "../../etc/passwd",
    "red circle", "a red circle -square", "-red -blue -green", "2020-05-01", "t-shirt",
]  # fmt: skip
HOSTILE_TEXT = st.one_of(
    st.sampled_from(SPECIALS),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=60),  # any code point
    st.builds(str.__mul__, st.sampled_from(["a", "-x ", "% ", "'", "\x00", "é ", "😀", " "]),
              st.integers(1, 3000)),
    st.builds(" ".join, st.lists(st.sampled_from(SPECIALS), max_size=6)),
)  # fmt: skip
HUGE_INT = st.one_of(
    st.integers(), st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, -(2**63), 10**30])
)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
HUGE = "red circle " * ((1 << 20) // 11)  # a 1 MB query


# --- a private copy of the demo library and its fingerprint ----------------------------------


def fingerprint(library: Path) -> str:
    """A hash of every row of library.db and of every other file's bytes in the library."""
    digest = hashlib.blake2b(digest_size=16)
    db = sqlite3.connect(f"file:{library / 'library.db'}?mode=ro", uri=True)
    try:
        for line in db.iterdump():
            digest.update(line.encode("utf-8", "surrogatepass"))
    finally:
        db.close()
    for path in sorted(library.rglob("*")):
        if path.is_file() and not path.name.startswith("library.db"):
            digest.update(str(path.relative_to(library)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def library(demo_library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo library, copied (others use the original), warmed: calibration computed."""
    copy = tmp_path_factory.mktemp("hostile") / "library"
    shutil.copytree(demo_library, copy)
    with Library.open(copy) as lib:
        lib.searcher.search("a red circle")
    return copy


@pytest.fixture(scope="module")
def opened(library: Path):
    with Library.open(library) as lib:
        yield lib


# --- the Searcher --------------------------------------------------------------------------


@st.composite
def searches(draw: st.DrawFn) -> dict:
    maybe = lambda strategy: draw(st.none() | strategy)  # noqa: E731
    filters = Filters(
        folder=maybe(HOSTILE_TEXT), taken_after=maybe(st.datetimes()),
        taken_before=maybe(st.datetimes()), modified_after=maybe(st.datetimes()),
        modified_before=maybe(st.datetimes()),
        formats=tuple(draw(st.lists(HOSTILE_TEXT | st.sampled_from(["png", ".JPEG"]), max_size=3))),
        label=maybe(HOSTILE_TEXT | st.sampled_from(["circle", "shapes:circle", ":", "a:b:c"])),
        min_label_score=maybe(FLOATS), min_width=maybe(HUGE_INT), min_height=maybe(HUGE_INT),
        min_bytes=maybe(HUGE_INT),
    )  # fmt: skip
    return {
        "text": draw(HOSTILE_TEXT), "negatives": draw(st.lists(HOSTILE_TEXT, max_size=4)),
        "filters": filters if draw(st.booleans()) else None,
        "offset": draw(HUGE_INT), "limit": draw(HUGE_INT),
        "sort": draw(st.sampled_from(["score", "date", "", "'; --", "SCORE"])),
        "drop_weak": draw(st.booleans()), "threshold": draw(FLOATS),
        "image": draw(st.none() | st.integers(-3, 60) | HUGE_INT),
    }  # fmt: skip


def check_search(lib: Library, args: dict) -> None:
    """A page of at most ``limit`` real results, or a VitrieveError."""
    try:
        query = Query.parse(args["text"], args["negatives"], args["image"])
        response = lib.searcher.search(
            query, args["filters"], offset=args["offset"], limit=args["limit"],
            sort=args["sort"], drop_weak=args["drop_weak"], threshold=args["threshold"],
        )  # fmt: skip
    except VitrieveError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
        return
    assert isinstance(response, SearchResponse)
    assert len(response.results) <= args["limit"]
    for result in response.results:
        assert lib.record(result.id).path == result.path


@pytest.mark.timeout(900)
def test_searcher_hostile_queries_and_filters(library: Path, opened, scale, figures) -> None:
    before = fingerprint(library)
    run = fuzz_for(scale.pick(12, 90), searches(), lambda a: check_search(opened, a), batch=25)
    for text in (HUGE, "-x " * 40_000, "\x00" * (1 << 20)):  # 1 MB strings, once each
        check_search(opened, {"text": text, "negatives": [], "filters": None, "offset": 0,
                              "limit": 5, "sort": "score", "drop_weak": False,
                              "threshold": 0.5, "image": None})  # fmt: skip
    assert fingerprint(library) == before, "a search changed the library"
    figures(run.figures())
    assert not run.failures, "\n".join(run.failures[:20])


# --- the CLI -------------------------------------------------------------------------------

CLI_TEXT = HOSTILE_TEXT.map(lambda s: s.replace("\x00", ""))  # argv cannot hold NUL bytes
CLI_NUMBER = st.sampled_from(["-1", "0", "1", "3", "99999999999999999999999", "abc", "", "1e3",
                              "nan", "-0", "2147483648"])  # fmt: skip
CLI_DATE = st.sampled_from(["2024-02-30", "0001-01-01", "9999-12-31", "9999-12-31T23:59:59",
                            "1970-01-01", "'; --", "", "2020-13-01", "yesterday"])  # fmt: skip


@st.composite
def cli_calls(draw: st.DrawFn) -> list[str]:
    """One CLI invocation: a command with hostile values in its arguments and options."""
    command = draw(st.sampled_from(["search", "similar", "classify", "export", "status"]))
    args = [command]
    if command == "search":
        args += [draw(CLI_TEXT)]
    elif command == "similar":
        args += [draw(CLI_TEXT | CLI_NUMBER | st.integers(-2, 60).map(str))]
    elif command == "classify":
        args += [
            draw(st.sampled_from(["{photo}", "{library}/library.db", "/etc/passwd"]) | CLI_TEXT)
        ]
        args += ["--labels", draw(CLI_TEXT | st.just("circle,square,'; DROP TABLE files; --"))]
    options = {
        "search": ["-k", "--offset", "--folder", "--type", "--label", "--min-width", "--min-bytes",
                   "--taken-after", "--taken-before", "--modified-before", "--not", "--sort",
                   "--min-label-score", "--score-threshold"],
        "similar": ["-k", "--offset", "--text", "--not", "--folder", "--label", "--sort"],
        "classify": ["--template", "--probability-threshold", "--null-z"],
        "export": ["--format", "--set"],
        "status": [],
    }[command]  # fmt: skip
    for option in draw(st.lists(st.sampled_from(options), max_size=4)) if options else []:
        value = CLI_DATE if "taken" in option or "modified" in option else CLI_TEXT | CLI_NUMBER
        args += [option, draw(value)]
    args += ["--library", "{library}"] + (["--json"] if draw(st.booleans()) else [])
    return args


def check_cli(args: list[str], library: Path, photo: Path, capsys) -> None:
    filled = [a.replace("{library}", str(library)).replace("{photo}", str(photo)) for a in args]
    result = run_main(filled, capsys)
    assert_clean_outcome(result)
    if result.code == 0 and "--json" in filled and filled[0] != "export":
        json.loads(result.out)  # machine output stays parseable


@pytest.mark.timeout(900)
def test_cli_hostile_arguments(
    library: Path, opened, scale, figures, capsys, tmp_path, monkeypatch
):
    """search/similar/classify/export/status with hostile values: a result, one error line
    (exit 1) or a usage error (exit 2); the library unchanged."""
    monkeypatch.chdir(tmp_path)  # a default ./.vitrieve would land here, not in the repo
    photo = opened.file_path(opened.searcher.search("a red circle").results[0].id)
    before = fingerprint(library)
    run = fuzz_for(scale.pick(15, 120), cli_calls(), lambda a: check_cli(a, library, photo, capsys),
                   batch=10)  # fmt: skip
    for args in (["search", HUGE, "--json"], ["search", "x", *["--not", "y"] * 100],
                 ["similar", str(2**70)], ["search", "x", "-k", str(10**30)]):  # fmt: skip
        check_cli([*args, "--library", "{library}"], library, photo, capsys)
    assert fingerprint(library) == before, "a command changed the library"
    figures(run.figures())
    assert not run.failures, "\n".join(run.failures[:20])


def test_label_stores_hostile_names_verbatim(library: Path, tmp_path: Path, capsys) -> None:
    """``label`` writes (that is its job): SQL in label and set names is stored as text, the
    files table is untouched, and ``export`` gives the names back."""
    copy = tmp_path / "library"
    shutil.copytree(library, copy)
    name = "x'); DELETE FROM files; --"
    labels = ["circle", "'; DROP TABLE files; --", "%", "_", "😀 \u202e"]
    files_before = _files_dump(copy)
    result = run_main(["label", "--library", str(copy), "--labels", ",".join(labels),
                       "--name", name, "--null-z", "-1", "--json"], capsys)  # fmt: skip
    assert result.code == 0, result.err
    assert _files_dump(copy) == files_before
    exported = run_main(["export", "--library", str(copy), "--set", name, "--json"], capsys)
    assert exported.code == 0, exported.err
    rows = json.loads(exported.out)
    assert rows and {r["label_set"] for r in rows} == {name}
    assert {r["label"] for r in rows} <= set(labels)


def _files_dump(library: Path) -> list:
    db = sqlite3.connect(f"file:{library / 'library.db'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT * FROM files ORDER BY id").fetchall()
    finally:
        db.close()


@pytest.mark.timeout(300)
def test_cli_undecodable_argv_bytes(library: Path, tmp_path: Path, scale) -> None:
    """Bytes that are not UTF-8 in argv (a shell passes them as they are) reach the real
    entry point in a subprocess: a result or one error line, no traceback."""
    vitrieve = Path(sys.executable).with_name("vitrieve")
    calls = [[b"search", b"\xff\xfe red \xc3", b"--folder", b"\xff", b"--not", b"\x80", b"--json"],
             [b"search", b"red \xed\xa0\x80"], [b"similar", b"\xff\xfe"]]  # fmt: skip
    for args in calls[: scale.pick(1, len(calls))]:  # each call imports torch: seconds
        done = subprocess.run([bytes(vitrieve), *args, b"--library", bytes(library)],
                              capture_output=True, timeout=240, cwd=tmp_path)  # fmt: skip
        err = done.stderr.decode("utf-8", "replace")
        assert "Traceback" not in err, err[-3000:]
        assert done.returncode in (0, 1, 2), err[-3000:]
        if done.returncode == 1:
            assert err.strip().startswith("error: ") and len(err.strip().splitlines()) == 1, err
        else:
            assert done.returncode == 2 or done.stdout, err
