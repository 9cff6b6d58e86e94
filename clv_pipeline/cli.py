"""``clv``: import history, run a day, run the demo, show status (typer + rich)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clv_pipeline.errors import ClvError

if TYPE_CHECKING:
    from clv_pipeline.config import ClvConfig

app = typer.Typer(
    help="Customer-lifetime-value pipeline: import transactions, run daily partitions, inspect.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

T = TypeVar("T")
ColumnOption = Annotated[
    list[str] | None,
    typer.Option("--column", "-c", help="Rename source=contract, e.g. order_ts=occurred_at."),
]
HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Data home (default: $CLV_HOME or ./data).", show_default=False),
]


def _setup(home: Path | None) -> None:
    """Make --home win over $CLV_HOME for everything imported afterwards (Dagster defs included)."""
    from clv_pipeline.paths import resolve_home

    os.environ["CLV_HOME"] = str(resolve_home(home))


def _config() -> ClvConfig:
    from clv_pipeline.config import ClvConfig

    return ClvConfig.from_env()


def _column_map(config: ClvConfig, column: list[str] | None) -> dict[str, str]:
    """CLV_COLUMN_MAP overridden by the command's --column options."""
    from clv_pipeline.config import parse_mapping

    try:
        return {**config.column_map, **parse_mapping(column or [])}
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _yesterday(timezone: str) -> date:
    from clv_pipeline.operations import yesterday

    return yesterday(timezone)


@app.command("import")
def import_cmd(
    files: Annotated[list[Path], typer.Argument(help="CSV or parquet exports to load.")],
    column: ColumnOption = None,
    home: HomeOption = None,
) -> None:
    """Load historical exports into landing/, one folder per event date (idempotent)."""
    _setup(home)
    from clv_pipeline.sources.landing import import_files

    config = _config()
    mapping = _column_map(config, column)
    try:
        report = import_files(
            files,
            config.layout,
            column_map=mapping,
            timezone=config.timezone,
            naive_timezone=config.naive_timezone,
            on_file=lambda path, rows: console.print(f"  {path}: {rows:,} rows"),
        )
    except (ClvError, ValueError) as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"Imported {report.rows:,} rows from {report.files} file(s) into "
        f"{len(report.days)} day(s) {report.first_day} .. {report.last_day} under "
        f"{config.layout.landing}"
    )
    if report.unparseable_rows:
        err.print(
            f"[yellow]warning:[/] {report.unparseable_rows:,} row(s) had no parseable occurred_at "
            f"and went to {config.layout.quarantine / 'import'}"
        )


def run_day(day: date, *, quiet: bool = False) -> None:
    """Catch up missing/stale ingest days before ``day`` in one run, then run ``day``."""
    from clv_pipeline import operations

    config = _config()
    start = date.fromisoformat(config.start_date)
    before = [d for d in config.layout.landing_days() if d < start]
    if before:
        err.print(
            f"[yellow]warning:[/] {len(before)} landing day(s) before CLV_START_DATE={start} are "
            "ignored; set CLV_START_DATE earlier to include them"
        )
    t0 = time.monotonic()
    with _progress(quiet) as bar:
        task = bar.add_task(f"run {day}", total=None)
        outcome = _guard(
            lambda: operations.run_partition(
                config,
                day,
                progress=lambda msg, done, total: bar.update(
                    task, completed=done, total=total, description=msg
                ),
                announce=lambda msg: console.print(msg),
            )
        )
    console.print(
        f"[green]ok[/] partition {day}: {len(outcome.materialized)} assets materialized in "
        f"{time.monotonic() - t0:.1f}s (run {outcome.run_id})"
    )


def _guard(action: Callable[[], T]) -> T:
    """Run an operation; turn our errors into a clear message and exit code 1."""
    from clv_pipeline.operations import RunFailed

    try:
        return action()
    except RunFailed as exc:
        for step, message in exc.outcome.failures or [("run", "failed before any step ran")]:
            err.print(f"[bold red]failed[/] {step}: {message}")
        raise _fail(
            f"{exc}. Published tables were left as they were. Fix the cause, then "
            f"`clv rerun {exc.outcome.run_id}` (or rerun the same command)."
        ) from None
    except ClvError as exc:
        raise _fail(str(exc)) from None


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet,
    )


@app.command()
def run(
    day: Annotated[
        str | None,
        typer.Option("--date", "-d", help="Partition date YYYY-MM-DD (default: yesterday)."),
    ] = None,
    full_recompute: Annotated[
        bool,
        typer.Option(
            "--full-recompute",
            help="Rebuild customer_state from the whole validated history (CLV_STATE_REBUILD=full).",
        ),
    ] = False,
    home: HomeOption = None,
) -> None:
    """Materialize partition DATE of every asset (after catching up stale ingest days)."""
    _setup(home)
    if full_recompute:
        os.environ["CLV_STATE_REBUILD"] = "full"
    config = _config()
    chosen = _parse_date(day, "--date") if day else _yesterday(config.timezone)
    run_day(chosen)


def _parse_date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _fail(f"{option} {value!r} is not a date (YYYY-MM-DD)") from None


@app.command()
def rerun(
    run_id: Annotated[str | None, typer.Argument(help="A failed run to re-execute.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Rerun every failed partition.")] = False,
    since: Annotated[
        str | None, typer.Option(help="With --failed: only partitions >= DATE.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Re-execute a failed run (from its failed step) or every failed partition."""
    _setup(home)
    from clv_pipeline import operations

    config = _config()
    if run_id and not failed:
        outcome = _guard(lambda: operations.rerun_run(config, run_id))
        console.print(f"[green]ok[/] rerun of {run_id} succeeded (run {outcome.run_id})")
        return
    if not failed:
        raise _fail("give a RUN_ID or --failed")
    days = operations.failed_days(config, since=_parse_date(since, "--since") if since else None)
    if not days:
        console.print("no failed partitions")
        return
    table = Table(title=f"Rerun of {len(days)} failed partition(s)")
    for name in ("partition", "result", "run"):
        table.add_column(name, overflow="fold")
    ok = True
    for day in days:
        try:
            outcome = operations.run_partition(config, day)
            table.add_row(str(day), "[green]ok[/]", outcome.run_id)
        except ClvError as exc:
            ok = False
            table.add_row(
                str(day), f"[red]{exc}[/]", getattr(getattr(exc, "outcome", None), "run_id", "-")
            )
    console.print(table)
    if not ok:
        raise typer.Exit(1)


@app.command()
def backfill(
    start: Annotated[str, typer.Option("--start", help="First partition YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--end", help="Last partition YYYY-MM-DD.")],
    home: HomeOption = None,
) -> None:
    """Materialize partitions START..END: ingest in one run, then each day's snapshot."""
    _setup(home)
    from clv_pipeline import operations

    config = _config()
    first, last = _parse_date(start, "--start"), _parse_date(end, "--end")
    with _progress(quiet=False) as bar:
        task = bar.add_task(f"backfill {first}..{last}", total=(last - first).days + 1)
        results = _guard(
            lambda: operations.backfill(
                config,
                first,
                last,
                progress=lambda day, done, total: bar.update(
                    task, completed=done, description=f"snapshot {day}"
                ),
            )
        )
    table = Table(title=f"Backfill {first}..{last}")
    for name in ("partition", "result", "seconds", "run"):
        table.add_column(name, overflow="fold")
    for r in results:
        table.add_row(
            str(r.day),
            "[green]ok[/]" if r.ok else f"[red]{r.message}[/]",
            f"{r.seconds:.1f}",
            r.run_id,
        )
    console.print(table)
    failed = [r for r in results if not r.ok]
    console.print(f"{len(results) - len(failed)} ok, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


@app.command()
def demo(
    customers: Annotated[int, typer.Option(help="Synthetic customers.")] = 20_000,
    days: Annotated[int, typer.Option(help="Days of history.")] = 730,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    home: HomeOption = None,
) -> None:
    """Generate a synthetic history, import it, run yesterday and print a summary."""
    _setup(home)
    from clv_pipeline.demo import generate_history
    from clv_pipeline.publish.files import write_parquet_atomic
    from clv_pipeline.sources.landing import import_files

    config = _config()
    layout = config.layout
    end = _yesterday(config.timezone)
    start = date.fromisoformat(config.start_date)
    if end - timedelta(days=days - 1) < start:
        os.environ["CLV_START_DATE"] = (end - timedelta(days=days - 1)).isoformat()
        config = _config()
    console.print(f"Generating {customers:,} customers over {days} days ending {end} (seed {seed})")
    history = generate_history(n_customers=customers, days=days, end=end, seed=seed)
    export = write_parquet_atomic(history, layout.home / "demo" / "transactions.parquet")
    report = import_files(
        [export], layout, timezone=config.timezone, naive_timezone=config.naive_timezone
    )
    console.print(f"Imported {report.rows:,} transactions into {len(report.days)} landing days")
    run_day(end)
    _summary(end)


def _summary(as_of: date) -> None:
    import polars as pl

    from clv_pipeline.publish.warehouse import read_published

    config = _config()
    layout = config.layout
    features = read_published(layout, "customer_features", as_of)
    clv = read_published(layout, "customer_clv", as_of)
    segments = read_published(layout, "customer_segments", as_of)
    if features is None or clv is None or segments is None:
        raise _fail(f"snapshot {as_of} is not published")
    table = Table(title=f"Snapshot {as_of}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("customers", f"{features.height:,}")
    table.add_row("repeat customers", f"{(features['frequency'] > 0).sum():,}")
    table.add_row("net revenue to date", f"{features['total_revenue'].sum():,.2f}")
    model = clv["model"].drop_nulls()
    table.add_row("model", str(model[0]) if len(model) else "none (data insufficient)")
    if len(model):
        table.add_row("mean P(alive)", f"{clv.select(pl.col('p_alive').mean()).item():.3f}")
        table.add_row(
            f"predicted CLV, next {float(clv['horizon_days'][0]):.0f} days",
            f"{clv['predicted_clv'].sum():,.2f}",
        )
    table.add_row("mean formula CLV", f"{clv.select(pl.col('formula_clv').mean()).item():,.2f}")
    console.print(table)
    top = segments.group_by("rfm_segment").len().sort("len", descending=True).head(6)
    seg = Table(title="Top segments")
    seg.add_column("segment")
    seg.add_column("customers", justify="right")
    for name, count in top.iter_rows():
        seg.add_row(name, f"{count:,}")
    console.print(seg)
    console.print(f"Parquet tables: {layout.warehouse}/<table>/as_of={as_of}/part-0.parquet")
    example = "SELECT * FROM customer_clv_latest"
    console.print(f"DuckDB catalog: {layout.catalog}  (e.g. {example})")
    from clv_pipeline.report.html import report_paths

    report, _ = report_paths(layout.warehouse, as_of)
    if report.exists():
        console.print(f"HTML report: {report}  (clv report --open)")


@app.command()
def status(
    asset: Annotated[str | None, typer.Option("--asset", help="Only this asset.")] = None,
    since: Annotated[str | None, typer.Option(help="Only partitions >= DATE.")] = None,
    home: HomeOption = None,
) -> None:
    """Per asset: materialized, failed (with error and run id), missing and stale partitions."""
    _setup(home)
    from clv_pipeline import runner
    from clv_pipeline.status import partition_status

    config = _config()
    first = _parse_date(since, "--since") if since else None
    rows = _guard(
        lambda: partition_status(
            runner.get_instance(config.layout), config.layout, asset=asset, since=first
        )
    )
    table = Table(title=f"Partitions under {config.layout.home}")
    for name in ("asset", "materialized", "latest", "failed", "missing", "stale"):
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(
            row.asset,
            str(row.materialized),
            str(row.latest or "-"),
            _ranges(row.failed) or "-",
            _ranges(row.missing) or "-",
            _ranges(row.stale) or "-",
        )
    console.print(table)
    errors = [(row.asset, day, *row.errors[day]) for row in rows for day in sorted(row.errors)]
    if errors:
        detail = Table(title="Failures (latest failed run per partition)")
        for name in ("asset", "partition", "run", "error"):
            detail.add_column(name, overflow="fold")
        for name, day, run_id, error in errors[:30]:
            detail.add_row(name, str(day), run_id, error)
        console.print(detail)
        console.print("Rerun them with `clv rerun --failed` or one run with `clv rerun RUN_ID`.")


def _number(value: object) -> str:
    """1,234 for counts, 0.2532 for shares, 67.18 for money; '-' for missing."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1 else f"{value:,.2f}"
    return str(value)


def _ranges(days: list[date]) -> str:
    """Compact day list: 2024-01-01..2024-01-05, 2024-02-01."""
    out: list[str] = []
    for day in sorted(days):
        if out and out[-1].split("..")[-1] == (day - timedelta(days=1)).isoformat():
            out[-1] = out[-1].split("..")[0] + ".." + day.isoformat()
        else:
            out.append(day.isoformat())
    return ", ".join(out[:5]) + (f" (+{len(out) - 5} more)" if len(out) > 5 else "")


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="A CSV or parquet file as it would be delivered.")],
    column: ColumnOption = None,
    limit: Annotated[int, typer.Option(help="Rejected rows to list.")] = 20,
    home: HomeOption = None,
) -> None:
    """Run the validation suite on FILE (no pipeline run) and print its failures."""
    _setup(home)
    from clv_pipeline.pipeline import partition_failure, validate_file

    config = _config()
    mapping = _column_map(config, column)
    if not file.is_file():
        raise _fail(f"{file}: no such file")
    try:
        result = validate_file(config, file, column_map=mapping)
    except ClvError as exc:
        raise _fail(str(exc)) from None
    rules = config.validation_rules()
    days = Table(title=f"{file.name}: rows per day")
    for name in ("day", "rows", "valid", "quarantined", "re-deliveries dropped", "verdict"):
        days.add_column(name, justify="left" if name in {"day", "verdict"} else "right")
    failed = False
    rejected = []
    for day, day_result in sorted(result.days.items()):
        stats = day_result.stats
        problem = partition_failure(day_result, rules, quarantine_path="(not written)")
        failed = failed or problem is not None or stats["rows_quarantined"] > 0
        verdict = (
            "partition fails"
            if problem
            else ("ok" if not stats["rows_quarantined"] else "rows quarantined")
        )
        days.add_row(
            str(day),
            f"{stats['rows_in']:,}",
            f"{stats['rows_valid']:,}",
            f"{stats['rows_quarantined']:,}",
            f"{stats['duplicates_dropped']:,}",
            verdict,
        )
        rejected.append(day_result.quarantine)
    console.print(days)
    reasons = Table(title="Failed expectations (Great Expectations suite)")
    for name in ("expectation", "column", "unexpected", "examples"):
        reasons.add_column(name, overflow="fold")
    for item in result.suite.summary():
        if not item["success"]:
            reasons.add_row(
                item["expectation"], item["column"], str(item["unexpected"]), item["examples"]
            )
    if reasons.row_count:
        console.print(reasons)
    rows = [r for frame in rejected for r in frame.head(limit).iter_rows(named=True)][:limit]
    if rows:
        listing = Table(title=f"First {len(rows)} rejected rows")
        for name in ("row", "transaction_id", "occurred_at", "amount", "reason"):
            listing.add_column(name, overflow="fold")
        for row in rows:
            listing.add_row(
                str(row["_source_row"]),
                str(row["transaction_id"]),
                str(row["occurred_at"]),
                str(row["amount"]),
                row["reason"],
            )
        console.print(listing)
    if failed:
        raise typer.Exit(1)
    console.print("[green]all rows valid[/]")


@app.command("report")
def report_cmd(
    day: Annotated[
        str | None, typer.Option("--date", "-d", help="Snapshot date (default: the latest).")
    ] = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open it in a browser.")] = False,
    home: HomeOption = None,
) -> None:
    """Print (and optionally open) the HTML report of a snapshot, with its headline numbers."""
    _setup(home)
    from clv_pipeline.publish.catalog import complete_dates
    from clv_pipeline.report.html import report_paths

    config = _config()
    dates = complete_dates(config.layout)
    if day is None and not dates:
        raise _fail("no complete snapshot yet; run `clv run` or `clv demo` first")
    chosen = _parse_date(day, "--date") if day else dates[-1]
    path, _ = report_paths(config.layout.warehouse, chosen)
    if not path.exists():
        from clv_pipeline import pipeline

        path = _guard(lambda: pipeline.build_report(config, chosen)).path
    from clv_pipeline.publish.warehouse import read_published

    kpis = read_published(config.layout, "kpis", chosen)
    if kpis is not None and kpis.height:
        row = kpis.row(0, named=True)
        table = Table(title=f"Headline {chosen}")
        table.add_column("kpi")
        table.add_column("value", justify="right")
        for name in (
            "customers",
            "active_customers",
            "retention_rate",
            "churn_rate",
            "arpu",
            "avg_predicted_clv",
            "median_predicted_clv",
            "top_tier_revenue_share",
        ):
            value = row.get(name)
            table.add_row(name, _number(value))
        console.print(table)
    console.print(f"report: {path}")
    if open_browser:
        import webbrowser

        webbrowser.open(path.as_uri())


@app.command()
def docs(
    output: Annotated[Path, typer.Option(help="Where to write the data dictionary.")] = Path(
        "docs/data_contract.md"
    ),
) -> None:
    """Regenerate the data contract document from clv_pipeline/schema.py."""
    from clv_pipeline.schema import render_markdown

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_markdown())
    console.print(f"wrote {output}")


@app.command()
def catalog(home: HomeOption = None) -> None:
    """Re-create the DuckDB views (e.g. after moving the data home)."""
    _setup(home)
    from clv_pipeline.publish.catalog import refresh_views

    try:
        refresh_views(_config().layout)
    except ClvError as exc:
        raise _fail(str(exc)) from None
    console.print(f"refreshed {_config().layout.catalog}")


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except ClvError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover - `python -m clv_pipeline.cli`
    main()
