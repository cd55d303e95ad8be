"""Reliability suite settings: a reduced form inside `make test`, the full form with
`make reliability` (``pytest tests/reliability --full``).

Every test scales its work with the ``scale`` fixture and records its figures with the
``figures`` fixture; the full run writes them to ``docs/reliability-figures.json``, which
``docs/reliability.md`` quotes (regenerate with ``make reliability``).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURES_FILE = ROOT / "docs" / "reliability-figures.json"


@dataclass(frozen=True)
class Scale:
    """How much work each reliability test does: `full` for make reliability."""

    full: bool

    def pick(self, reduced: int | float, full: int | float) -> int | float:
        """The reduced value inside `make test`, the full one under `make reliability`."""
        return full if self.full else reduced


@pytest.fixture(scope="session")
def scale(request: pytest.FixtureRequest) -> Scale:
    return Scale(full=bool(request.config.getoption("--full")))


_FIGURES: dict[str, dict] = {}


@pytest.fixture
def figures(request: pytest.FixtureRequest, scale: Scale):
    """Call ``figures(dict)`` to record a test's measured figures under the test's name."""

    def record(values: dict) -> None:
        entry = {"full": scale.full, "measured_at": time.strftime("%Y-%m-%d %H:%M"), **values}
        _FIGURES[request.node.nodeid.split("::", 1)[-1]] = entry

    return record


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Merge this run's figures into the figures file (full runs only: the reduced form
    inside `make test` must never dirty the checkout)."""
    if not _FIGURES or not session.config.getoption("--full"):
        return
    old = json.loads(FIGURES_FILE.read_text()) if FIGURES_FILE.exists() else {}
    old.update(_FIGURES)
    old["_machine"] = {"platform": platform.platform(), "python": platform.python_version()}
    FIGURES_FILE.write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="session")
def ui_server(demo_library: Path, tmp_path_factory: pytest.TempPathFactory):
    """A running ``vitrieve ui`` over the demo library on a free loopback port, started once
    for the HTTP security and load tests (tests/reliability/uiserver.py)."""
    from uiserver import running_ui

    with running_ui(demo_library, tmp_path_factory.mktemp("ui")) as url:
        yield url
