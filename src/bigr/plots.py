"""Small plots written to PNG (matplotlib with the Agg backend, imported only when used)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def plot_curves(
    path: str | Path,
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "",
    xlabel: str = "step",
    ylabel: str = "",
    logy: bool = False,
    logx: bool = False,
    markers: bool = False,
    dashed: Sequence[str] = (),
) -> Path:
    """One line per named (x, y) series; those named in `dashed` drawn dashed, unmarked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, (x, y) in series.items():
        if name in dashed:
            ax.plot(list(x), list(y), label=name, linewidth=1.0, linestyle="--")
        else:
            ax.plot(list(x), list(y), label=name, linewidth=1.2, marker="o" if markers else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
