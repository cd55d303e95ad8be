"""The compiled variants (tests named ``test_compiled_*``) need what Triton needs to build its
kernels: a C compiler and Python's headers. Without them they are skipped with the reason
``make gpu-check`` prints in one line (``bench/gpu.py --toolchain``), not failed."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    compiled = [
        item
        for item in items
        if item.name.startswith("test_compiled") and item.path.is_relative_to(HERE)
    ]
    if not compiled:
        return
    from gpu import compile_toolchain  # bench/ is on the test import path

    missing = compile_toolchain()
    for item in compiled if missing else ():
        item.add_marker(pytest.mark.skip(reason=f"compiled variants skipped: {missing}"))
