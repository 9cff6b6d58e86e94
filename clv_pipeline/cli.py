"""``clv``: import history, run a day, run the demo, show status (typer + rich)."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import sys
import time
import webbrowser
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer._click import Context as ClickContext
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

from clv_pipeline.config import (
    SETTINGS,
    ClvConfig,
    ConfigError,
    effective_settings,
    format_value,
    load_config,
    parse_mapping,
    parse_text,
    render_settings_markdown,
    save_settings,
    yesterday,
)
from clv_pipeline.demo import generate_history
from clv_pipeline.errors import ClvError
from clv_pipeline.failures import explain_text, report, write_log
from clv_pipeline.redact import redact
from clv_pipeline.schema import render_markdown
from clv_pipeline.sources.landing import ImportReport, import_files
from clv_pipeline.sources.shape import guess_date_format

if TYPE_CHECKING:
    from clv_pipeline.runs.operations import RunFailed
    from clv_pipeline.runs.recovery import Orphan

# Modules that import Dagster, scipy or DuckDB (seconds) are imported by the commands that use
# them: `clv import`, `clv config`, `clv init` and `--help` start in well under a second.


class _OneLineFailures(TyperGroup):
    """Every command's unexpected error ends in one line (path, cause, fix, log file): the
    traceback goes to the log (:func:`clv_pipeline.failures.report`), never to the terminal."""

    def invoke(self, ctx: ClickContext) -> Any:
        command = " ".join([*ctx._protected_args, *ctx.args])  # noqa: SLF001 - the command line
        _state.clear()
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, ClickException):
            raise
        except Exception as exc:  # noqa: BLE001 - the one top-level handler
            home, buffer = _state.get("home"), _state.get("captured")
            line, code = report(
                exc,
                home=home if isinstance(home, Path) else None,
                command=command,
                captured=buffer.getvalue() if isinstance(buffer, io.StringIO) else "",
            )
            raise _fail_line(line, code) from None


_state: dict[str, object] = {}  # the running command's data home and captured Dagster output

app = typer.Typer(
    cls=_OneLineFailures,
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
DelimiterOption = Annotated[
    str | None, typer.Option("--delimiter", help="CSV field separator, e.g. ';' or '\\t'.")
]
DecimalCommaOption = Annotated[
    bool | None,
    typer.Option(
        "--decimal-comma/--decimal-point", help="Numbers written 1.234,56.", show_default=False
    ),
]
EncodingOption = Annotated[
    str | None, typer.Option("--encoding", help="CSV text encoding, e.g. latin-1, cp1252.")
]
DateFormatOption = Annotated[
    str | None,
    typer.Option(
        "--date-format",
        help="strftime format of occurred_at, e.g. '%d-%m-%Y %H:%M'; 'unix' for epoch seconds.",
    ),
]
DayFirstOption = Annotated[
    bool | None,
    typer.Option(
        "--day-first/--no-day-first",
        help="Dates written day first (31/12/2010).",
        show_default=False,
    ),
]
AmountOption = Annotated[
    str | None,
    typer.Option(
        "--amount", help="amount as an expression of columns, e.g. 'Quantity * UnitPrice'."
    ),
]
OrderIdOption = Annotated[
    str | None,
    typer.Option("--order-id", help="Order-line export: the column naming each line's order."),
]
HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Data home (default: $CLV_HOME or ./data).", show_default=False),
]
CLOSED_HISTORY_DAYS = 30  # an import ending longer ago than this is a closed history


def _config(home: Path | None, **overrides: object) -> ClvConfig:
    """The data home's settings: flags (``overrides``) > CLV_* env > clv.toml > defaults."""
    try:
        config = load_config(home, overrides=overrides)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    _state["home"] = config.home
    _state["orphans"] = _reap(config)
    return config


def _reap(config: ClvConfig) -> list[Orphan]:
    """Mark failed the runs whose process died (lock holder gone) before any command runs."""
    if not config.layout.dagster.exists():
        return []  # a new data home: no runs yet
    from clv_pipeline.runs.instance import get_instance
    from clv_pipeline.runs.recovery import reap_orphans

    try:
        found = reap_orphans(config, get_instance(config))
    except Exception as exc:  # noqa: BLE001 - the command itself says what is wrong, if it can
        err.print(f"[yellow]warning:[/] could not check for dead runs: {escape(str(exc))}")
        return []
    for orphan in found:
        err.print(
            f"[yellow]warning:[/] run {orphan.run_id} ({orphan.job} {orphan.label or ''}) marked "
            f"failed: {escape(orphan.reason)}",
            soft_wrap=True,
        )
    return found


def _column_map(config: ClvConfig, column: list[str] | None) -> dict[str, str]:
    """The data home's column mapping overridden by the command's --column options."""
    try:
        return {**config.source.column_map, **parse_mapping(column or [])}
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")  # e.g. pip install 'clv-pipeline[k8s]'
    return typer.Exit(code)


def _fail_line(message: str, code: int = 1) -> typer.Exit:
    """``error: <message>`` as one line, never wrapped (grep and alerting read it whole)."""
    err.print("[bold red]error:[/] ", end="")
    err.print(message, markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _save(config: ClvConfig, updates: dict[str, object]) -> None:
    """Store settings in the data home's clv.toml; warn when an env var or flag still wins."""
    try:
        path = save_settings(config.home, updates)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    for key in updates:
        origin = config.origin(key)
        if origin.startswith("env "):
            err.print(f"[yellow]warning:[/] {key} saved to {path}, but {origin[4:]} overrides it")


def _read_flags(**given: object) -> dict[str, object]:
    """The read options given on the command line as ``source.<name>`` settings."""
    return {f"source.{name}": value for name, value in given.items() if value is not None}


@app.command("import")
def import_cmd(
    files: Annotated[list[Path], typer.Argument(help="CSV or parquet exports to load.")],
    column: ColumnOption = None,
    delimiter: DelimiterOption = None,
    decimal_comma: DecimalCommaOption = None,
    encoding: EncodingOption = None,
    date_format: DateFormatOption = None,
    day_first: DayFirstOption = None,
    amount: AmountOption = None,
    order_id: OrderIdOption = None,
    home: HomeOption = None,
) -> None:
    """Load historical exports into landing/, one folder per event date (idempotent).

    The read options (column mapping, delimiter, dates, amount, order id) are saved in the data
    home's clv.toml, so every later delivery is read the same way, and the partitions are moved
    to cover the imported days (start_date back to the first one; end_date for a closed history).
    See docs/importing.md for the command of each common export shape.
    """
    flags = _read_flags(
        delimiter=delimiter,
        decimal_comma=decimal_comma,
        encoding=encoding,
        date_format=date_format,
        day_first=day_first,
        amount=amount,
        order_id=order_id,
    )
    config = _config(home, **flags)
    mapping = _column_map(config, column)
    options = replace(config.read_options(), column_map=mapping)
    try:
        report = import_files(
            files,
            config.layout,
            options=options,
            timezone=config.timezone,
            on_file=lambda path, rows: console.print(f"  {path}: {rows:,} rows"),
        )
    except (ClvError, ValueError) as exc:
        raise _fail(str(exc)) from None
    made = f" ({report.transactions:,} orders by {options.order_id})" if options.order_id else ""
    if not report.days:
        _print_undated(report)
        raise _fail(
            f"no row landed: none of the {report.rows:,} rows of {report.files} file(s) has a "
            f"usable occurred_at (see above); no setting was saved. The rows are listed with "
            f"their reason in {config.layout.quarantine / 'import'}"
        )
    console.print(
        f"Imported {report.landed:,} of {report.rows:,} rows{made} from {report.files} file(s) "
        f"into {len(report.days)} day(s) {report.first_day} .. {report.last_day} under "
        f"{config.layout.landing}"
    )
    if report.unparseable_rows:
        _print_undated(report)
        err.print(
            f"[yellow]warning:[/] {report.unparseable_rows:,} row(s) had no usable occurred_at "
            f"and went to {config.layout.quarantine / 'import'}"
        )
    for hint in report.hints:
        err.print(f"[yellow]hint:[/] {hint}")
    updates = {**_partition_updates(config, report), **flags}
    if mapping != config.source.column_map:
        updates["source.column_map"] = mapping
    read = {k: v for k, v in updates.items() if k.startswith("source.")}
    if read:
        shown = ", ".join(f"{k.split('.', 1)[1]}={v!r}" for k, v in read.items())
        console.print(f"Saved the read options {shown} (later runs read every delivery with them)")
    if updates:
        _save(config, updates)


def _print_undated(report: ImportReport) -> None:
    """Rows that did not land, per reason, with three example values and the fix."""
    for reason, count in report.reasons.items():
        examples = report.examples.get(reason, [])
        shown = f" (e.g. {', '.join(examples[:3])})" if examples else ""
        err.print(f"  {count:,} row(s): {reason}{shown}")
    for hint in report.date_hints:
        err.print(f"[yellow]hint:[/] {hint}")


def _partition_updates(config: ClvConfig, report: ImportReport) -> dict[str, Any]:
    """Move the partition bounds of the data home to cover its landed days (one line each)."""
    if report.first_day is None or report.last_day is None:
        return {}
    landed = config.layout.landing_days()  # earlier imports and deliveries count too
    first, last = min(report.first_day, *landed[:1]), max(report.last_day, *landed[-1:])
    updates: dict[str, Any] = {}
    if first < config.start_date or (
        config.origin("start_date") == "default" and first != config.start_date
    ):
        updates["start_date"] = first
        console.print(f"Partitions now start on {first}, the first landed day (start_date)")
    closed = last < yesterday(config.timezone) - timedelta(days=CLOSED_HISTORY_DAYS)
    if config.end_date is not None and last > config.end_date:
        updates["end_date"] = last
        console.print(f"Partitions now end on {last}, the last landed day (end_date)")
    elif config.end_date is None and closed and config.origin("end_date") == "default":
        updates["end_date"] = last
        console.print(
            f"Partitions end on {last}, the last landed day: the history ended more than "
            f"{CLOSED_HISTORY_DAYS} days ago (end_date). For daily deliveries after it: "
            "`clv init --end-date none`"
        )
    return updates


def run_day(config: ClvConfig, day: date, *, quiet: bool = False) -> None:
    """Catch up missing/stale ingest days before ``day`` in one run, then run ``day``."""
    from clv_pipeline.runs import operations

    before = [d for d in config.layout.landing_days() if d < config.start_date]
    if before:
        err.print(
            f"[yellow]warning:[/] {len(before)} landing day(s) before start_date="
            f"{config.start_date} are ignored; to include them: "
            f"`clv init --start-date {before[0]} --home {config.home}`"
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
    """Run an operation; turn our errors into a clear message and exit code 1.

    What Dagster's console logger prints meanwhile (each failed step's traceback) goes to the log
    file named in the last line (:func:`clv_pipeline.failures.write_log`), not to the terminal.
    """
    from clv_pipeline.runs.operations import RunFailed

    captured = io.StringIO()
    _state["captured"] = captured
    err.file = sys.stderr  # our own warnings still reach the terminal
    try:
        with contextlib.redirect_stderr(captured):
            return action()
    except RunFailed as exc:
        raise _fail_line(_run_failed(exc, captured.getvalue())) from None
    except ClvError as exc:
        raise _fail(str(exc)) from None
    finally:
        err._file = None  # noqa: SLF001 - back to following sys.stderr


def _run_failed(exc: RunFailed, captured: str) -> str:
    """Print each failed step's own error once (with the hint of the command that ran it);
    return the last line: what failed, what it means for the published tables, the fix, the log."""
    home = _state.get("home")
    home = home if isinstance(home, Path) else None
    failures = exc.outcome.failures or [("run", "failed before any step ran")]
    for step, message in failures:
        err.print(f"[bold red]failed[/] {step}: ", end="")
        err.print(_run_hint(message, home), markup=False, highlight=False, soft_wrap=True)
        _print_days(exc.outcome.details.get(step, ""))
    details = "\n".join(f"{step}: {exc.outcome.details.get(step, text)}" for step, text in failures)
    log, _ = write_log(None, home=home, command=f"(run {exc.outcome.run_id})", captured=captured)
    said = f" details: {log}" if log else ""
    if log is not None:
        with contextlib.suppress(OSError), log.open("a") as handle:
            handle.write(details + "\n")
    run_id = exc.outcome.run_id
    what = str(exc).split(" failed at ", 1)[0]
    rerun = exc.command  # finishes what was asked for (`clv run --date D --home H`, ...)
    known = explain_text(failures[0][1], home=home, rerun=rerun)
    if known is not None:  # disk full, permissions: the cause in plain words
        return f"{what} failed (run {run_id}): {known.text()}.{said}"
    steps = {step for step, _ in failures}
    if steps <= {"clv_snapshot"}:  # the commit step says itself what was committed
        return f"{what} failed at clv_snapshot (run {run_id}). Fix the cause above, then `{rerun}`.{said}"
    return (
        f"{what} failed at {failures[0][0]} (run {run_id}); the published tables were not "
        f"changed. Fix the cause above, then `{rerun}`.{said}"
    )


COLUMN_FIX = re.compile(r"Map them with (.*?--column SRC=\w+)\.")


def _run_hint(message: str, home: Path | None) -> str:
    """A step's error as `clv run` / `clv rerun` should say it: the landing files are read with the
    data home's column mapping (``source.column_map``), not a ``--column`` of this command."""
    found = COLUMN_FIX.search(message)
    if not found or "missing required column" not in message:
        return message
    pairs = re.findall(r"--column (SRC=\w+)", found.group(1))
    where = f" --home {home}" if home else ""
    fix = (
        "Map them in the data home's column mapping, the [source.column_map] table of clv.toml "
        "(source.column_map): "
        + " ".join(f"`clv init --column {pair}{where}`" for pair in pairs)
        + " with SRC the file's own column name"
        + (
            "; order lines: `clv init --set source.order_id=SRC`"
            if "--order-id" in found.group(1)
            else ""
        )
        + "; then rerun."
    )
    return message[: found.start()] + fix + message[found.end() :]


DAYS_SHOWN = 10


def _print_days(text: str) -> None:
    """The per-day lines of a step that failed on several days (each day's own error)."""
    from clv_pipeline.runs.status import first_line

    lines = text.splitlines()[1:]
    for line in lines[:DAYS_SHOWN]:
        err.print(f"  {first_line(line)}", markup=False, highlight=False, soft_wrap=True)
    if len(lines) > DAYS_SHOWN:
        err.print(f"  … and {len(lines) - DAYS_SHOWN} more day(s): see `clv status`")


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
    config = _config(home, **{"scale.state_rebuild": "full" if full_recompute else None})
    chosen = _parse_date(day, "--date") if day else yesterday(config.timezone)
    run_day(config, chosen)


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
    from clv_pipeline.runs import operations
    from clv_pipeline.runs.status import first_line

    config = _config(home)
    if run_id and not failed:
        outcome = _guard(lambda: operations.rerun_run(config, run_id))
        console.print(f"[green]ok[/] rerun of {run_id} succeeded (run {outcome.run_id})")
        return
    if not failed:
        raise _fail("give a RUN_ID or --failed")
    first = _parse_date(since, "--since") if since else None
    steps = _guard(
        lambda: operations.rerun_failed(config, since=first, announce=lambda m: console.print(m))
    )
    if not steps:
        console.print("no failed partitions")
        return
    table = Table(title="Rerun of the failed partitions and the snapshots depending on them")
    for name in ("run", "result", "run id"):
        table.add_column(name, overflow="fold")
    for step in steps:
        result = "[green]ok[/]" if step.ok else f"[red]{escape(first_line(step.message))}[/]"
        table.add_row(step.what, result, step.run_id)
    console.print(table)
    if not all(step.ok for step in steps):
        raise typer.Exit(1)


@app.command()
def backfill(
    start: Annotated[str, typer.Option("--start", help="First partition YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--end", help="Last partition YYYY-MM-DD.")],
    home: HomeOption = None,
) -> None:
    """Materialize partitions START..END: ingest in one run, then each day's snapshot."""
    from clv_pipeline.runs import operations

    config = _config(home)
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
            # a later snapshot rebuilt so its changes and migration compare with the range
            str(r.day) if r.day <= last else f"{r.day} (later snapshot: compares with the range)",
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
    """Generate a synthetic history, import it, run yesterday and print a summary.

    The data home's partitions become exactly the demo's days (start_date in clv.toml).
    """
    from clv_pipeline.publish.files import write_parquet_atomic

    config = _config(home)
    end = yesterday(config.timezone)
    first = end - timedelta(days=days - 1)
    _save(config, {"start_date": first, "end_date": None})
    config = _config(home)
    console.print(f"Generating {customers:,} customers over {days} days ending {end} (seed {seed})")
    history = generate_history(n_customers=customers, days=days, end=end, seed=seed)
    export = write_parquet_atomic(history, config.layout.home / "demo" / "transactions.parquet")
    report = import_files(
        [export],
        config.layout,
        timezone=config.timezone,
        naive_timezone=config.source.naive_timezone,
    )
    console.print(f"Imported {report.rows:,} transactions into {len(report.days)} landing days")
    console.print(f"Partitions: {first} .. {end} (settings in {config.layout.settings})")
    run_day(config, end)
    _summary(config, end)


def _summary(config: ClvConfig, as_of: date) -> None:
    from clv_pipeline.publish.warehouse import read_published
    from clv_pipeline.report.html import clv_units, report_paths

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
        predicted = clv.select(
            pl.col("predicted_clv").sum().alias("total"), pl.col("predicted_clv").mean()
        ).row(0)
        table.add_row("predicted CLV, all customers", f"{predicted[0]:,.2f}")
        table.add_row("mean predicted CLV (model)", f"{predicted[1]:,.2f}")
    formula = clv.select(pl.col("formula_clv").mean()).item()
    table.add_row(
        "mean formula CLV (retention)",
        f"{formula:,.2f}" if isinstance(formula, float) else "n/a (no previous window)",
    )
    console.print(table)
    console.print(f"CLV figures: {clv_units(clv)}. Why model and formula differ: docs/metrics.md.")
    top = segments.group_by("rfm_segment").len().sort("len", descending=True).head(6)
    seg = Table(title="Top segments")
    seg.add_column("segment")
    seg.add_column("customers", justify="right")
    for name, count in top.iter_rows():
        seg.add_row(name, f"{count:,}")
    console.print(seg)
    console.print(f"Parquet tables: {layout.warehouse}/<table>/snapshot={as_of}/part-0.parquet")
    example = "SELECT * FROM customer_clv_latest"
    console.print(f"DuckDB catalog: {layout.catalog}  (e.g. {example})")
    report, _ = report_paths(layout.warehouse, as_of)
    if report.exists():
        console.print(f"HTML report: {report}  (clv report --open)")


FAILURE_LINES = 50  # lines of failures `clv status` prints without --verbose


@app.command()
def status(
    asset: Annotated[str | None, typer.Option("--asset", help="Only this asset.")] = None,
    since: Annotated[str | None, typer.Option(help="Only partitions >= DATE.")] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Every failure with its full error.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Per asset: materialized, failed (with error and run id), missing and stale partitions;
    runs in progress with the lock holder.

    Exit codes (cron, monitoring): 0 all good; 1 a partition failed (a run whose process died
    is marked failed first); 2 missing or stale partitions, or the latest day never built;
    3 a run in progress (nothing failed).
    """
    from clv_pipeline.runs.instance import get_instance
    from clv_pipeline.runs.status import group_failures, partition_status

    config = _config(home)
    first = _parse_date(since, "--since") if since else None
    rows = _guard(lambda: partition_status(config, get_instance(config), asset=asset, since=first))
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
    code = _status_extras(config, rows, since=first)
    groups = group_failures(rows)
    if not groups:
        raise typer.Exit(code)
    failed = sum(len(row.failed) for row in rows)
    console.print(f"Failed: {failed} partition(s), each with its own error (latest attempt):")
    for group in groups if verbose else groups[:FAILURE_LINES]:
        assets = ", ".join(group.assets)
        if len(group.assets) > 3:
            assets = f"{len(group.assets)} assets ({', '.join(group.assets[:2])}, …)"
        line = redact(f"{assets} {group.days} run {group.run_id}: {group.error}")
        console.print(line, markup=False, highlight=False, soft_wrap=True)
        if verbose:
            for text in redact(group.text).splitlines():
                console.print(f"    {text}", markup=False, highlight=False, soft_wrap=True)
    if not verbose and len(groups) > FAILURE_LINES:
        console.print(f"… and {len(groups) - FAILURE_LINES} more line(s): `clv status --verbose`")
    console.print("Rebuild them with `clv rerun --failed` (failed, killed and never-built days).")
    raise typer.Exit(code)


def _status_extras(config: ClvConfig, rows: list[Any], *, since: date | None) -> int:
    """Print runs in progress (lock holder), dead runs just marked failed and a latest day never
    built, each with its command; return the exit code (:func:`status.exit_code`)."""
    from clv_pipeline.runs import operations
    from clv_pipeline.runs.instance import get_instance
    from clv_pipeline.runs.records import run_label
    from clv_pipeline.runs.recovery import active_cli_runs, lock_holder
    from clv_pipeline.runs.status import EXIT_MISSING, exit_code

    home = shlex.quote(str(config.home))
    orphans = _state.get("orphans")
    for orphan in orphans if isinstance(orphans, list) else []:
        console.print(
            f"Dead run {orphan.run_id} ({orphan.job} {orphan.label or '-'}) marked failed: "
            f"{orphan.reason}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    holder = lock_holder(config)
    running = _guard(lambda: active_cli_runs(get_instance(config))) if holder else []
    if holder is not None:
        console.print(f"In progress: {holder.describe()}", markup=False, soft_wrap=True)
        for run in running:
            label = run_label(run.tags) or "-"
            console.print(f"  run {run.run_id} {run.job_name} {label}", markup=False)
    unbuilt = _guard(lambda: operations.unbuilt_targets(config, since=since))
    if unbuilt and holder is None:
        day = unbuilt[-1]
        console.print(
            f"Not built: {day} (the latest day) has no complete snapshot; build it with "
            f"`clv rerun --failed --home {home}` or `clv run --date {day} --home {home}`",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    code = exit_code(rows, running=holder is not None, unbuilt=unbuilt)
    if code == EXIT_MISSING and not unbuilt:
        console.print(
            f"Missing or stale partitions: `clv rerun --failed --home {home}` builds them"
        )
    return code


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
    delimiter: DelimiterOption = None,
    decimal_comma: DecimalCommaOption = None,
    encoding: EncodingOption = None,
    date_format: DateFormatOption = None,
    day_first: DayFirstOption = None,
    amount: AmountOption = None,
    order_id: OrderIdOption = None,
    limit: Annotated[int, typer.Option(help="Rejected rows to list.")] = 20,
    home: HomeOption = None,
) -> None:
    """Run the validation suite on FILE (no pipeline run) and print its failures.

    Takes the read options of `clv import` (same names); nothing is saved.
    """
    from clv_pipeline.pipeline import order_line_hint, partition_failure, validate_file

    flags = _read_flags(
        delimiter=delimiter,
        decimal_comma=decimal_comma,
        encoding=encoding,
        date_format=date_format,
        day_first=day_first,
        amount=amount,
        order_id=order_id,
    )
    config = _config(home, **flags)
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
    undated = result.undated
    if undated is not None and undated.height:
        failed = True
        days.add_row(
            "(no day)",
            f"{undated.height:,}",
            "0",
            f"{undated.height:,}",
            "0",
            "no usable occurred_at",
        )
        rejected.insert(0, undated)
    console.print(days)
    hints = [
        problem for day_result in result.days.values() if (problem := order_line_hint(day_result))
    ]
    if hints:
        err.print(f"[yellow]hint:[/]{hints[0]}")
    if undated is not None and undated.height:
        values = undated.get_column("occurred_at").drop_nulls().to_list()
        guess = guess_date_format(values) if values else None
        if guess:
            err.print(f"[yellow]hint:[/] occurred_at values like {values[0]!r} parse with {guess}")
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
    self_contained: Annotated[
        bool,
        typer.Option(
            "--self-contained",
            help="Write one standalone file with plotly.js inline (~5 MB), to mail or attach.",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="With --self-contained: where to write it (default "
            "warehouse/reports/as_of=D/report-self-contained.html).",
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Print (and optionally open) the HTML report of a snapshot, with its headline numbers."""
    from clv_pipeline.pipeline import build_report
    from clv_pipeline.publish.catalog import complete_dates
    from clv_pipeline.publish.warehouse import read_published
    from clv_pipeline.report.charts import MONEY_KPIS, SHARE_KPIS
    from clv_pipeline.report.html import change_text, clv_units, comparison_label, report_paths

    config = _config(home)
    dates = complete_dates(config.layout)
    if day is None and not dates:
        raise _fail("no complete snapshot yet; run `clv run` or `clv demo` first")
    if output is not None and not self_contained:
        raise _fail("--output goes with --self-contained (the daily report stays in the warehouse)")
    chosen = _parse_date(day, "--date") if day else dates[-1]
    path, _ = report_paths(config.layout.warehouse, chosen)
    if self_contained:
        path = _guard(lambda: build_report(config, chosen, self_contained=True, output=output)).path
    elif not path.exists():
        path = _guard(lambda: build_report(config, chosen)).path

    kpis = read_published(config.layout, "kpis", chosen)
    if kpis is not None and kpis.height:
        row = kpis.row(0, named=True)
        table = Table(title=f"Headline {chosen}")
        table.add_column("kpi")
        table.add_column("value", justify="right")
        # changes are against the previous complete snapshot, which may be days before
        against = comparison_label(row.get("previous_as_of"), chosen)
        has_previous = row.get("previous_as_of") is not None
        table.add_column(f"change {against}" if has_previous else "change", justify="right")
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
            kind = "money" if name in MONEY_KPIS else "pct" if name in SHARE_KPIS else "int"
            change = change_text(row.get(f"{name}_change"), row.get(f"{name}_change_pct"), kind)
            table.add_row(name, _number(value), change or "-")
        console.print(table)
        days = row.get("days_since_previous")
        if not has_previous:
            console.print("no previous snapshot: no changes")
        elif isinstance(days, int) and days > 1:
            console.print(
                f"[yellow]note:[/] changes span {days} days (the previous complete snapshot is "
                f"{row['previous_as_of']}), not one day"
            )
    if kpis is not None and kpis.height and "horizon_days" in kpis.columns:
        window = kpis["active_window_days"][0]
        console.print(
            f"CLV figures: {clv_units(kpis)}; churn and retention per {window}-day period "
            "(docs/metrics.md)."
        )
    _print_model_words(config, chosen)
    console.print(f"report: {path} ({path.stat().st_size:,} bytes)")
    if open_browser:
        webbrowser.open(path.as_uri())


def _print_model_words(config: ClvConfig, day: date) -> None:
    """The model checks that did not pass and what the selected model says, in plain words."""
    from clv_pipeline.pipeline import group_summaries, model_summary
    from clv_pipeline.publish.warehouse import read_published

    checks = read_published(config.layout, "model_diagnostics", day)
    if checks is not None:
        if "fit_group" not in checks.columns:  # written before per-group fits
            checks = checks.with_columns(pl.lit("all").alias("fit_group"))
        groups = checks.filter(pl.col("check") == "group_fit")
        trusted = groups.filter(pl.col("status") == "ok")["fit_group"]
        shown = (
            pl.col("fit_group").fill_null("all").eq("all")
            | (pl.col("check") == "group_fit")
            | pl.col("fit_group").is_in(
                trusted.to_list()
            )  # pooled groups: only why they are pooled
        )
        flagged = checks.filter(shown & (pl.col("status") != "ok"))
        for row in flagged.sort("status", "model", "check").iter_rows(named=True):
            where = "data" if row["model"] == "all" else row["model"]
            group = row.get("fit_group") or "all"
            if group != "all":
                where = f"group {group}" if row["check"] == "group_fit" else f"{where} ({group})"
            console.print(f"[yellow]{row['status']}[/yellow] {where}: {row['message']}")
    summary = model_summary(config, day)
    if summary is None:
        return
    console.print(f"What the model ({summary.model}) says:")
    for line in summary.lines:
        console.print(f"  - {line.text}")
    if summary.new_customer_clv is not None:
        console.print(
            f"  - A customer acquired today: new-customer CLV {summary.new_customer_clv:,.2f} "
            f"{config.report_currency() or 'currency units'} (repeat purchases, discounted)."
        )
    for group, own in group_summaries(config, day).items():
        value = (
            f"; new-customer CLV {own.new_customer_clv:,.2f}"
            if own.new_customer_clv is not None
            else ""
        )
        console.print(f"Group {group} ({own.model}{value}):")
        for line in own.lines:
            console.print(f"  - {line.text}")


@app.command()
def docs(
    output: Annotated[Path, typer.Option(help="Where to write the data dictionary.")] = Path(
        "docs/data_contract.md"
    ),
    settings: Annotated[Path, typer.Option(help="Where to write the settings reference.")] = Path(
        "docs/configuration.md"
    ),
) -> None:
    """Regenerate docs/data_contract.md (from clv_pipeline/schema/) and docs/configuration.md."""
    for path, text in ((output, render_markdown()), (settings, render_settings_markdown())):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        console.print(f"wrote {path}")


@app.command()
def catalog(home: HomeOption = None) -> None:
    """Write the DuckDB catalog again from warehouse/_manifest.json (e.g. after moving the home)."""
    from clv_pipeline.publish.catalog import refresh_views

    config = _config(home)
    try:
        refresh_views(config.layout)
    except ClvError as exc:
        raise _fail(str(exc)) from None
    console.print(f"wrote {config.layout.catalog}")


NONE_WORDS = {"", "none", "null", "default"}


@app.command()
def init(
    start_date: Annotated[
        str | None, typer.Option("--start-date", help="First daily partition (YYYY-MM-DD).")
    ] = None,
    end_date: Annotated[
        str | None,
        typer.Option("--end-date", help="Last partition of a closed history; 'none' = yesterday."),
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="IANA timezone of the partition days.")
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="landing (default), s3 or postgres.")
    ] = None,
    column: ColumnOption = None,
    setting: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Any setting as PATH=VALUE, e.g. models.horizon_days=730 (see `clv config`); "
            "PATH=none removes it.",
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Create or update the data home's settings file clv.toml, then print the settings."""
    config = _config(home)
    updates: dict[str, Any] = {}
    if start_date is not None:
        updates["start_date"] = _parse_date(start_date, "--start-date")
    if end_date is not None:
        updates["end_date"] = (
            None if end_date.lower() in NONE_WORDS else _parse_date(end_date, "--end-date")
        )
    if timezone is not None:
        updates["timezone"] = timezone
    if source is not None:
        updates["source.kind"] = source
    if column:
        updates["source.column_map"] = _column_map(config, column)
    for item in setting or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in SETTINGS:
            raise _fail(f"--set {item!r}: expected PATH=VALUE with a PATH listed by `clv config`")
        updates[key] = _setting_value(key, value.strip())
    config.layout.home.mkdir(parents=True, exist_ok=True)
    _save(config, updates)
    if not config.layout.settings.exists():
        save_settings(config.home, {"start_date": config.start_date})
    console.print(f"settings: {config.layout.settings}")
    _print_settings(_config(home), changed_only=True)


def _setting_value(key: str, text: str) -> Any:
    """A --set value as the setting's type expects it (lists and mappings as in CLV_* vars)."""
    if text.lower() in NONE_WORDS:
        return None
    try:
        return parse_text(SETTINGS[key], text)
    except ValueError as exc:
        raise _fail(f"--set {key}: {exc}") from None


@app.command("config")
def config_cmd(
    everything: Annotated[
        bool, typer.Option("--all", help="Also list settings left at their default.")
    ] = True,
    home: HomeOption = None,
) -> None:
    """Print every effective setting, where it came from (flag, env, clv.toml, default) and its
    environment variable."""
    config = _config(home)
    console.print(
        f"data home: {config.home}   settings file: {config.layout.settings}"
        + ("" if config.layout.settings.exists() else " (absent: `clv init`)")
    )
    _print_settings(config, changed_only=not everything)


def _print_settings(config: ClvConfig, *, changed_only: bool) -> None:
    table = Table(title="Effective settings (flag > CLV_* env > clv.toml > default)")
    table.add_column("setting", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("from", no_wrap=True)
    table.add_column("env variable", no_wrap=True)
    for setting, value, origin in effective_settings(config):
        if changed_only and origin == "default":
            continue
        shown = format_value(value)
        table.add_row(setting.path, shown, origin, setting.env)
    console.print(table)


@app.command()
def instance(home: HomeOption = None) -> None:
    """Print the data home's Dagster instance folder (its DAGSTER_HOME), writing its dagster.yaml.

    ``DAGSTER_HOME="$(clv instance)" dg dev`` (what ``make dev`` runs) starts the UI and the
    daemon on the same runs as the CLI; nothing is written into the checkout.
    """
    from clv_pipeline.runs.instance import instance_home

    print(instance_home(_config(home)))  # noqa: T201 - plain stdout for $(...)


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except ClvError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover - `python -m clv_pipeline.cli`
    main()
