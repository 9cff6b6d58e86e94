"""The HTML report of a real data home, opened in headless Chromium (Debian package `chromium`).

Builds a data home (demo history -> landing -> one pipeline run), runs the backtest, renders and
publishes the report, then loads it with networking effectively disabled: the page must finish
with no JavaScript error, no blocked external load (CSP) and an SVG in every chart div. A
screenshot is written next to the report (and copied to ``$CLV_REPORT_SCREENSHOT_DIR`` if set).
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

from clv_pipeline.config import load_config
from clv_pipeline.demo import generate_history
from clv_pipeline.paths import Layout
from clv_pipeline.publish.warehouse import read_published, scan_published
from clv_pipeline.report.backtest import run_backtest
from clv_pipeline.report.html import CHART_IDS, publish_report, render_report
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
    n_customers: int


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    root = tmp_path_factory.mktemp("report")
    home = root / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLV_HOME", str(home))
        mp.delenv("DAGSTER_HOME", raising=False)
        layout = Layout(home)
        history = root / "history.parquet"
        generate_history(n_customers=600, days=300, end=AS_OF, seed=1).write_parquet(history)
        import_files([history], layout)
        operations.run_partition(load_config(home), AS_OF)

        bt = run_backtest(scan_published(layout, "validated_transactions", upto=AS_OF), as_of=AS_OF)
        html = render_report(
            as_of=AS_OF,
            kpis_history=scan_published(layout, "kpis").collect(),
            clv=read_published(layout, "customer_clv", AS_OF),
            segments=read_published(layout, "customer_segments", AS_OF),
            churn=read_published(layout, "customer_churn", AS_OF),
            cohorts=read_published(layout, "cohorts", AS_OF),
            model_params=read_published(layout, "model_params", AS_OF),
            backtest=bt.metrics,
            deciles=bt.deciles,
            calibration=bt.calibration,
            messages=bt.messages,
        )
        dated, latest = publish_report(html, layout.warehouse, AS_OF)
        assert latest is not None
        yield Report(layout, dated, latest, int(bt.metrics["n_customers"][0]))


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


def test_page_renders_every_chart_without_errors(report: Report) -> None:
    done = chromium("--dump-dom", report.latest.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    status = re.search(r'<body[^>]*data-report-status="(\w+)"', dom)
    errors = re.search(r'<pre id="report-errors">(.*?)</pre>', dom, re.DOTALL)
    assert errors is not None
    assert errors.group(1).strip() == "", errors.group(1)
    assert status is not None and status.group(1) == "ok"
    blocks = chart_blocks(dom)
    assert list(blocks) == [c for c in blocks if c in CHART_IDS]
    assert set(blocks) == set(CHART_IDS)
    for chart_id, block in blocks.items():
        assert 'data-rendered="true"' in block.split(">", 1)[0], chart_id
        assert block.count("<svg") >= 1, chart_id
        # plotly drew actual marks, not only an empty canvas
        assert re.search(r'class="(?:point|trace|hm|bars|scatterlayer)', block), chart_id


def test_screenshot(report: Report) -> None:
    shot = report.path.parent / "report.png"
    done = chromium("--window-size=1400,5200", f"--screenshot={shot}", report.latest.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000
    target = os.environ.get("CLV_REPORT_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / "report.png")
