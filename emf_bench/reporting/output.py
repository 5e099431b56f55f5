"""What the report and the comparison share: tables written as CSV and Parquet, tables and
images made HTML-ready, the long evaluation table made wide, and the templates rendered with
every value escaped."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pandas as pd

from emf_bench.storage import atomic_path


def data_uri(path_or_image) -> str:
    """A PNG file or PIL image as a data URI (the report embeds its figures)."""
    if isinstance(path_or_image, (str, Path)):
        data = Path(path_or_image).read_bytes()
    else:
        buffer = io.BytesIO()
        path_or_image.save(buffer, format="PNG")
        data = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def write_table(table: pd.DataFrame, folder: Path, name: str) -> None:
    """`folder/name.csv` and `.parquet`, each written atomically."""
    with atomic_path(folder / f"{name}.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(folder / f"{name}.parquet") as tmp:
        table.to_parquet(tmp, index=False)


def html_table(table: pd.DataFrame, floats: str = "{:.3f}") -> str:
    """An escaped HTML table ("" for an empty one); missing values read "-"."""
    if table.empty:
        return ""
    table = table.copy()
    for column in table.columns:  # None in text columns reads "-" like NaN in numeric ones
        if table[column].dtype == object:
            table[column] = table[column].fillna("-")
    return table.to_html(index=False, escape=True, na_rep="-", border=0, classes="data",
                         float_format=lambda v: floats.format(v))


def wide(table: pd.DataFrame) -> pd.DataFrame:
    """The long evaluation table as one row per model, step count and backend (DPG-Bench's
    level-2 categories left out)."""
    if table.empty:
        return table
    main = table[~table["metric"].str.startswith("L2 ")]
    out = main.pivot_table(index=["model", "steps", "backend"], columns="metric",
                           values="value", sort=False).reset_index()
    out.columns.name = None
    return out.dropna(axis=1, how="all")


def render(context: dict[str, Any], template: str = "report.html.j2") -> str:
    """A report template with every value escaped (the comparison's too)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("emf_bench.reporting", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined)
    # Tables come from DataFrame.to_html(escape=True): their cells are already escaped.
    return env.get_template(template).render(**context)
