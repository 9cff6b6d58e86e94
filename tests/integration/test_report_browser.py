"""The HTML report of a real data home, opened in headless Chromium (Debian package `chromium`).

Builds a data home (demo history -> landing -> one pipeline run with ``CLV_CURRENCY=EUR``): the
run publishes the daily report, which loads the shared ``reports/_assets/plotly-<v>.min.js`` by a
relative path; ``clv report --self-contained`` writes the standalone copy. Each page is loaded
from disk (``file://``) with networking effectively disabled: plotly.js must have run (its
version on ``<body data-plotly>``), with no JavaScript error, no blocked load (CSP) and an SVG in
every chart div. A daily page copied away from ``_assets/`` must say what is wrong. A screenshot
is written next to the report (and copied to ``$CLV_REPORT_SCREENSHOT_DIR`` if set).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs, get_plotlyjs_version
from typer.testing import CliRunner

from clv_pipeline.cli import app
from clv_pipeline.config import load_config
from clv_pipeline.demo import generate_history
from clv_pipeline.paths import Layout
from clv_pipeline.publish.warehouse import read_published
from clv_pipeline.report.html import (
    CHART_IDS,
    PLOTLY_HREF,
    plotly_asset_path,
    report_paths,
    self_contained_path,
)
from clv_pipeline.runs import operations
from clv_pipeline.sources.landing import import_files

CHROMIUM = Path("/usr/bin/chromium")
AS_OF = date(2025, 6, 30)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--virtual-time-budget=10000",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="headless browser missing: /usr/bin/chromium (Debian package `chromium`; "
    ".ci/run installs it)",
)


@dataclass(frozen=True)
class Report:
    layout: Layout
    path: Path
    latest: Path
    standalone: Path
    n_customers: int


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    root = tmp_path_factory.mktemp("report")
    home = root / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLV_HOME", str(home))
        mp.setenv("CLV_CURRENCY", "EUR")
        mp.delenv("DAGSTER_HOME", raising=False)
        layout = Layout(home)
        history = root / "history.parquet"
        generate_history(n_customers=600, days=300, end=AS_OF, seed=1).write_parquet(history)
        import_files([history], layout)
        operations.run_partition(load_config(home), AS_OF)  # publishes the daily report
        done = CliRunner().invoke(
            app, ["report", "--self-contained", "--date", AS_OF.isoformat(), "--home", str(home)]
        )
        assert done.exit_code == 0, done.output
        # the selected model in plain words, as on the page (issue 19, item 6)
        assert "What the model (" in done.output and "new-customer CLV" in done.output
        assert "EUR" in done.output
        backtest = read_published(layout, "model_backtest", AS_OF)
        assert backtest is not None
        dated, latest = report_paths(layout.warehouse, AS_OF)
        yield Report(
            layout,
            dated,
            latest,
            self_contained_path(layout.warehouse, AS_OF),
            int(backtest["n_customers"][0]),
        )


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="clv-chromium-") as profile:
        return subprocess.run(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
            env={**os.environ, "HOME": profile},
        )


def chart_blocks(dom: str) -> dict[str, str]:
    """Each chart div's opening tag plus its content up to the next chart div."""
    starts = [(m.start(), m.group(1)) for m in re.finditer(r'<div class="chart" id="([^"]+)"', dom)]
    ends = [s for s, _ in starts[1:]] + [len(dom)]
    return {cid: dom[s:e] for (s, cid), e in zip(starts, ends, strict=True)}


def test_report_is_published(report: Report) -> None:
    assert report.path == (
        report.layout.warehouse / "reports" / f"as_of={AS_OF.isoformat()}" / "report.html"
    )
    assert report.latest == report.layout.warehouse / "reports" / "latest" / "report.html"
    assert report.path.read_bytes() == report.latest.read_bytes()
    assert report.n_customers > 100
    asset = plotly_asset_path(report.layout.warehouse)
    assert asset.read_text(encoding="utf-8") == get_plotlyjs()
    page = report.latest.read_text(encoding="utf-8")
    assert f'src="{PLOTLY_HREF}"' in page and 'data-currency="EUR"' in page
    # daily: the data only (plotly.js is shared); standalone: plotly.js inline, nothing loaded
    assert report.path.stat().st_size < 300_000
    standalone = report.standalone.read_text(encoding="utf-8")
    assert report.standalone.stat().st_size > 4_000_000
    assert get_plotlyjs() in standalone and PLOTLY_HREF not in standalone
    assert 'data-currency="EUR"' in standalone


def load(page: Path) -> str:
    """The DOM of ``page`` after its scripts ran (opened from disk, no network)."""
    done = chromium("--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("which", ["dated", "latest", "standalone"])
def test_page_renders_every_chart_without_errors(report: Report, which: str) -> None:
    page = {"dated": report.path, "latest": report.latest, "standalone": report.standalone}[which]
    dom = load(page)
    status = re.search(r'<body[^>]*data-report-status="(\w+)"', dom)
    errors = re.search(r'<pre id="report-errors">(.*?)</pre>', dom, re.DOTALL)
    assert errors is not None
    assert errors.group(1).strip() == "", errors.group(1)
    assert status is not None and status.group(1) == "ok"
    # plotly.js loaded (from _assets/ or inline) and ran
    plotly = re.search(r'<body[^>]*data-plotly="([^"]+)"', dom)
    assert plotly is not None and plotly.group(1) == get_plotlyjs_version()
    blocks = chart_blocks(dom)
    assert list(blocks) == [c for c in blocks if c in CHART_IDS]
    assert set(blocks) == set(CHART_IDS)
    for chart_id, block in blocks.items():
        assert 'data-rendered="true"' in block.split(">", 1)[0], chart_id
        assert block.count("<svg") >= 1, chart_id
        # plotly drew actual marks, not only an empty canvas
        assert re.search(r'class="(?:point|trace|hm|bars|scatterlayer)', block), chart_id
    # the currency is on the drawn money axes too
    assert ">EUR<" in blocks["chart-kpi-trend"] and "(EUR)" in blocks["chart-clv-distribution"]


def test_daily_page_away_from_its_assets_says_what_to_do(report: Report, tmp_path: Path) -> None:
    alone = tmp_path / "copied" / "report.html"
    alone.parent.mkdir()
    shutil.copy(report.latest, alone)
    dom = load(alone)
    status = re.search(r'<body[^>]*data-report-status="(\w+)"', dom)
    assert status is not None and status.group(1) == "errors"
    errors = re.search(r'<pre id="report-errors">(.*?)</pre>', dom, re.DOTALL)
    assert errors is not None
    assert "plotly.js did not load" in errors.group(1)
    assert "clv report --self-contained" in errors.group(1)


def test_screenshot(report: Report) -> None:
    shot = report.path.parent / "report.png"
    done = chromium("--window-size=1400,7000", f"--screenshot={shot}", report.latest.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000
    target = os.environ.get("CLV_REPORT_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / "report.png")
