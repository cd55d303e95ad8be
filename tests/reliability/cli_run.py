"""Run the real ``vitrieve`` entry point in-process (``retrieval.cli.main``, with its error
handling), capturing exit code, stdout and stderr; any other exception escapes to the test."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> CliResult:
    """``vitrieve ARGS`` as a user runs it; a traceback (an uncaught exception) fails the test."""
    from retrieval.cli import main

    capsys.readouterr()  # drop anything printed before
    saved = sys.argv
    sys.argv = ["vitrieve", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)


def assert_clean_outcome(result: CliResult) -> None:
    """Success, a one-line ``error: ...`` (exit 1), or a usage error (exit 2); no traceback."""
    assert "Traceback" not in result.out + result.err, result.err[-2000:]
    if result.code == 1:
        lines = [line for line in result.err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.err[-2000:]
    else:
        assert result.code in (0, 2), (result.code, result.err[-2000:])
