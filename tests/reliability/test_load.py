"""Load on loopback (bench/load.py, reduced): concurrent clients against the engine and,
separately, against a running ``vitrieve ui``; zero errors, latencies recorded.

Reduced (``make test``): 3-8 s per target; full (``make reliability``): 60 s. The p99/p50
target (under 5) is recorded and warned about, not asserted: on a shared 2-core machine the
tail measures the neighbours as much as us (docs/reliability.md says what was measured).
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
P99_OVER_P50_TARGET = 5.0


def _bench():
    spec = importlib.util.spec_from_file_location("bench_load", ROOT / "bench" / "load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


load = _bench()


def _check(report, figures_of: dict) -> None:
    figures_of[report.target] = {k: v for k, v in asdict(report).items() if k != "target"}
    assert report.requests > 0, report.line()
    assert report.errors == 0, (report.line(), report.error_samples)
    if report.p99_over_p50 > P99_OVER_P50_TARGET:
        warnings.warn(f"p99 over {P99_OVER_P50_TARGET} × p50: {report.line()}", stacklevel=2)


@pytest.mark.timeout(300)
def test_engine_under_concurrent_searches(demo_library: Path, scale, figures) -> None:
    clients = int(scale.pick(4, 8))
    report = load.engine_load(demo_library, clients, float(scale.pick(8, 60)), threads=1)
    recorded: dict = {}
    _check(report, recorded)
    assert report.throughput_per_s > 1, report.line()
    figures(recorded["engine"])


@pytest.mark.timeout(600)
@pytest.mark.skipif(not load.CHROMIUM.exists(), reason="needs Debian's chromium")
def test_ui_under_concurrent_sessions(demo_library: Path, scale, figures) -> None:
    """HTTP clients on the health check and page, then browser sessions doing real searches."""
    seconds = float(scale.pick(8, 60))
    recorded: dict = {}
    with load.ui_server(demo_library, threads=1) as url:
        http = load.http_load(url, int(scale.pick(4, 8)), scale.pick(3, 60))
        browser = load.browser_load(url, int(scale.pick(2, 4)), seconds)
    _check(http, recorded)
    _check(browser, recorded)
    assert browser.requests >= 2, browser.line()
    figures(recorded)
