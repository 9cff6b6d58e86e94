"""Dagster metadata of a published table, in Dagster's conventions.

The pipeline's steps describe what they published with plain values (``rows``, ``path``, markdown
previews, stats); here they become ``dagster/row_count``, a path, markdown, and the table's
``dagster/column_schema`` (types, nullability, descriptions with units) from the data contract.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import dagster as dg

from clv_pipeline.schema import TABLES

#: The beta warnings of ``with_source_code_references`` and the metadata classes it creates.
CODE_REFERENCES_BETA = (
    r".*(with_source_code_references|LocalFileCodeReference|CodeReferencesMetadataValue).*"
)


def owned_and_referenced(
    assets: Sequence[dg.AssetsDefinition], owners: Sequence[str]
) -> list[dg.AssetsDefinition]:
    """Every spec of ``assets`` with ``owners`` and a code reference (``dagster/code_references``:
    the file and line of the function that defines it)."""
    owned = [
        asset.map_asset_specs(lambda spec: spec.replace_attributes(owners=list(owners)))
        for asset in assets
    ]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=CODE_REFERENCES_BETA, category=dg.BetaWarning)
        referenced = dg.with_source_code_references(owned)
    return [asset for asset in referenced if isinstance(asset, dg.AssetsDefinition)]


def dagster_metadata(values: Mapping[str, Any], table: str | None = None) -> dict[str, Any]:
    """``values`` with the row count, path and markdown typed, plus the column schema."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "rows":
            out["dagster/row_count"] = dg.MetadataValue.int(int(value))
        elif key == "path":
            out["path"] = dg.MetadataValue.path(str(value))
        elif isinstance(value, str) and value.lstrip().startswith("|"):
            out[key] = dg.MetadataValue.md(value)  # previews and parameter tables
        else:
            out[key] = value
    if table in TABLES:
        out["dagster/column_schema"] = column_schema(table)
    return out


@cache
def column_schema(table: str) -> dg.TableSchema:
    """The contract of ``table`` as a Dagster table schema."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=column.name,
                type=str(column.dtype),
                description=column.description + (f" Unit: {column.unit}." if column.unit else ""),
                constraints=dg.TableColumnConstraints(nullable=column.nullable),
            )
            for column in TABLES[table].columns
        ]
    )
