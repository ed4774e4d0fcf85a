"""Several methods' results side by side: one table shaped like Table 1 of the instance-optimisation
paper (io_gradient_projection.md §4: Dice, HD95, NDV; Table 2 adds TRE), read from the
``metrics_summary.csv`` files that ``RegistrationMetricsHandler`` writes, one per run."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from monai_ext.io.atomic import atomic_write_path

__all__ = [
    "COMPARISON_COLUMNS",
    "read_metrics_summary",
    "format_method_comparison",
    "write_method_comparison",
]

#: Default columns: those of the paper's Tables 1 and 2.
COMPARISON_COLUMNS = ("Dice_mean", "HD95_mean", "NDV", "TRE")

# column -> (header, scale applied to mean and std, decimals). NDV is stored in percent of the
# region; Table 1 prints it as a volume fraction in units of 1e-4, i.e. percent x 100.
_FORMATS = {
    "Dice_mean": ("Dice(%)", 100.0, 2),
    "HD95_mean": ("HD95(mm)", 1.0, 2),
    "NDV": ("NDV(1e-4)", 100.0, 3),
    "NJD": ("NJD(%)", 1.0, 3),
    "std_log_jac": ("SDlogJ", 1.0, 3),
    "MSE": ("MSE(1e-2)", 100.0, 2),
    "TRE": ("TRE(mm)", 1.0, 2),
}

_INITIAL = "Initial"


def _format(column: str) -> tuple[str, float, int]:
    if column in _FORMATS:
        return _FORMATS[column]
    if column.startswith("Dice_"):
        return f"Dice {column[5:]}(%)", 100.0, 2
    if column.startswith("HD95_"):
        return f"HD95 {column[5:]}(mm)", 1.0, 2
    return column, 1.0, 3


def format_method_comparison(
    summaries: Mapping[str, Mapping[str, tuple[float, float]]],
    columns: Sequence[str] = COMPARISON_COLUMNS,
    title: str | None = "Comparison of methods (mean±std over pairs)",
) -> str:
    """Text table with one row per method and ``mean±std`` cells, shaped like the paper's Table 1.

    Args:
        summaries: ``{method: {column: (mean, std)}}`` in row order, e.g. the ``summary()`` of
            several ``RegistrationMetricsHandler`` runs or :func:`read_metrics_summary` results.
        columns: summary columns to show, in order. Dice is printed in %, HD95 and TRE in mm, NDV as
            a volume fraction in units of 1e-4 (Table 1; the stored value is a percentage).
            A column a method lacks, or whose mean is NaN, prints ``-``.
        title: first line, or None for none.

    Returns:
        the table as text (header, rule, one line per method).
    """
    if not summaries:
        raise ValueError("summaries is empty: give at least one method's summary.")
    columns = list(columns)
    if not columns:
        raise ValueError("columns is empty: give at least one summary column to show.")

    def cell(stats: Mapping[str, tuple[float, float]], column: str) -> str:
        _, scale, digits = _format(column)
        mean, std = stats.get(column, (float("nan"), float("nan")))
        if mean is None or math.isnan(mean):
            return "-"
        if std is None or math.isnan(std):
            return f"{mean * scale:.{digits}f}"
        return f"{mean * scale:.{digits}f}±{std * scale:.{digits}f}"

    header = ["Method"] + [_format(c)[0] for c in columns]
    lines = [[str(method)] + [cell(stats, c) for c in columns] for method, stats in summaries.items()]
    widths = [max(len(row[i]) for row in [header] + lines) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    body = [fmt.format(*header), rule] + [fmt.format(*row).rstrip() for row in lines]
    return "\n".join(([title] if title else []) + body)


def _number(text: str, path: Path, column: str) -> float:
    try:
        return float(text) if text not in ("", None) else float("nan")
    except ValueError:
        raise ValueError(f"{path}: column {column!r} holds {text!r}, not a number.") from None


def read_metrics_summary(path: str | os.PathLike) -> dict[str, dict[str, tuple[float, float]]]:
    """Read a ``metrics_summary.csv`` of ``RegistrationMetricsHandler``: ``{method: {column: (mean, std)}}``.

    The file has a ``method, statistic, <columns...>`` header and, per method, a ``mean`` row and a
    ``std`` row. Methods keep their order in the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics summary {path} does not exist (was the evaluation run?).")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        if fields[:2] != ["method", "statistic"]:
            raise ValueError(
                f"{path} is not a metrics summary: its header should start with 'method,statistic', got {fields[:2]}."
            )
        columns = fields[2:]
        stats: dict[str, dict[str, dict[str, float]]] = {}
        for row in reader:
            statistic = row["statistic"]
            if statistic not in ("mean", "std"):
                raise ValueError(f"{path}: statistic must be 'mean' or 'std', got {statistic!r}.")
            values = stats.setdefault(row["method"], {"mean": {}, "std": {}})
            values[statistic] = {c: _number(row[c], path, c) for c in columns}
    if not stats:
        raise ValueError(f"{path} holds no method rows.")
    nan = float("nan")
    return {
        method: {c: (values["mean"].get(c, nan), values["std"].get(c, nan)) for c in columns}
        for method, values in stats.items()
    }


def _method_row(summary: Mapping[str, Mapping], name: str, path: Path) -> Mapping[str, tuple[float, float]]:
    """The row for ``name``: the method of that name, else the file's one method other than Initial."""
    if name in summary:
        return summary[name]
    methods = [m for m in summary if m != _INITIAL]
    if len(methods) != 1:
        raise ValueError(f"{path} holds methods {list(summary)}; name the row to use as one of them (got {name!r}).")
    return summary[methods[0]]


def write_method_comparison(
    csv_paths: Mapping[str, str | os.PathLike],
    out_csv: str | os.PathLike,
    columns: Sequence[str] = COMPARISON_COLUMNS,
    include_initial: bool = False,
    title: str | None = "Comparison of methods (mean±std over pairs)",
) -> str:
    """Combine several runs' ``metrics_summary.csv`` files into one comparison CSV and table.

    Each entry ``name -> path`` contributes one row named ``name``: the file's row of that method
    name, or else its only method other than ``Initial``. With ``include_initial`` the first file's
    ``Initial`` row (identity transform) comes first.

    ``out_csv`` is written atomically with one row per method: ``method``, then for each column
    its mean under the column's name and its standard deviation under ``<column>_std`` (e.g.
    ``Dice_mean, Dice_mean_std, HD95_mean, HD95_mean_std, NDV, NDV_std, TRE, TRE_std``), in the
    units of ``metrics_summary.csv`` (Dice as a fraction, NDV in percent, HD95 and TRE in mm).

    Args:
        csv_paths: method name -> ``metrics_summary.csv`` path, in row order.
        out_csv: the comparison CSV to write.
        columns: summary columns to keep (default Dice, HD95, NDV, TRE).
        include_initial: add the identity transform's row.
        title: first line of the returned table, or None.

    Returns:
        the comparison table as text (:func:`format_method_comparison`).
    """
    if not csv_paths:
        raise ValueError("csv_paths is empty: give at least one method's metrics_summary.csv.")
    rows: dict[str, Mapping[str, tuple[float, float]]] = {}
    for index, (name, path) in enumerate(csv_paths.items()):
        path = Path(path)
        summary = read_metrics_summary(path)
        if include_initial and index == 0:
            if _INITIAL not in summary:
                raise ValueError(f"{path} has no {_INITIAL!r} row to include (run with include_initial=True).")
            rows[_INITIAL] = summary[_INITIAL]
        rows[str(name)] = _method_row(summary, str(name), path)
    nan = (float("nan"), float("nan"))
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write_path(out_csv) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["method", *[name for c in columns for name in (c, f"{c}_std")]])
            for method, stats in rows.items():
                writer.writerow([method, *[value for c in columns for value in stats.get(c, nan)]])
    return format_method_comparison(rows, columns, title)
