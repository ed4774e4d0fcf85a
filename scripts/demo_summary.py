"""The demo's closing table: one row per registration the demo ran, read back from the
``metrics_summary.csv`` files the bundles wrote.

Usage: python scripts/demo_summary.py RUNS.tsv

Each line of ``RUNS.tsv`` (tab-separated, written by ``scripts/demo.sh``) names one row:
``row name``, ``data``, the ``metrics_summary.csv`` path, the method as it appears in that file,
and the wall-clock seconds of the demo step that trained and evaluated it.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from monai_ext.handlers import read_metrics_summary


def _percent(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"


def summary_table(runs: list[list[str]]) -> str:
    lines = [
        "| Method | Data | Initial Dice (%) | Registered Dice (%) | NJD (%) | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for name, data, summary, method, seconds in runs:
        stats = read_metrics_summary(Path(summary))
        if method not in stats or "Initial" not in stats:
            raise ValueError(f"{summary}: no rows for {method!r} and 'Initial' (found {sorted(stats)})")
        initial, registered = stats["Initial"]["Dice_mean"][0], stats[method]["Dice_mean"][0]
        njd = stats[method].get("NJD", (float("nan"), 0.0))[0]
        lines.append(
            f"| {name} | {data} | {_percent(100 * initial)} | {_percent(100 * registered)} | "
            f"{_percent(njd)} | {float(seconds):.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit(__doc__)
    runs = [line.rstrip("\n").split("\t") for line in open(argv[0]) if line.strip()]
    print(summary_table(runs))


if __name__ == "__main__":
    main(sys.argv[1:])
