"""The CLI's light commands do not import Dagster, scipy, DuckDB or GX: `clv import` of a
first export, `clv config` and `--help` started ~2 s later when cli.py imported them all."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import tx, write_csv

HEAVY = ("dagster", "scipy", "duckdb", "great_expectations", "sklearn")
CHECK = (
    "import sys\n"
    "from clv_pipeline.cli import app\n"
    "args = sys.argv[1:]\n"
    "if args:\n"
    "    app(args, standalone_mode=False)\n"
    f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
)


def _heavy(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CHECK, *args], capture_output=True, text=True, check=True
    )
    return done.stdout.rsplit("HEAVY=", 1)[1].strip()


def test_the_cli_module_imports_no_heavy_package() -> None:
    assert _heavy() == ""


def test_import_and_config_commands_import_no_heavy_package(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    write_csv(export, [tx("2024-03-01", "c1", "10.50", "t1"), tx("2024-03-02", "c2", "5", "t2")])
    home = tmp_path / "home"
    assert _heavy("import", str(export), "--home", str(home)) == ""
    assert (home / "landing" / "transactions").is_dir()
    assert _heavy("config", "--home", str(home)) == ""
