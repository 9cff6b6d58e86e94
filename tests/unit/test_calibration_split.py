"""The backtest's calibration/holdout split, computed once per day and read back by the other
step (model_backtest and the holdout model selection of customer_clv score the same split)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from clv_pipeline import pipeline
from clv_pipeline.config import ClvConfig
from clv_pipeline.publish.warehouse import publish_table
from clv_pipeline.report.backtest import calibration_holdout, in_sample

from .test_window_totals import AS_OF, DAYS, _day, config  # noqa: F401 - the fixture

HOLDOUT = 60


def _direct(config: ClvConfig, share: float, holdout: int = HOLDOUT) -> pl.DataFrame:  # noqa: F811
    history = pipeline._history(config, AS_OF)
    if share < 1:
        history = history.filter(in_sample(share))
    return calibration_holdout(history, as_of=AS_OF, holdout_days=holdout).collect()


@pytest.fixture
def split_config(config: ClvConfig) -> ClvConfig:  # noqa: F811
    return config.with_overrides({"scale.backtest_holdout_days": HOLDOUT})


@pytest.mark.parametrize("share", [1.0, 0.5])
def test_split_is_stored_once_and_read_back(
    split_config: ClvConfig, share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = pipeline.calibration_split(split_config, AS_OF, share=share)
    assert first.height > 0
    assert first.equals(_direct(split_config, share))

    def no_history(*_: object) -> pl.LazyFrame:
        raise AssertionError("the stored split should have been read")

    monkeypatch.setattr(pipeline, "_history", no_history)
    assert pipeline.calibration_split(split_config, AS_OF, share=share).equals(first)


def test_split_is_recomputed_when_what_it_summarises_changed(split_config: ClvConfig) -> None:
    before = pipeline.calibration_split(split_config, AS_OF, share=1.0)
    # another share, another holdout length: not the stored split
    half = pipeline.calibration_split(split_config, AS_OF, share=0.5)
    assert half.equals(_direct(split_config, 0.5)) and not half.equals(before)
    longer = split_config.with_overrides({"scale.backtest_holdout_days": HOLDOUT + 30})
    assert pipeline.calibration_split(longer, AS_OF, share=1.0).equals(
        _direct(longer, 1.0, HOLDOUT + 30)
    )
    # a validated day republished with a row fewer (its digest changes)
    day = DAYS[0]
    publish_table(split_config.layout, "validated_transactions", _day(day, 0).head(20), day=day)
    after = pipeline.calibration_split(split_config, AS_OF, share=1.0)
    assert after.equals(_direct(split_config, 1.0)) and not after.equals(before)


def test_older_days_splits_are_removed(split_config: ClvConfig) -> None:
    earlier = AS_OF - timedelta(days=1)
    pipeline.calibration_split(split_config, earlier, share=1.0)
    folder = split_config.layout.work / "calibration_split"
    assert [p.name for p in folder.iterdir()] == [f"as_of={earlier}"]
    pipeline.calibration_split(split_config, AS_OF, share=1.0)
    assert [p.name for p in folder.iterdir()] == [f"as_of={AS_OF}"]
