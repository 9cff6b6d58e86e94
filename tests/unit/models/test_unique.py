"""The hashed unique of large arrays (:func:`unique_inverse`, :meth:`UniqueValues.of`) gives
exactly ``np.unique``'s arrays; the fits and predictions depend on it to the bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from clv_pipeline.models import data
from clv_pipeline.models.data import Patterns, UniqueValues, unique_inverse

INTS = hnp.arrays(
    np.int64,
    st.integers(0, 300),
    elements=st.one_of(st.integers(-5, 5), st.integers(-(2**62), 2**62)),
)
FLOATS = hnp.arrays(
    np.float64,
    st.integers(0, 300),
    elements=st.one_of(
        st.sampled_from([0.0, -0.0, 0.5, 1e-300, 5e-324, 1e300, 3.0]),
        st.floats(-1e6, 1e6, allow_nan=False),
        st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
    ),
)


@pytest.fixture(autouse=True)
def _hash_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "HASH_MIN_SIZE", 1)  # the polars path on small arrays too


@settings(max_examples=150, deadline=None)
@given(INTS)
def test_unique_inverse_is_np_unique(key: np.ndarray) -> None:
    unique, inverse = unique_inverse(key)
    expected, expected_inverse = np.unique(key, return_inverse=True)
    assert unique.dtype == np.int64 and np.array_equal(unique, expected)
    assert np.array_equal(inverse, expected_inverse)


@settings(max_examples=150, deadline=None)
@given(FLOATS)
def test_unique_values_of_floats_is_np_unique(values: np.ndarray) -> None:
    got = UniqueValues.of(values)
    expected, expected_inverse = np.unique(values, return_inverse=True)
    assert np.array_equal(got.values, expected) and np.array_equal(got.inverse, expected_inverse)
    if not np.signbit(values).any():  # the same bits, not only equal values (whole numbers
        # counted by np.bincount have always come back as +0.0 for a -0.0)
        assert got.values.tobytes() == expected.astype(np.float64).tobytes()


def test_patterns_are_the_same_hashed_or_sorted(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    x = rng.integers(0, 30, n).astype(float)
    T = rng.integers(0, 700, n).astype(float)
    tx = np.where(x > 0, np.floor(rng.random(n) * T), 0.0)
    for days in (1.0, 0.25):  # whole days (one packed key) and fractions (per-column unique)
        hashed = Patterns.from_arrays(x, tx * days, T * days)
        monkeypatch.setattr(data, "HASH_MIN_SIZE", 1 << 62)
        sorted_ = Patterns.from_arrays(x, tx * days, T * days)
        monkeypatch.setattr(data, "HASH_MIN_SIZE", 1)
        for name in ("x", "tx", "T", "weights", "inverse"):
            assert np.array_equal(getattr(hashed, name), getattr(sorted_, name)), name
