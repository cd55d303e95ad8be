"""The reliability settings themselves: reduced inside `make test`, full under --full."""

from __future__ import annotations


def test_scale_picks_reduced_or_full(scale, request) -> None:
    assert scale.full == bool(request.config.getoption("--full"))
    assert scale.pick(1, 2) == (2 if scale.full else 1)
