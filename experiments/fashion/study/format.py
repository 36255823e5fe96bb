"""Number and table formatting shared by the sections' markdown."""

from __future__ import annotations

import math

FID_HEADER = (
    "| | n | FID | sFID | precision | recall | s/image |",
    "|---|---|---|---|---|---|---|",
)


def fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def measured(value) -> bool:
    """False for a missing or NaN value (e.g. a sample set that kept no features)."""
    return value is not None and math.isfinite(value)


def shows_precision_recall(entries) -> bool:
    """Whether a table of FID `entries` gets precision and recall columns: only when some set
    kept the features they need."""
    return any(measured(e.get("precision")) for e in entries)


def precision_recall_cells(entry: dict) -> str:
    """The trailing precision and recall cells of a table row."""
    return f" {fmt(entry['precision'], 3)} | {fmt(entry['recall'], 3)} |"


def fid_row(label: str, entry: dict) -> str:
    return (
        f"| {label} | {entry['n']} | {fmt(entry['fid'])} | {fmt(entry.get('sfid', math.nan))} "
        f"| {fmt(entry.get('precision', math.nan), 3)} | {fmt(entry.get('recall', math.nan), 3)} "
        f"| {fmt(entry.get('seconds_per_image', math.nan), 4)} |"
    )
