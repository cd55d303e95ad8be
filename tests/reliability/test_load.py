"""Load on loopback (bench/load.py, reduced): concurrent clients against the engine and,
separately, against a running ``vitrieve ui``; zero errors, latencies recorded.

Reduced (``make test``): 3-6 s per target; full (``make reliability``): 60 s. The p99/p50
target (under 5) is recorded and warned about, not asserted: on a shared 2-core machine the
tail measures the neighbours as much as us (docs/reliability.md says what was measured).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict
from pathlib import Path

import load  # bench/load.py and bench/load_browser.py: scripts on the test path
import pytest
from load_browser import CHROMIUM, browser_load

P99_OVER_P50_TARGET = 5.0


def _check(report, figures_of: dict) -> None:
    figures_of[report.target] = {k: v for k, v in asdict(report).items() if k != "target"}
    assert report.requests > 0, report.line()
    assert report.errors == 0, (report.line(), report.error_samples)
    if report.p99_over_p50 > P99_OVER_P50_TARGET:
        warnings.warn(f"p99 over {P99_OVER_P50_TARGET} × p50: {report.line()}", stacklevel=2)


@pytest.mark.timeout(300)
def test_engine_under_concurrent_searches(demo_library: Path, scale, figures) -> None:
    clients = int(scale.pick(4, 8))
    report = load.engine_load(demo_library, clients, float(scale.pick(6, 60)), threads=1)
    recorded: dict = {}
    _check(report, recorded)
    assert report.throughput_per_s > 1, report.line()
    figures(recorded["engine"])


@pytest.mark.timeout(600)
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
def test_ui_under_concurrent_sessions(ui_server: str, scale, figures) -> None:
    """HTTP clients on the health check and page, then browser sessions doing real searches
    (``ui_server``: tests/reliability/conftest.py)."""
    seconds = float(scale.pick(6, 60))
    recorded: dict = {}
    http = load.http_load(ui_server, int(scale.pick(4, 8)), scale.pick(3, 60))
    browser = browser_load(ui_server, int(scale.pick(2, 4)), seconds)
    _check(http, recorded)
    _check(browser, recorded)
    assert browser.requests >= 2, browser.line()
    figures(recorded)
