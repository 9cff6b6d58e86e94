"""Shared fixtures for the model tests (parameter sets in days)."""

from __future__ import annotations

import pytest

# CDNOW estimates (FHL 2005 / Fader & Hardie 2005) converted from weeks to days.
BG_PARAMS = {"r": 0.24, "alpha": 4.41 * 7, "a": 0.79, "b": 2.43}
PARETO_PARAMS = {"r": 0.55, "alpha": 10.58 * 7, "s": 0.61, "beta": 11.67 * 7}
GG_PARAMS = {"p": 6.25, "q": 3.74, "v": 15.44}


@pytest.fixture
def bg_params() -> dict[str, float]:
    return dict(BG_PARAMS)


@pytest.fixture
def pareto_params() -> dict[str, float]:
    return dict(PARETO_PARAMS)


@pytest.fixture
def gg_params() -> dict[str, float]:
    return dict(GG_PARAMS)
